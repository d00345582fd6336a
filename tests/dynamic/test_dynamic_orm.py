"""The ready-made Django batchers against the test database: BulkCreateBatcher, InBulkLoader.

Their batch functions run in a thread of the engine's pool, on that thread's own database
connection, so the tests are transactional (``transaction=True``): rows must really be
committed to be seen across threads. Every ``bulk_create`` and ``in_bulk`` call is recorded
where it runs, with the SQL queries it made on that thread's connection
(``CaptureQueriesContext``), so the tests count calls and queries instead of trusting timing.
Batches leave full (``max_wait`` is an hour), so how many calls there are is determined.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from batch_requests.dynamic import BatcherStoppedError, BulkCreateBatcher, InBulkLoader
from test_project.articles.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

LONG = 3600.0  # max_wait that never fires during a test: batches leave full
BOUND = 30.0  # the longest any wait may take before the test fails


@dataclass
class Call:
    method: str
    args: list[Any]  # usernames/titles for bulk_create, the keys for in_bulk
    sql: list[str]  # every statement it sent (SQLite adds BEGIN and COMMIT around writes)
    thread: threading.Thread
    connection: Any  # the thread's DatabaseWrapper, to see it closed afterwards
    error: BaseException | None

    def statements(self, verb: str) -> int:
        return sum(1 for sql in self.sql if sql.lstrip().upper().startswith(verb))


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    gate: threading.Event | None = None  # when set up, in_bulk waits for it
    started: threading.Event = field(default_factory=threading.Event)

    def of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]


def label(obj: Any) -> Any:
    return getattr(obj, "username", None) or getattr(obj, "title", None)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Wrap QuerySet.bulk_create and QuerySet.in_bulk to record each call where it runs."""
    rec = Recorder()
    original_bulk_create = QuerySet.bulk_create
    original_in_bulk = QuerySet.in_bulk

    def recorded(method: str, queryset: QuerySet, args: list[Any], run: Any) -> Any:
        connection = connections[queryset.db]
        capture = CaptureQueriesContext(connection)
        error = None
        try:
            with capture:
                return run()
        except BaseException as exc:
            error = exc
            raise
        finally:
            rec.calls.append(Call(method, args, [q["sql"] for q in capture.captured_queries],
                                  threading.current_thread(), connection, error))

    def bulk_create(self: QuerySet, objs: Any, *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        return recorded("bulk_create", self, [label(o) for o in objs],
                        lambda: original_bulk_create(self, objs, *args, **kwargs))

    def in_bulk(self: QuerySet, id_list: Any = None, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            rec.started.set()
            if rec.gate is not None:
                assert rec.gate.wait(BOUND), "gate never opened"
            return original_in_bulk(self, id_list, *args, **kwargs)

        return recorded("in_bulk", self, sorted(id_list), run)

    monkeypatch.setattr(QuerySet, "bulk_create", bulk_create)
    monkeypatch.setattr(QuerySet, "in_bulk", in_bulk)
    return rec


@pytest.fixture
def stop_after() -> Iterator[list[Any]]:
    """Batchers appended here are stopped at teardown (draining, so no thread is left on the DB)."""
    batchers: list[Any] = []
    yield batchers
    for batcher in batchers:
        batcher.stop()


def gather(*calls: Any) -> list[Any]:
    async def main() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), BOUND)

    return asyncio.run(main())


# --- BulkCreateBatcher -----------------------------------------------------------------------


def test_bulk_create_one_insert_per_batch_each_caller_gets_its_saved_object(
    alice: User, recorder: Recorder, stop_after: list[Any]
) -> None:
    creator = BulkCreateBatcher(Article, max_batch_size=6, max_wait=LONG)
    stop_after.append(creator)
    instances = [Article(title=f"instance {i}", author=alice) for i in range(3)]
    dicts = [{"title": f"dict {i}", "author": alice} for i in range(3)]

    results = gather(*(creator.acreate(obj) for obj in instances),
                     *(creator.acreate(fields) for fields in dicts))

    assert all(result is obj for result, obj in zip(results[:3], instances, strict=True)), (
        "each caller gets its own instance back")
    assert [label(r) for r in results] == [f"instance {i}" for i in range(3)] + [
        f"dict {i}" for i in range(3)]
    pks = [r.pk for r in results]
    assert None not in pks and len(set(pks)) == 6
    assert all(not r._state.adding for r in results)
    stored = Article.objects.in_bulk(pks)
    assert {pk: stored[pk].title for pk in pks} == {r.pk: r.title for r in results}
    [call] = recorder.of("bulk_create")
    assert sorted(call.args) == sorted(label(r) for r in results)
    assert call.statements("INSERT") == 1, "one INSERT for the whole batch"
    assert call.thread is not threading.current_thread()
    assert call.connection.connection is None, "the pool thread's connection was closed after"


def test_bulk_create_from_sync_threads_batches_them_together(
    alice: User, recorder: Recorder, stop_after: list[Any]
) -> None:
    creator = BulkCreateBatcher(Article, max_batch_size=5, max_wait=LONG)
    stop_after.append(creator)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(creator.create, {"title": f"sync {i}", "author": alice},
                               BOUND) for i in range(5)]
        results = [future.result(BOUND + 5) for future in futures]
    assert [r.title for r in results] == [f"sync {i}" for i in range(5)]
    assert Article.objects.filter(pk__in=[r.pk for r in results]).count() == 5
    assert len(recorder.of("bulk_create")) == 1


def test_same_instance_twice_is_inserted_once_and_both_callers_get_it(
    alice: User, recorder: Recorder, stop_after: list[Any]
) -> None:
    creator = BulkCreateBatcher(Article, max_batch_size=3, max_wait=LONG)
    stop_after.append(creator)
    twice = Article(title="twice", author=alice)
    other = Article(title="other", author=alice)

    first, second, third = gather(creator.acreate(twice), creator.acreate(twice),
                                  creator.acreate(other))

    assert first is twice and second is twice and third is other
    assert Article.objects.filter(title="twice").count() == 1
    [call] = recorder.of("bulk_create")
    assert sorted(call.args) == ["other", "twice"]


def test_unusable_items_are_refused_in_the_caller_without_a_batch(
    alice: User, recorder: Recorder, stop_after: list[Any]
) -> None:
    creator = BulkCreateBatcher(Article, max_batch_size=1, max_wait=LONG)
    stop_after.append(creator)
    saved = Article.objects.create(title="saved", author=alice)
    with pytest.raises(ValueError, match="already saved"):
        creator.create(saved)
    with pytest.raises(TypeError):
        creator.create(User(username="not an article"))
    with pytest.raises(TypeError):
        creator.create({"no_such_field": 1})
    [refused] = gather(creator.acreate(saved))
    assert isinstance(refused, ValueError)
    assert recorder.of("bulk_create") == []


def test_a_unique_violation_fails_only_its_item_the_others_are_saved(
    recorder: Recorder, stop_after: list[Any]
) -> None:
    """One taken username in a batch of 8: the batch is split, 7 users are saved.

    Each bulk_create call is one transaction: a failed call inserts nothing, so the retried
    halves cannot insert anyone twice.
    """
    User.objects.create_user("taken")
    creator = BulkCreateBatcher(User, max_batch_size=8, max_wait=LONG)
    stop_after.append(creator)
    names = [f"user{i}" for i in range(8)]
    names[5] = "taken"

    results = gather(*(creator.acreate(User(username=name)) for name in names))

    assert isinstance(results[5], IntegrityError)
    saved = [r for i, r in enumerate(results) if i != 5]
    assert all(isinstance(r, User) and r.pk is not None for r in saved), results
    assert User.objects.filter(username__startswith="user").count() == 7
    assert User.objects.filter(username="taken").count() == 1
    calls = recorder.of("bulk_create")
    # 1 + 2*log2(8): [0..7] fails, [0..3] ok, [4..7] fails, [4,5] fails, [4] ok, [5] fails, [6,7]
    assert [len(call.args) for call in calls] == [8, 4, 4, 2, 1, 1, 2]
    assert [call.error is not None for call in calls] == [True, False, True, True, False, True,
                                                          False]


def test_two_new_items_colliding_in_one_batch_the_first_wins(
    recorder: Recorder, stop_after: list[Any]
) -> None:
    creator = BulkCreateBatcher(User, max_batch_size=8, max_wait=LONG)
    stop_after.append(creator)
    names = [f"pair{i}" for i in range(8)]
    names[1] = names[6] = "same"

    results = gather(*(creator.acreate({"username": name}) for name in names))

    assert isinstance(results[1], User) and results[1].pk is not None
    assert isinstance(results[6], IntegrityError)
    assert all(isinstance(r, User) for i, r in enumerate(results) if i != 6)
    assert User.objects.filter(username="same").count() == 1
    assert User.objects.filter(username__startswith="pair").count() == 6


def test_split_on_error_off_fails_the_whole_batch(
    recorder: Recorder, stop_after: list[Any]
) -> None:
    User.objects.create_user("taken")
    creator = BulkCreateBatcher(User, max_batch_size=4, max_wait=LONG, split_on_error=False)
    stop_after.append(creator)

    results = gather(*(creator.acreate(User(username=name))
                       for name in ["a1", "a2", "taken", "a3"]))

    assert all(isinstance(r, IntegrityError) for r in results), results
    assert not User.objects.filter(username__in=["a1", "a2", "a3"]).exists()
    assert len(recorder.of("bulk_create")) == 1


# --- InBulkLoader ----------------------------------------------------------------------------


def test_loader_one_query_per_batch_duplicates_and_missing_keys(
    articles: list[Article], recorder: Recorder, stop_after: list[Any]
) -> None:
    first, second, _ = articles
    missing = max(a.pk for a in articles) + 1000
    # Three distinct keys fill a batch of 3: the duplicates never reach the engine.
    loader = InBulkLoader(Article, max_batch_size=3, max_wait=LONG)
    stop_after.append(loader)

    results = gather(loader.aload(first.pk), loader.aload(first.pk), loader.aload(missing),
                     loader.aload(second.pk), loader.aload(str(second.pk)))

    assert [r.pk if r is not None else None for r in results] == [
        first.pk, first.pk, None, second.pk, second.pk]
    assert results[0] is results[1], "callers of one key share one lookup and one instance"
    assert results[3] is results[4], "'5' and 5 are one key of an integer primary key"
    [call] = recorder.of("in_bulk")
    assert call.args == sorted([first.pk, second.pk, missing])
    assert call.statements("SELECT") == 1 and len(call.sql) == 1
    assert call.connection.connection is None
    assert loader.in_flight == 0


def test_loader_raise_missing_fails_only_the_missing_caller(
    articles: list[Article], recorder: Recorder, stop_after: list[Any]
) -> None:
    loader = InBulkLoader(Article, raise_missing=True, max_batch_size=2, max_wait=LONG)
    stop_after.append(loader)
    missing = max(a.pk for a in articles) + 1000

    found, absent = gather(loader.aload(articles[0].pk), loader.aload(missing))

    assert found == articles[0]
    assert isinstance(absent, Article.DoesNotExist)
    assert len(recorder.of("in_bulk")) == 1


def test_a_key_in_flight_is_not_looked_up_again(
    articles: list[Article], recorder: Recorder, stop_after: list[Any]
) -> None:
    """A caller arriving while its key's batch is already running shares that batch."""
    first, second, _ = articles
    recorder.gate = threading.Event()
    loader = InBulkLoader(Article, max_batch_size=1, max_wait=LONG)
    stop_after.append(loader)

    async def main() -> list[Any]:
        early = asyncio.ensure_future(loader.aload(first.pk))
        assert await asyncio.to_thread(recorder.started.wait, BOUND)  # in_bulk([first]) runs
        late = asyncio.ensure_future(loader.aload(first.pk))
        other = asyncio.ensure_future(loader.aload(second.pk))
        # Runs after the two tasks above have taken their first step (FIFO), so after they
        # have joined or queued their lookups.
        asyncio.get_running_loop().call_soon(recorder.gate.set)
        return await asyncio.wait_for(asyncio.gather(early, late, other), BOUND)

    try:
        early, late, other = asyncio.run(main())
    finally:
        recorder.gate.set()
    assert early is late and early.pk == first.pk and other.pk == second.pk
    assert [call.args for call in recorder.of("in_bulk")] == [[first.pk], [second.pk]]


def test_a_cancelled_caller_does_not_cancel_the_lookup_it_shares(
    articles: list[Article], recorder: Recorder, stop_after: list[Any]
) -> None:
    first = articles[0]
    recorder.gate = threading.Event()
    loader = InBulkLoader(Article, max_batch_size=1, max_wait=LONG)
    stop_after.append(loader)

    async def main() -> Any:
        quitter = asyncio.ensure_future(loader.aload(first.pk))
        stayer = asyncio.ensure_future(loader.aload(first.pk))
        assert await asyncio.to_thread(recorder.started.wait, BOUND)
        quitter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await quitter
        recorder.gate.set()
        return await asyncio.wait_for(stayer, BOUND)

    try:
        assert asyncio.run(main()).pk == first.pk
    finally:
        recorder.gate.set()
    assert len(recorder.of("in_bulk")) == 1


def test_loader_from_sync_threads_and_the_engine_convention(
    articles: list[Article], recorder: Recorder, stop_after: list[Any]
) -> None:
    loader = InBulkLoader(Article, max_batch_size=3, max_wait=LONG)
    stop_after.append(loader)
    keys = [a.pk for a in articles]
    with ThreadPoolExecutor(3) as pool:
        loaded = list(pool.map(lambda key: loader.load(key, BOUND), keys))
    assert [a.pk for a in loaded] == keys
    with ThreadPoolExecutor(3) as pool:
        called = list(pool.map(loader, keys))  # loader(key) in sync code is loader.call(key)
    assert [a.pk for a in called] == keys
    assert [call.args for call in recorder.of("in_bulk")] == [sorted(keys), sorted(keys)]


def test_loader_over_a_queryset_and_a_unique_field(
    articles: list[Article], alice: User, bob: User, recorder: Recorder, stop_after: list[Any]
) -> None:
    hidden = articles[1]
    Article.objects.filter(pk=hidden.pk).update(published=False)
    published = InBulkLoader(Article.objects.filter(published=True), max_batch_size=2,
                             max_wait=LONG)
    by_name = InBulkLoader(User, field_name="username", max_batch_size=2, max_wait=LONG)
    stop_after.extend([published, by_name])

    shown, gone = gather(published.aload(articles[0].pk), published.aload(hidden.pk))
    assert shown.pk == articles[0].pk and gone is None
    assert [u.pk for u in gather(by_name.aload("alice"), by_name.aload("bob"))] == [
        alice.pk, bob.pk]
    with pytest.raises(ValueError, match="unique"):
        InBulkLoader(Article, field_name="title")


def test_loader_bad_key_and_stopped_loader_fail_in_the_caller(
    articles: list[Article], recorder: Recorder
) -> None:
    loader = InBulkLoader(Article, max_batch_size=1, max_wait=LONG)
    with pytest.raises(ValidationError):
        loader.load("not a number")
    [bad] = gather(loader.aload("not a number"))
    assert isinstance(bad, ValidationError)
    loader.stop()
    with pytest.raises(BatcherStoppedError):
        loader.load(articles[0].pk)
    assert recorder.of("in_bulk") == []
