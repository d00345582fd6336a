"""Every curl and Python example of README.md and docs/*.md, run against a real server.

The examples are read from the markdown files, never copied here. A fenced block in ``sh``,
``bash``, ``shell`` or ``console`` that holds ``curl``, and every ``python`` block, is run
against one gunicorn serving the demo project (``tests/live.py``, seeded by ``seed_demo``):

- curl: ``http://127.0.0.1:8000`` becomes the live server's URL, ``TOKEN`` is the ``demo``
  user's token, the block runs in bash (``-e -o pipefail``) from the repository's root. It must
  exit 0 and every HTTP answer must be below 500. When the block right after it shows an HTTP
  status line (``HTTP/1.1 400 ...``) that status is expected; when it shows a batch answer, its
  items' ``"status_code"`` values are expected, in order.
- python: a script runs in a subprocess with the same URL and ``TOKEN``; a block that defines
  ``test_*`` functions is a pytest module and runs under pytest with the demo project's
  settings. It must exit 0.

A block that cannot run on its own (a settings snippet, a fragment of a module, a command that
installs a package or needs Redis) carries ``<!-- not-run: the reason -->`` right before it; it is
still syntax-checked (``compile`` for Python, ``bash -n`` for shell). Every example block is one or
the other, and each is its own test id (``README.md:23``, ``docs/uploads.md:11``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import ROOT, LiveSite, serve

pytestmark = pytest.mark.server

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEMO_URL = "http://127.0.0.1:8000"
SHELL_LANGS = {"sh", "bash", "shell", "console"}
PYTHON_LANGS = {"python", "py"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
NOT_RUN = re.compile(r"<!--\s*not-run:(?P<reason>.*?)-->", re.S)
STATUS_MARK = "DOCS-EXAMPLE-HTTP-STATUS"
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text, and what follows it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason of a <!-- not-run: ... --> comment right before it
    output: str | None  # the fenced block right after it (only blank lines between), if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_example(self) -> bool:
        return self.lang in SHELL_LANGS | PYTHON_LANGS

    @property
    def is_curl(self) -> bool:
        return self.lang in SHELL_LANGS and re.search(r"\bcurl\b", self.code) is not None

    def shell_script(self) -> str:
        """The commands of the block: for ``console``, the ``$ `` lines and their continuations."""
        if self.lang != "console":
            return self.code
        commands: list[str] = []
        continued = False
        for line in self.code.splitlines():
            if line.startswith("$ ") or continued:
                commands.append(line[2:] if line.startswith("$ ") and not continued else line)
                continued = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    raw: list[tuple[int, int, str, str]] = []  # (open index, close index, lang, code)
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start = match["fence"], i
        i += 1
        while i < len(lines) and not (lines[i].lstrip().startswith(fence)
                                      and lines[i].strip().strip(fence[0]) == ""):
            i += 1
        code = textwrap.dedent("\n".join(lines[start + 1:i])) + "\n"
        raw.append((start, i, match["lang"].lower(), code))
        i += 1
    blocks = []
    for number, (start, end, lang, code) in enumerate(raw):
        before = "\n".join(lines[:start]).rstrip()
        marker = None
        if before.endswith("-->"):
            comment = before[before.rfind("<!--"):]
            found = NOT_RUN.fullmatch(comment)
            marker = found["reason"].strip() if found else None
        output = None
        if number + 1 < len(raw):
            next_start, _, _, next_code = raw[number + 1]
            if all(not line.strip() for line in lines[end + 1:next_start]):
                output = next_code
        blocks.append(Block(path, start + 1, lang, code, marker, output))
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in parse_blocks(path)]
EXAMPLES = [block for block in ALL_BLOCKS if block.is_example]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """One gunicorn for the module; uploads go to a temporary MEDIA_ROOT, not the checkout."""
    tmp = tmp_path_factory.mktemp("docs-site")
    (tmp / "docs_examples_settings.py").write_text(
        "from test_project.settings import *  # noqa: F403\n"
        f"MEDIA_ROOT = {str(tmp / 'media')!r}\n")
    python_path = os.pathsep.join(p for p in (str(tmp), os.environ.get("PYTHONPATH")) if p)
    with serve("gunicorn", tmp, {"DJANGO_SETTINGS_MODULE": "docs_examples_settings",
                                 "PYTHONPATH": python_path}) as live:
        yield live


@pytest.fixture(scope="module")
def curl_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``curl`` first on PATH that also writes each answer's status to stderr."""
    real = shutil.which("curl")
    if real is None:
        pytest.skip("curl is not installed")
    bin_dir = tmp_path_factory.mktemp("curl-shim")
    shim = bin_dir / "curl"
    shim.write_text(f"#!/bin/sh\nexec {real} --write-out "
                    f"'%{{stderr}}{STATUS_MARK} %{{http_code}}\\n' \"$@\"\n")
    shim.chmod(0o755)
    return bin_dir


def example_env(site: LiveSite, *path_dirs: Path) -> dict[str, str]:
    path = os.pathsep.join([*map(str, path_dirs), str(Path(sys.executable).parent),
                            os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "TOKEN": site.tokens["demo"],
            "DJANGO_SETTINGS_MODULE": "test_project.settings"}


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT)


def report(block: Block, result: subprocess.CompletedProcess) -> str:
    return (f"{block.id} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}")


def batch_statuses(stdout: str) -> list[int] | None:
    """The items' statuses of a batch answer printed by curl (after its headers, with ``-D -``)."""
    body = re.split(r"\r?\n\r?\n", stdout, maxsplit=1)[-1] if stdout.startswith("HTTP/") else stdout
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("batch"), list):
        return None
    return [item.get("status_code") for item in document["batch"]]


def check_curl(block: Block, site: LiveSite, curl_shim: Path, tmp_path: Path) -> None:
    script = tmp_path / "example.sh"
    script.write_text(block.shell_script().replace(DEMO_URL, site.url))
    result = run(["bash", "-e", "-o", "pipefail", str(script)], example_env(site, curl_shim),
                 ROOT)
    assert result.returncode == 0, report(block, result)
    statuses = [int(code) for code in re.findall(rf"^{STATUS_MARK} (\d+)$", result.stderr, re.M)]
    assert statuses, f"{block.id}: curl answered nothing\n{report(block, result)}"
    assert all(0 < status < 500 for status in statuses), f"{statuses}\n{report(block, result)}"
    if block.output is None:
        return
    documented = re.search(r"^HTTP/[\d.]+ (\d{3})", block.output, re.M)
    if documented:
        assert statuses[-1] == int(documented[1]), report(block, result)
    documented_items = [int(code) for code in re.findall(r'"status_code":\s*(\d{3})',
                                                         block.output)]
    if documented_items:
        assert batch_statuses(result.stdout) == documented_items, report(block, result)


def check_python(block: Block, site: LiveSite, tmp_path: Path) -> None:
    env = example_env(site)
    if re.search(r"^def test_\w+\(", block.code, re.M):
        # A test for a project's suite: run it under pytest, against the demo project's
        # settings and a test database of its own.
        module = tmp_path / "test_docs_example.py"
        module.write_text(block.code)
        env |= {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
                "DJANGO_DB_NAME": str(tmp_path / "unused.sqlite3")}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--rootdir", str(tmp_path), str(module)]
    else:
        module = tmp_path / "example.py"
        module.write_text(block.code.replace(DEMO_URL, site.url))
        command = [sys.executable, str(module)]
    result = run(command, env, tmp_path)
    assert result.returncode == 0, report(block, result)


def check_syntax(block: Block, tmp_path: Path) -> None:
    """A block that is not run is still well-formed code."""
    if block.lang in PYTHON_LANGS:
        compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return
    script = tmp_path / "example.sh"
    script.write_text(block.shell_script())
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, f"{block.id}: {result.stderr}"


@pytest.mark.parametrize("block", EXAMPLES, ids=[block.id for block in EXAMPLES])
def test_example(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if block.not_run is not None:
        check_syntax(block, tmp_path)
    elif block.is_curl:
        check_curl(block, request.getfixturevalue("site"),
                   request.getfixturevalue("curl_shim"), tmp_path)
    elif block.lang in PYTHON_LANGS:
        check_python(block, request.getfixturevalue("site"), tmp_path)
    else:
        pytest.fail(f"{block.id}: a {block.lang} block without curl cannot be run; "
                    "mark it <!-- not-run: reason --> or make it a curl example")


def test_every_example_is_run_or_marked() -> None:
    """Markers carry a reason, sit only on examples, and the files hold examples at all."""
    assert any(block.path.name == "README.md" and block.is_curl and block.not_run is None
               for block in EXAMPLES), "README.md has no curl example left to run"
    problems = []
    for block in ALL_BLOCKS:
        if block.not_run is not None and not block.not_run:
            problems.append(f"{block.id}: not-run without a reason")
        if block.not_run is not None and not block.is_example:
            problems.append(f"{block.id}: not-run on a {block.lang or 'plain'} block, never run")
        if block.is_example and block.not_run is None and not (
                block.is_curl or block.lang in PYTHON_LANGS):
            problems.append(f"{block.id}: a {block.lang} block without curl, not marked")
    for path in DOC_FILES:
        markers = len(NOT_RUN.findall(path.read_text(encoding="utf-8")))
        placed = sum(1 for block in ALL_BLOCKS
                     if block.path == path and block.not_run is not None)
        if markers != placed:
            problems.append(f"{path.relative_to(ROOT)}: {markers - placed} not-run marker(s) "
                            "not right before a code block")
    assert not problems, "\n".join(problems)


def test_settings_page_lists_every_key() -> None:
    from batch_requests.conf import DEFAULTS
    from batch_requests.dynamic.conf import DEFAULTS as DYNAMIC_DEFAULTS

    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [key for key in [*DEFAULTS, *DYNAMIC_DEFAULTS] if f"`{key}`" not in page]
    assert not missing, f"docs/settings.md does not document {missing}"


def test_readme_links_exist() -> None:
    """mkdocs checks the links of docs/; the README is outside it, so check its own here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert targets and not missing, f"README.md links to missing files: {missing}"
