"""Start a real gunicorn or uvicorn serving test_project on 127.0.0.1, on a migrated temp DB."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveSite:
    url: str
    tokens: dict[str, str]
    db_path: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CREATE_USERS = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
for i in range({count}):
    user = User.objects.create_user(f"user{{i}}", password=f"user{{i}}-password")
    Token.objects.create(user=user)
"""


def prepare_db(db_path: Path, env: dict[str, str], extra_users: int = 8) -> dict[str, str]:
    """Migrate and seed a fresh SQLite file, add ``user0``..; return each user's API token."""
    for command in (["migrate", "--noinput"], ["seed_demo"],
                    ["shell", "-c", CREATE_USERS.format(count=extra_users)]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("select u.username, t.key from authtoken_token t "
                          "join auth_user u on u.id = t.user_id").fetchall()
    return dict(rows)


def server_command(kind: str, port: int, extra: list[str] | None = None) -> list[str]:
    if kind == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "test_project.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8",
                "--log-level", "warning", *(extra or [])]
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "test_project.asgi:application",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                *(extra or [])]
    raise ValueError(kind)


@contextlib.contextmanager
def serve(kind: str, tmp_dir: Path, settings_env: dict[str, str] | None = None,
          ) -> Iterator[LiveSite]:
    db_path = tmp_dir / "live.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "test_project.settings",
           "DJANGO_DB_NAME": str(db_path), "DJANGO_DEBUG": "0", **(settings_env or {})}
    tokens = prepare_db(db_path, env)
    port = free_port()
    with running(server_command(kind, port), port, env):
        yield LiveSite(f"http://127.0.0.1:{port}", tokens, db_path)


@contextlib.contextmanager
def running(command: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    """Start a server process, wait until it listens on ``port``; stop it (its whole process
    group) at the end, killing it if it has not stopped within 10 s."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        _wait_for_port(port, proc)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s")
