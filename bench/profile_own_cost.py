"""Where the batch's own work per item goes: each stage timed alone on a batch of 200 items.

``python -m bench.profile_own_cost [--path /views/] [--n 200]`` (in bench/.venv: orjson is
timed too). In-process, DEBUG off, ``MAX_LIMIT`` raised to N. It calls the package's own
functions in the order ``handle_batch_requests`` does, on real objects (the items, their
sub-requests, the responses of the view), each stage N items at a time, many times over,
and prints the median µs per item of each; then the whole, old-style: one batch of N through
``handle_batch_requests`` against N ``RequestFactory`` GETs through ``get_response``
(interleaved rounds), whose difference per item is the batch's own work. The stages do not
sum to it exactly: each runs alone (warm caches) and the rest is the view's work seen from
two sides (``make_request`` builds the ``WSGIRequest`` that the direct path's
``RequestFactory`` builds too: both are shown).

``--instructions`` runs the old-style comparison under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``) instead: instructions per item, repeatable whatever the machine does.

It changes nothing in the package (one stage swaps the serializer's encoder for the standard
library's while it runs, to show what orjson saves).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import ROOT, interleaved, setup_django, table

N = 200
REPEATS = 40
BUDGET = 2.0  # seconds per stage at most


def per_item(func: Callable[[], object], n: int, repeats: int = REPEATS,
             budget: float = BUDGET) -> float:
    """Median µs per item of ``func`` (which handles ``n`` items), after one warm-up."""
    func()
    samples = []
    deadline = time.monotonic() + budget
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
        if time.monotonic() > deadline:
            break
    return statistics.median(samples) / n * 1e6


class Fixture:
    """Real objects of one batch of ``n`` GETs of ``path``, each stage's input."""

    def __init__(self, path: str, n: int) -> None:
        from django.core.handlers.base import BaseHandler
        from django.test import RequestFactory

        from batch_requests import dispatch
        from batch_requests.payload import parse_batch
        from batch_requests.subrequest import build_subrequests

        self.path, self.n = path, n
        self.factory = RequestFactory()
        self.raw = json.dumps({"batch": [{"method": "GET", "url": path}] * n}).encode()
        self.data = json.loads(self.raw)
        self.spec = parse_batch(self.raw)
        self.parent = self.new_parent()
        self.subs = build_subrequests(self.parent, self.spec.items)
        self.handler = BaseHandler()
        self.handler.load_middleware()
        self.responses = [dispatch.get_handler().get_response(dispatch.make_request(s))
                          for s in self.subs]
        self.bodies = [dispatch._read_body(r) for r in self.responses]
        self.results = [dispatch._capture(s, r, b)
                        for s, r, b in zip(self.subs, self.responses, self.bodies, strict=True)]
        for result in self.results:
            result.duration = 0.000123
        from batch_requests.serialize import serialize_batch

        self.items = serialize_batch(self.results, self.spec.items)  # encoded items
        # The same answer as a Python value, as the view had it before it encoded items itself.
        self.body = {"batch": [json.loads(item) for item in self.items]}

    def new_parent(self):
        return self.factory.post("/api/v1/batch/", self.raw, content_type="application/json")


def stages(fx: Fixture) -> list[tuple[str, str, Callable[[], object], int]]:
    """(group, stage, function, items it handles) in the order the view runs them."""
    from django.http import HttpResponse, JsonResponse
    from django.urls import get_resolver, get_urlconf, set_urlconf
    from django.utils.encoding import iri_to_uri

    from batch_requests import dispatch, payload, serialize, subrequest
    from batch_requests.concurrent.executor import get_executor
    from batch_requests.conf import batch_settings
    from batch_requests.csrf import csrf_failure
    from batch_requests.limits import deep_parts
    from batch_requests.references import find_references
    from batch_requests.runner import BatchRun, run_batch
    from batch_requests.views import _add_timing

    n, items, specs, subs = fx.n, fx.data["batch"], fx.spec.items, fx.subs
    limits = (batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE)
    base = subrequest.base_environ(fx.parent)
    results_by_index = fx.results
    response = HttpResponse(serialize.render(fx.items), content_type=serialize.CONTENT_TYPE)
    max_size = batch_settings.MAX_RESPONSE_SIZE
    resolver = get_resolver(getattr(fx.parent, "urlconf", None))
    out: list[tuple[str, str, Callable[[], object], int]] = []

    def add(group: str, name: str, func: Callable[[], object], count: int = n) -> None:
        out.append((group, name, func, count))

    # Parsing
    add("parsing", "json.loads of the batch document", lambda: json.loads(fx.raw))
    add("parsing", "parse_batch whole (json.loads included)",
        lambda: payload.parse_batch(fx.raw))
    add("parsing", "  deep_parts (depth walk)", lambda: deep_parts(fx.data))
    add("parsing", "  parse_item x N (ItemSpec)", lambda: [
        payload.parse_item(i, item, header_limits=limits) for i, item in enumerate(items)])
    add("parsing", "    ItemSpec(...) x N (the dataclass alone)", lambda: [
        payload.ItemSpec(i, "GET", fx.path) for i in range(n)])
    add("parsing", "    find_references x N (plain: no marker)", lambda: [
        find_references(spec) for spec in specs])
    add("parsing", "csrf_failure (once a batch)", lambda: csrf_failure(fx.parent, fx.spec))
    # Environ
    add("environ", "build_subrequests whole", lambda: subrequest.build_subrequests(
        fx.parent, specs))
    add("environ", "  base_environ (once a batch)", lambda: subrequest.base_environ(fx.parent))
    add("environ", "  dict(base) copy x N", lambda: [dict(base) for _ in specs])
    max_url = batch_settings.MAX_URL_LENGTH  # read once a batch, as build_subrequests does
    add("environ", "  _locate x N (url, nesting check)", lambda: [
        subrequest._locate(fx.parent, spec, dict(base), resolver, max_url) for spec in specs])
    add("environ", "    safe-characters check + urlsplit x N (the plain path)", lambda: [
        subrequest._URI_SAFE(spec.url) and urlsplit(spec.url) for spec in specs])
    add("environ", "    iri_to_uri + urlsplit x N (a url that needs quoting)", lambda: [
        urlsplit(iri_to_uri(spec.url)) for spec in specs])
    add("environ", "    _refuse_nesting x N (cached resolve)", lambda: [
        subrequest._refuse_nesting(fx.parent, spec, fx.path, resolver) for spec in specs])
    # Running: the executor and runner around the view, without the view
    add("running", "BatchRun + run_batch, view left out", lambda: run_batch(
        BatchRun(fx.parent, fx.spec, subs), get_executor(),
        lambda sub: results_by_index[sub.index], fx.spec.budget(batch_settings.TIMEOUT)))
    add("running", "urlconf saved and restored (once a batch)", lambda: (
        set_urlconf(get_urlconf())))
    add("running", "perf_counter x 2 alone", lambda: [
        (time.perf_counter(), time.perf_counter()) for _ in subs])
    add("running", "get_handler() x N", lambda: [dispatch.get_handler() for _ in subs])
    # The request object
    add("request", "make_request x N (WSGIRequest)", lambda: [
        dispatch.make_request(sub) for sub in subs])
    add("request", "  (direct path: RequestFactory.get x N)", lambda: [
        fx.factory.get(fx.path) for _ in subs])
    # Capture
    pairs = list(zip(subs, fx.responses, fx.bodies, strict=True))
    add("capture", "_read_body x N (MAX_RESPONSE_SIZE read once a batch)", lambda: [
        dispatch._read_body(r, None, max_size) for r in fx.responses])
    add("capture", "_capture x N (headers, cookies, charset)", lambda: [
        dispatch._capture(s, r, b) for s, r, b in pairs])
    add("capture", "  list(response.items()) x N", lambda: [
        list(r.items()) for r in fx.responses])
    add("capture", "  response.charset x N (regex on Content-Type)", lambda: [
        r.charset for r in fx.responses])
    add("capture", "  response.reason_phrase x N", lambda: [
        r.reason_phrase for r in fx.responses])
    add("capture", "  SubResult(...) x N (the dataclass alone)", lambda: [
        dispatch.SubResult(s.index, 200, "OK", [], b"", "utf-8", r.cookies)
        for s, r in zip(subs, fx.responses, strict=True)])
    add("capture", "_release x N", lambda: [dispatch._release(r) for r in fx.responses])
    # Serialization
    add("serialize", "serialize_batch", lambda: serialize.serialize_batch(
        fx.results, specs))
    add("serialize", "  dict(result.headers) x N", lambda: [
        dict(r.headers) for r in fx.results])
    add("serialize", "  format_duration x N", lambda: [
        serialize.format_duration(r.duration) for r in fx.results])
    # The answer
    add("serialize", "  serialize_batch, standard library's json (no orjson)", lambda: (
        _without_orjson(lambda: serialize.serialize_batch(fx.results, specs))))
    # The answer
    add("answer", "render + HttpResponse (the answer)", lambda: HttpResponse(
        serialize.render(fx.items), content_type=serialize.CONTENT_TYPE))
    add("answer", "  before: JsonResponse(body), json.dumps of the whole answer", lambda: (
        JsonResponse(fx.body, json_dumps_params={"ensure_ascii": False}, charset="utf-8")))
    add("answer", "_add_timing (duration header + Server-Timing)", lambda: _add_timing(
        response, fx.results, 0.0123))
    add("answer", "  Server-Timing entries alone", lambda: ", ".join(
        [f"sub{r.index};dur={r.duration * 1000:.3f}" for r in fx.results]))
    add("answer", "log line's statuses + cookie merge", lambda: (
        " ".join(str(r.status_code) for r in fx.results),
        [list(r.cookies.items()) for r in fx.results]))
    # Settings
    add("settings", "one batch_settings.X lookup (x N)", lambda: [
        batch_settings.MAX_RESPONSE_SIZE for _ in subs])
    return out


def _without_orjson(func: Callable[[], object]) -> object:
    """``func()`` with the serializer on the standard library's json, as without orjson."""
    from batch_requests import serialize

    saved, serialize.orjson = serialize.orjson, None
    try:
        return func()
    finally:
        serialize.orjson = saved


def count_settings_lookups(fx: Fixture) -> collections.Counter:
    """How often each setting is read in one whole batch, by the function that reads it."""
    from batch_requests.conf import BatchSettings
    from batch_requests.views import handle_batch_requests

    counts: collections.Counter = collections.Counter()
    original = BatchSettings.__getattr__

    def counting(self, name):
        caller = sys._getframe(1).f_code.co_name
        counts[f"{name} in {caller}"] += 1
        return original(self, name)

    BatchSettings.__getattr__ = counting
    try:
        handle_batch_requests(fx.new_parent())
    finally:
        BatchSettings.__getattr__ = original
    return counts


def whole(fx: Fixture) -> dict[str, float]:
    """Old-style: µs per item of the direct path and of the batch, interleaved rounds, with
    two ways in between that split the difference: the batch's own sub-requests through the
    handler (``make_request``), and ``run_subrequest`` (+ its wrapper, body read, capture)."""
    from batch_requests import dispatch
    from batch_requests.views import handle_batch_requests

    handler = fx.handler

    def direct() -> None:
        for _ in range(fx.n):
            handler.get_response(fx.factory.get(fx.path))

    def made() -> None:
        for sub in fx.subs:
            handler.get_response(dispatch.make_request(sub))

    def dispatched() -> None:
        for sub in fx.subs:
            dispatch.run_subrequest(sub)

    def batch() -> None:
        handle_batch_requests(fx.new_parent())

    seconds = interleaved({"handler": direct, "make_request": made,
                           "run_subrequest": dispatched, "batch": batch}, 25, 15.0)
    return {k: v / fx.n * 1e6 for k, v in seconds.items()}


def run(path: str, n: int) -> None:
    from django.test import override_settings

    setup_django()
    with override_settings(BATCH_REQUESTS={"MAX_LIMIT": n}):
        fx = Fixture(path, n)
        print(f"== The batch's own work per item: {path}, batch of {n}, stages timed alone "
              f"(median of up to {REPEATS}) ==")
        us: dict[str, float] = {}
        rows = []
        for group, name, func, count in stages(fx):
            us[name] = per_item(func, count)
            rows.append([group, name, us[name]])
        print(table(["group", "stage", "µs/item"], rows))
        counts = count_settings_lookups(fx)
        lookups = sum(counts.values())
        print(f"\nsettings lookups in one batch of {n}: {lookups} "
              f"({lookups / n:.2f} per item)")
        print(table(["setting in function", "reads"], [[k, v] for k, v in counts.most_common()]))
        total = whole(fx)
        own = total["batch"] - total["handler"]
        print(f"\n== Old-style whole, interleaved rounds: batch of {n} vs {n} direct "
              "get_response ==")
        print(table(["way", "µs/item", "minus direct"], [
            ["direct: RequestFactory.get + get_response", total["handler"], 0.0],
            ["the batch's sub-requests: make_request + get_response",
             total["make_request"], total["make_request"] - total["handler"]],
            ["run_subrequest x N (+ wrapper, body read, capture, release)",
             total["run_subrequest"], total["run_subrequest"] - total["handler"]],
            ["handle_batch_requests, batch of N", total["batch"], own],
        ]))
        print(f"own work {own:.1f} µs/item (ratio {total['batch'] / total['handler']:.2f}): "
              f"dispatch around the view {total['run_subrequest'] - total['make_request']:.1f}"
              f", the rest of the batch (parse, build, run loop, serialize, answer) "
              f"{total['batch'] - total['run_subrequest']:.1f}")
        top = ["parse_batch whole (json.loads included)", "csrf_failure (once a batch)",
               "build_subrequests whole", "BatchRun + run_batch, view left out",
               "urlconf saved and restored (once a batch)", "perf_counter x 2 alone",
               "get_handler() x N", "_read_body x N (MAX_RESPONSE_SIZE read once a batch)",
               "_capture x N (headers, cookies, charset)", "_release x N", "serialize_batch",
               "render + HttpResponse (the answer)",
               "_add_timing (duration header + Server-Timing)",
               "log line's statuses + cookie merge"]
        summed = sum(us[k] for k in top)
        request_net = (us["make_request x N (WSGIRequest)"]
                       - us["  (direct path: RequestFactory.get x N)"])
        print(f"sum of the top-level stages: {summed:.1f} µs/item; make_request minus the "
              f"direct path's RequestFactory.get: {request_net:+.1f} µs/item")


# -- instruction counts ---------------------------------------------------------------------

def instructions_mode(mode: str, path: str, n: int, rounds: int) -> None:
    """Run under callgrind: the same warm-up in both modes, then ``rounds`` x n items."""
    from django.test import override_settings

    setup_django()
    from django.core.handlers.base import BaseHandler
    from django.test import RequestFactory

    from batch_requests.views import handle_batch_requests

    with override_settings(BATCH_REQUESTS={"MAX_LIMIT": n}):
        factory, handler = RequestFactory(), BaseHandler()
        handler.load_middleware()
        raw = json.dumps({"batch": [{"method": "GET", "url": path}] * n})

        def batch():
            handle_batch_requests(factory.post("/api/v1/batch/", raw,
                                               content_type="application/json"))

        def direct():
            for _ in range(n):
                handler.get_response(factory.get(path))

        batch(), direct()  # warm-up, both ways in both modes
        for _ in range(rounds):
            (batch if mode == "batch" else direct)()


def instructions(path: str, n: int, rounds: int) -> None:
    totals = {}
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        procs = {}
        for mode in ("batch", "handler"):
            out = os.path.join(tmp, f"{mode}.out")
            procs[mode] = (subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                 sys.executable, "-m", "bench.profile_own_cost", "--mode", mode,
                 "--path", path, "--n", str(n), "--rounds", str(rounds)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True), out)
        for mode, (proc, _out) in procs.items():
            _, err = proc.communicate(timeout=1800)
            match = re.search(r"Collected : (\d+)", err)
            if proc.returncode or not match:
                raise RuntimeError(f"callgrind {mode} failed: {err[-2000:]}")
            totals[mode] = int(match.group(1))
    items = n * rounds
    own = (totals["batch"] - totals["handler"]) / items
    whole_item = totals["batch"] / items  # includes the shared set-up: an upper bound only
    print(f"callgrind, PYTHONHASHSEED=0, {path}, {rounds} x {n} items each way: batch "
          f"{totals['batch']:,} instructions, direct {totals['handler']:,}; own work "
          f"{own / 1000:.1f}k instructions per item (whole runs incl. set-up: "
          f"{whole_item / 1e6:.1f}M per batch item)")


_CG_SOURCE = """
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


def _callgrind_marks(tmp: str):
    """cg_zero() and cg_dump(name), callgrind client requests through ctypes (built with gcc
    from valgrind's header): each dump writes the instructions since the last zero."""
    import ctypes

    source, lib = os.path.join(tmp, "cg.c"), os.path.join(tmp, "cg.so")
    with open(source, "w") as f:
        f.write(_CG_SOURCE)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", lib, source], check=True)
    return ctypes.CDLL(lib)


def stages_mode(path: str, n: int, lib_dir: str) -> None:
    """Under callgrind: each stage run twice after a warm-up, between a zero and a dump."""
    from django.test import override_settings

    setup_django()
    marks = _callgrind_marks(lib_dir)
    with override_settings(BATCH_REQUESTS={"MAX_LIMIT": n}):
        fx = Fixture(path, n)
        for _group, name, func, count in [("-", "(empty)", lambda: None, n), *stages(fx)]:
            func()
            marks.cg_zero()
            func()
            func()
            marks.cg_dump(f"{count}|{name}".encode())


def stage_instructions(path: str, n: int) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        out = os.path.join(tmp, "stages.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-m", "bench.profile_own_cost", "--mode", "stages",
                        "--path", path, "--n", str(n), "--lib-dir", tmp],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=1800)
        rows, empty = [], 0
        for name in sorted(os.listdir(tmp), key=lambda f: int(f.rsplit(".", 1)[-1])
                           if f.rsplit(".", 1)[-1].isdigit() else -1):
            if not name.startswith("stages.out."):
                continue
            text = Path(tmp, name).read_text()
            trigger = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if not trigger or not total or "|" not in trigger.group(1):
                continue
            count, stage = trigger.group(1).split("|", 1)
            instructions = int(total.group(1))
            if stage == "(empty)":
                empty = instructions
                continue
            rows.append([stage, (instructions - empty) / (2 * int(count)) / 1000])
    print(f"== Instructions per item of each stage (callgrind, PYTHONHASHSEED=0, {path}, "
          f"batch of {n}, each stage run twice) ==")
    print(table(["stage", "k instr/item"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default="/views/")
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of timing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stages", action="store_true",
                        help="instructions of each stage under callgrind")
    parser.add_argument("--mode", choices=("batch", "handler", "stages"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--lib-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "stages":
        stages_mode(args.path, args.n, args.lib_dir)
    elif args.mode:
        instructions_mode(args.mode, args.path, args.n, args.rounds)
    elif args.instructions:
        instructions(args.path, args.n, args.rounds)
    elif args.stages:
        stage_instructions(args.path, args.n)
    else:
        run(args.path, args.n)


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    main()
