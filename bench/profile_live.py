"""Where a live batch's time goes in the server: py-spy on gunicorn's worker.

``python -m bench.profile_live [seconds]`` (in ``bench/.venv``; py-spy comes with
``bench/requirements.txt``) starts gunicorn ``-w 1 --threads 8`` as (b) does (DEBUG off,
``tests.live.serve``), warms it with 30 batches, then sends batches of 50 GETs of ``/views/``
one after another while py-spy samples the worker process (about 1,000 samples a second, for
``seconds``, 10 by default, at most 60). Only the samples of the thread that handles the
request count; each goes to one part:

- the sub-requests: Django's ``get_response`` (the project's middleware, the view), and our
  dispatch around it (building the ``WSGIRequest``, capturing the answer, releasing it);
- the batch view's own work (parsing, building, the run loop, serializing, the headers);
- the WSGI handler and the middleware around the batch view;
- gunicorn (parsing the HTTP request, writing the answer).

py-spy pauses the process to take a sample, so the batches run slower while it samples;
the shares, not the times, are the result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from bench.common import ROOT, section, table

N = 50
PARTS = ["sub-requests: Django's get_response", "sub-requests: our dispatch around it",
         "the batch view's own work", "WSGI handler and middleware around the view",
         "gunicorn"]


def classify(frames: list[str]) -> tuple[str | None, str | None]:
    """(the part, and for the batch view's own work the function the view called) of a
    sample's stack (outermost first, ``func (file:line)``); the part is None for a sample
    outside the request thread's work (an idle thread, the main loop)."""
    names = [frame.split(" (", 1)[0] for frame in frames]
    if "ThreadWorker.handle" not in names:
        return None, None
    if "run_subrequest" in names:
        below = names[names.index("run_subrequest"):]
        return (PARTS[0] if "BaseHandler.get_response" in below else PARTS[1]), None
    if "handle_batch_requests" in names:
        called = names[names.index("handle_batch_requests") + 1:]
        if called[:1] == ["_execute"]:
            called = called[1:]
        return PARTS[2], called[0] if called else "handle_batch_requests itself"
    return (PARTS[3] if "WSGIHandler.__call__" in names else PARTS[4]), None


def main(seconds: int) -> None:
    from tests.live import serve

    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: pip install -r bench/requirements.txt")
    payload = json.dumps({"batch": [{"method": "GET", "url": "/views/"}] * N})
    with tempfile.TemporaryDirectory(prefix="bench-spy-") as tmp, \
            serve("gunicorn", Path(tmp)) as site:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {site.tokens['demo']}"

        def batch() -> None:
            response = session.post(site.url + "/api/v1/batch/", data=payload, timeout=30,
                                    headers={"Content-Type": "application/json"})
            statuses = [item["status_code"] for item in response.json()["batch"]]
            assert response.status_code == 200 and statuses == [200] * N, response.text[:300]

        for _ in range(30):
            batch()
        worker = _worker_pid(site.url.rsplit(":", 1)[1])
        out = Path(tmp) / "samples.txt"
        sampler = subprocess.Popen(
            [spy, "record", "--rate", "1000", "--duration", str(round(seconds)), "--format", "raw",
             "--output", str(out), "--pid", str(worker)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sent, stop = 0, time.monotonic() + seconds + 30
        while sampler.poll() is None and time.monotonic() < stop:
            batch()
            sent += 1
        _, err = sampler.communicate(timeout=30)
        if sampler.returncode != 0 or not out.exists():
            sys.exit(f"py-spy failed ({sampler.returncode}): {err.strip()[-500:]}")
        parts, own = Counter(), Counter()
        for line in out.read_text().splitlines():
            stack, count = line.rsplit(" ", 1)
            part, called = classify(stack.split(";"))
            if part is not None:
                parts[part] += int(count)
            if called is not None:
                own[called] += int(count)
    total = sum(parts.values())
    section(f"Live profile: py-spy on gunicorn's worker, {sent} batches of {N} GETs of "
            f"/views/, {total} samples of the request thread")
    print(table(["part", "samples", "share %"],
                [[part, parts[part], 100 * parts[part] / total] for part in PARTS]))
    print("\nthe batch view's own work, by the function it called:")
    print(table(["function", "samples", "share of all %"],
                [[name, count, 100 * count / total] for name, count in own.most_common(8)]))


def _worker_pid(port: str) -> int:
    """gunicorn's worker: the newest process whose command line binds ``port``."""
    found = subprocess.run(["pgrep", "-n", "-f", f"127.0.0.1:{port}"], capture_output=True,
                           text=True, check=True).stdout.split()
    return int(found[0])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(min(max(round(float(sys.argv[1])), 1) if len(sys.argv) > 1 else 10, 60))
