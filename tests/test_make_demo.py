"""`make demo`: the PORT variable, and no "run runserver first" hint while make starts it."""

from __future__ import annotations

import os
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command

from tests.live import ROOT


@pytest.mark.parametrize(("args", "port"), [([], "8000"), (["PORT=8001"], "8001")])
def test_make_demo_serves_on_port(args: list[str], port: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Run as from a shell: under `make test`, the parent make's variables would make this one
    # print "Entering directory" lines (and pass on its flags).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert f"manage.py seed_demo --url http://127.0.0.1:{port}/\n" in dry_run
    assert dry_run.rstrip().endswith(f"manage.py runserver 127.0.0.1:{port}")


@pytest.mark.django_db
def test_seed_demo_url_replaces_the_runserver_hint() -> None:
    started = StringIO()
    call_command("seed_demo", url="http://127.0.0.1:8001/", stdout=started)
    assert "runserver" not in started.getvalue()
    assert "Open http://127.0.0.1:8001/ once the server below has started." in started.getvalue()
    assert "curl -s http://127.0.0.1:8001/api/v1/batch/ " in started.getvalue()
    alone = StringIO()
    call_command("seed_demo", stdout=alone)  # run by hand: the server is not started for you
    assert "Open http://127.0.0.1:8000/ (run `manage.py runserver` first)." in alone.getvalue()
