"""``manage.py batch_worker dotted.path:function``: serve a batched function from Redis.

Run as many as needed, on any machine that reaches the Redis server. SIGTERM (or Ctrl-C) lets
the batch in hand finish and be acknowledged, then the command exits 0. A lost or restarted
Redis server never ends it: it reconnects with backoff and goes on serving. See the
documentation page "Redis backend and faults" (docs/dynamic-redis.md).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from batch_requests.dynamic.decorator import BatchedFunction, function_name
from batch_requests.dynamic.redis_worker import RedisWorker

LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def load_function(target: str) -> tuple[Any, str]:
    """The batch function at ``module:attr`` (or ``module.attr``) and its default stream name."""
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise CommandError(f"expected 'dotted.module:function', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"cannot import {target!r}: {exc}") from exc
    if isinstance(obj, BatchedFunction):
        return obj.func, obj.name
    if not callable(obj):
        raise CommandError(f"{target!r} is not callable")
    return obj, function_name(obj)


class Command(BaseCommand):
    help = (
        "Serve a batch function to dynamic batchers through Redis. Documentation: "
        "'Dynamic batching > Redis backend and faults' (docs/dynamic-redis.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("function", help="dotted.module:function taking a list of items")
        parser.add_argument("--name", help="stream name (default: the function's dotted name)")
        parser.add_argument("--batch-size", type=int, help="most items per call (default 64)")
        parser.add_argument("--batch-time", type=float, help="seconds to fill a batch (0.01)")
        parser.add_argument("--redis-url", help="redis:// URL (default from settings/env)")
        parser.add_argument("--claim-idle-time", type=float,
                            help="seconds before another worker's unacked entries are claimed")
        parser.add_argument("--max-deliveries", type=int,
                            help="deliveries of one request before its caller gets an error "
                                 "and the entry goes to the dead-letter stream")
        parser.add_argument("--no-split-on-error", dest="split_on_error", action="store_false",
                            default=None,
                            help="when the function raises, fail the whole batch instead of "
                                 "retrying its halves (for functions whose side effects must "
                                 "not repeat)")

    def handle(self, *args: Any, **options: Any) -> None:
        func, default_name = load_function(options["function"])
        level = LEVELS.get(options["verbosity"], logging.INFO)
        worker_logger = logging.getLogger("batch_requests.dynamic")
        if not worker_logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            worker_logger.addHandler(handler)
        worker_logger.setLevel(level)
        worker = RedisWorker(
            func,
            options["name"] or default_name,
            batch_size=options["batch_size"],
            batch_time=options["batch_time"],
            redis_url=options["redis_url"],
            claim_idle_time=options["claim_idle_time"],
            max_deliveries=options["max_deliveries"],
            split_on_error=options["split_on_error"],
        )
        asyncio.run(worker.run())
