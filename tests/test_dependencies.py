"""Named requests, ``depends_on``, ``{result=NAME:PATH}`` references and
``omit_response_on_success`` (contract of issue #4, section A).

Order is observed through effects (a list made after a create sees it), overlap through
rendezvous at the barrier view (items that wait for each other can only all pass if they run at
the same time), never through timing.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from test_project.articles.models import Article, Comment
from tests.helpers import post_batch

pytestmark = pytest.mark.django_db

EXECUTOR = "batch_requests.concurrent.executor."
PARALLEL = {"thread": EXECUTOR + "ThreadBasedExecutor", "async": EXECUTOR + "AsyncExecutor"}
JSONAPI = "application/vnd.api+json"


# --- helpers --------------------------------------------------------------------------------


def _send(items: list[dict], token: str | None = None, *, quiet: bool = False,
          **fields: Any) -> dict:
    """POST a batch (with top-level ``fields``) as the token's user; return the 200 body.

    ``quiet``: a view's exception stays a 500 item instead of being re-raised by the client.
    """
    extra = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    client = Client(raise_request_exception=not quiet)
    response = post_batch(client, {"batch": items, **fields}, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def _batch(items: list[dict], token: str | None = None, *, quiet: bool = False,
           **fields: Any) -> list[dict]:
    return _send(items, token, quiet=quiet, **fields)["batch"]


def _refused(items: list[dict], token: str | None = None) -> list[dict]:
    """POST a batch that must be refused with 400; return its errors."""
    extra = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    response = post_batch(Client(), items, **extra)
    assert response.status_code == 400, response.content
    return response.json()["errors"]


def _statuses(items: list[dict]) -> list[int]:
    return [item["status_code"] for item in items]


def _json(item: dict) -> Any:
    return json.loads(item["body"])


def _not_run(item: dict) -> str:
    """The error text of an item that answered 424 Failed Dependency."""
    assert item["status_code"] == 424, item
    assert item["reason_phrase"] == "Failed Dependency"
    return _json(item)["error"]


def _titles(item: dict) -> list[str]:
    """Titles in a ``GET /api/articles/`` answer."""
    assert item["status_code"] == 200, item
    return [article["title"] for article in _json(item)]


def _create(title: str, **keys: Any) -> dict:
    """``POST /api/articles/``; ``keys`` adds name, depends_on, headers... to the item."""
    return {"method": "post", "url": "/api/articles/", "body": {"title": title}, **keys}


def _get(url: str, **keys: Any) -> dict:
    return {"method": "get", "url": url, **keys}


def _echo(body: Any, content_type: str | None = None, **keys: Any) -> dict:
    """``POST /views/echo/``, which answers with the raw body and the X-Custom header."""
    item = {"method": "post", "url": "/views/echo/", "body": body, **keys}
    if content_type:
        item["headers"] = {"Content-Type": content_type, **item.get("headers", {})}
    return item


def _barrier(key: str, parties: int, timeout: float = 5, **keys: Any) -> dict:
    """A GET that passes only when ``parties`` barrier items with this ``key`` wait at once;
    alone, it answers 500 after ``timeout`` seconds."""
    return _get(f"/views/barrier/?parties={parties}&name={key}&timeout={timeout}", **keys)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@pytest.fixture(params=sorted(PARALLEL))
def parallel(request, settings) -> str:
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 8,
                               "CONCURRENT_EXECUTOR": PARALLEL[request.param]}
    return request.param


@pytest.fixture(params=["sequential", *sorted(PARALLEL)])
def any_executor(request, settings) -> str:
    if request.param != "sequential":
        settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 8,
                                   "CONCURRENT_EXECUTOR": PARALLEL[request.param]}
    return request.param


# --- names ----------------------------------------------------------------------------------


def test_name_is_echoed_only_when_given() -> None:
    long_name = "n" * 100
    items = _batch([_get("/views/", name="step-1.a_B"), _get("/views/"),
                    _get("/views/nowhere/", name=long_name)])
    assert _statuses(items) == [200, 200, 404]
    assert items[0]["name"] == "step-1.a_B"
    assert "name" not in items[1]
    assert items[2]["name"] == long_name


# --- depends_on -----------------------------------------------------------------------------


def test_depends_on_a_later_item_runs_it_first(alice_token) -> None:
    items = _batch([
        _get("/api/articles/", depends_on="made"),
        _create("made later", name="made"),
        _get("/api/articles/"),
    ], alice_token)
    assert _statuses(items) == [200, 201, 200]
    assert _titles(items[0]) == ["made later"]  # ran after item 1
    assert items[1]["name"] == "made"


def test_depends_on_a_list_of_names(alice_token) -> None:
    items = _batch([
        _get("/api/articles/", depends_on=["one", "two"]),
        _create("first", name="one"),
        _create("second", name="two"),
    ], alice_token)
    assert _statuses(items) == [200, 201, 201]
    assert _titles(items[0]) == ["first", "second"]


def test_depends_on_an_earlier_item(alice_token) -> None:
    items = _batch([_create("first", name="one"),
                    _get("/api/articles/", depends_on=["one"])], alice_token)
    assert _titles(items[1]) == ["first"]


# --- references: where they may appear -------------------------------------------------------


def test_reference_in_the_url(alice_token) -> None:
    items = _batch([
        _create("Referenced", name="create"),
        _get("/api/articles/{result=create:$.id}/"),
        _get("/views/articles/{result=create:$.id}/"),
        _get("http://testserver/api/articles/{result=create:$.id}/"),
    ], alice_token)
    assert _statuses(items) == [201, 200, 200, 200]
    created = _json(items[0])
    assert _json(items[1])["id"] == created["id"]
    assert [_json(item)["title"] for item in items[1:]] == ["Referenced"] * 3


def test_a_reference_alone_orders_a_forward_dependency(alice_token) -> None:
    items = _batch([_get("/api/articles/{result=later:$.id}/"),
                    _create("Made second", name="later")], alice_token)
    assert _statuses(items) == [200, 201]
    assert _json(items[0])["title"] == "Made second"


def test_reference_in_a_json_body_creates_a_comment(alice_token) -> None:
    items = _batch([
        _create("Commented", name="article"),
        {"method": "post", "url": "/api/comments/", "name": "comment",
         "body": {"article": "{result=article:$.id}", "text": "First!"}},
        _get("/api/comments/{result=comment:$.id}/"),
    ], alice_token)
    assert _statuses(items) == [201, 201, 200]
    article_id = _json(items[0])["id"]
    assert _json(items[1])["article"] == article_id
    assert _json(items[2])["text"] == "First!"
    comment = Comment.objects.get()
    assert comment.article.title == "Commented" and comment.text == "First!"


def test_json_body_values_are_escaped_as_string_content(alice_token) -> None:
    title = 'He said "hi" \\ back, café'
    items = _batch([
        _create(title, name="c"),
        _get("/api/me/", name="me"),
        _echo({"text": "{result=c:$.title}", "id": "{result=c:$.id}",
               "me": "{result=me:$}", "nested": [{"deep": "x-{result=c:$.id}-y"}]}),
    ], alice_token)
    assert _statuses(items) == [201, 200, 200]
    article_id = _json(items[0])["id"]
    received = json.loads(_json(items[2])["body"])
    assert received == {"text": title, "id": str(article_id),
                        "me": _compact(_json(items[1])), "nested": [{"deep": f"x-{article_id}-y"}]}


def test_string_body_gets_the_value_as_is(alice_token) -> None:
    title = "a/b c&d"
    items = _batch([
        _create(title, name="c"),
        _echo("title={result=c:$.title}&id={result=c:$.id}", "text/plain"),
    ], alice_token)
    article_id = _json(items[0])["id"]
    assert _json(items[1])["body"] == f"title={title}&id={article_id}"


def test_reference_in_a_header_value_is_inserted_as_is(alice_token) -> None:
    title = "a/b c"
    items = _batch([
        _create(title, name="c"),
        _echo("", headers={"X-Custom": "title={result=c:$.title}; id={result=c:$.id}"}),
    ], alice_token)
    assert _statuses(items) == [201, 200]
    article_id = _json(items[0])["id"]
    assert _json(items[1])["x_custom"] == f"title={title}; id={article_id}"


def test_header_value_with_a_newline_answers_424(alice_token) -> None:
    items = _batch([
        _create("line1\nline2", name="c"),
        _create("never made", headers={"X-Custom": "{result=c:$.title}"}),
    ], alice_token)
    assert items[0]["status_code"] == 201
    _not_run(items[1])
    assert list(Article.objects.values_list("title", flat=True)) == ["line1\nline2"]


def test_a_substituted_value_is_not_scanned_again(alice_token, alice) -> None:
    article = Article.objects.create(title="{result=c:$.id}", author=alice)
    items = _batch([_get(f"/api/articles/{article.pk}/", name="c"),
                    _echo("title={result=c:$.title}", "text/plain")], alice_token)
    assert _json(items[1])["body"] == "title={result=c:$.id}"


# --- references: substituted values ----------------------------------------------------------


def test_substituted_forms_of_numbers_booleans_null_objects_and_arrays(alice_token) -> None:
    items = _batch([
        _create("Forms", name="art"),
        _get("/api/me/", name="me"),
        _get("/views/echo/", name="blank"),  # x_custom is null, files is {}
        _echo("a=1&a=2", "application/x-www-form-urlencoded", name="form"),
        _echo("id={result=art:$.id} published={result=art:$.published} "
              "author={result=art:$.author} none={result=blank:$.x_custom} "
              "files={result=blank:$.files} me={result=me:$} "
              "list={result=form:$.post.a} each={result=form:$.post.a[*]}", "text/plain"),
    ], alice_token)
    assert _statuses(items) == [201, 200, 200, 200, 200]
    article_id = _json(items[0])["id"]
    assert _json(items[3])["post"] == {"a": ["1", "2"]}
    assert _json(items[4])["body"] == (
        f"id={article_id} published=true author=alice none=null files={{}} "
        f'me={_compact(_json(items[1]))} list=["1","2"] each=1,2')


def test_several_matches_are_joined_with_commas(alice_token) -> None:
    items = _batch([
        _create("one", name="a"),
        _create("two", name="b"),
        _get("/api/articles/", name="list", depends_on=["a", "b"]),
        _get("/views/whoami/?ids={result=list:$[*].id}&titles={result=list:$[*].title}"),
        _echo({"ids": "{result=list:$[*].id}"}),
    ], alice_token)
    assert _statuses(items) == [201, 201, 200, 200, 200]
    ids = f"{_json(items[0])['id']},{_json(items[1])['id']}"
    whoami = _json(items[3])
    assert whoami["query"] == {"ids": [ids], "titles": ["one,two"]}
    assert whoami["full_path"] == f"/views/whoami/?ids={ids}&titles=one,two"  # "," not encoded
    assert json.loads(_json(items[4])["body"]) == {"ids": ids}


def test_url_values_are_percent_encoded(alice_token) -> None:
    title = "a/b c+d&e=f#g?h%i,j café"
    items = _batch([
        _create(title, name="c"),
        _create("decoy", name="decoy"),
        _get("/views/whoami/?q={result=c:$.title}&after=1"),
        _get("/api/articles/?search={result=c:$.title}", depends_on="decoy"),
    ], alice_token)
    assert _statuses(items) == [201, 201, 200, 200]
    whoami = _json(items[2])
    assert whoami["path"] == "/views/whoami/"
    assert whoami["query"] == {"q": [title], "after": ["1"]}
    encoded = quote(title, safe=",")  # everything but unreserved characters and ","
    assert whoami["full_path"].lower() == f"/views/whoami/?q={encoded}&after=1".lower()
    assert _titles(items[3]) == [title]


# --- failed dependencies ----------------------------------------------------------------------


def test_dependents_of_a_failure_answer_424_and_do_not_run(alice_token) -> None:
    items = _batch([
        _create("", name="first"),                                   # 400
        _create("second", name="second", depends_on="first"),        # 424
        _create("third", depends_on="second"),                       # 424, transitively
        _create("{result=first:$.id}"),                              # 424 through a reference
        _create("independent"),
    ], alice_token)
    assert _statuses(items) == [400, 424, 424, 424, 201]
    message = _not_run(items[1])
    assert "first" in message and "400" in message
    message = _not_run(items[2])
    assert "second" in message and "424" in message
    assert "first" in _not_run(items[3])
    assert items[1]["name"] == "second"
    assert list(Article.objects.values_list("title", flat=True)) == ["independent"]


def test_a_server_error_fails_its_dependents(alice_token) -> None:
    items = _batch([_get("/views/error/", name="boom"),
                    _create("never", depends_on="boom")], alice_token, quiet=True)
    assert _statuses(items) == [500, 424]
    message = _not_run(items[1])
    assert "boom" in message and "500" in message
    assert not Article.objects.exists()


def test_path_that_matches_nothing_answers_424(alice_token) -> None:
    items = _batch([
        _get("/api/me/", name="me"),
        _get("/api/articles/", name="empty"),
        _create("{result=me:$.nope}"),
        _get("/views/whoami/?id={result=empty:$[*].id}"),
        _get("/views/whoami/?user={result=me:$.username}"),
    ], alice_token)
    assert _statuses(items) == [200, 200, 424, 424, 200]
    message = _not_run(items[2])
    assert "{result=me:$.nope}" in message and "matched nothing" in message
    message = _not_run(items[3])
    assert "{result=empty:$[*].id}" in message and "matched nothing" in message
    assert not Article.objects.exists()


def test_reference_to_a_response_that_is_not_json_answers_424(alice_token) -> None:
    items = _batch([
        _get("/views/", name="page"),        # "Success!", text/html
        _get("/views/binary/", name="bin"),  # every byte value, application/octet-stream
        _get("/views/latin1/", name="txt"),  # text/plain; charset=iso-8859-1
        _create("{result=page:$.title}"),
        _get("/views/whoami/?b={result=bin:$.x}"),
        _get("/views/whoami/?t={result=txt:$}"),
        _get("/views/whoami/?again={result=page:$.title}"),  # the same reference, again
    ], alice_token)
    assert _statuses(items) == [200, 200, 200, 424, 424, 424, 424]
    for item, reference in zip(items[3:], ["{result=page:$.title}", "{result=bin:$.x}",
                                           "{result=txt:$}", "{result=page:$.title}"],
                               strict=True):
        message = _not_run(item)
        assert reference in message and "is not JSON" in message
    assert not Article.objects.exists()


def test_a_redirect_is_not_a_failure_but_a_404_is(alice_token) -> None:
    items = _batch([
        _get("/views/redirect/", name="moved"),
        _get("/views/nowhere/", name="missing"),
        _create("after the redirect", depends_on="moved"),
        _create("after the 404", depends_on="missing"),
    ], alice_token)
    assert _statuses(items) == [302, 404, 201, 424]
    assert "missing" in _not_run(items[3])
    assert list(Article.objects.values_list("title", flat=True)) == ["after the redirect"]


# --- refused before anything runs --------------------------------------------------------------

OK = _create("must not be created", name="ok")

REFUSED = {
    "duplicate-name": ([OK, _create("b", name="ok")], 1, "name"),
    "name-with-space": ([OK, _create("b", name="has space")], 1, "name"),
    "name-with-colon": ([OK, _create("b", name="a:b")], 1, "name"),
    "name-empty": ([OK, _create("b", name="")], 1, "name"),
    "name-too-long": ([OK, _create("b", name="n" * 101)], 1, "name"),
    "name-not-a-string": ([OK, _create("b", name=7)], 1, "name"),
    "name-non-ascii": ([OK, _create("b", name="café")], 1, "name"),
    "unknown-depends-on": ([OK, _create("b", depends_on="ghost")], 1, "depends_on"),
    "unknown-in-depends-on-list": ([OK, _create("b", depends_on=["ok", "ghost"])], 1,
                                   "depends_on"),
    "depends-on-number": ([OK, _create("b", depends_on=5)], 1, "depends_on"),
    "depends-on-object": ([OK, _create("b", depends_on={"ok": True})], 1, "depends_on"),
    "depends-on-list-of-numbers": ([OK, _create("b", depends_on=[1])], 1, "depends_on"),
    "depends-on-true": ([OK, _create("b", depends_on=True)], 1, "depends_on"),
    "reference-unknown-in-url": ([OK, _get("/api/articles/{result=ghost:$.id}/")], 1, "url"),
    "reference-unknown-in-body": ([OK, _create("{result=ghost:$.title}")], 1, "body"),
    "reference-unknown-in-nested-body": (
        [OK, _echo([{"a": ["{result=ghost:$.id}"]}])], 1, "body"),
    "reference-unknown-in-string-body": ([OK, _echo("x={result=ghost:$.id}", "text/plain")],
                                         1, "body"),
    "reference-unknown-in-header": (
        [OK, _echo("", headers={"X-Custom": "{result=ghost:$.id}"})], 1, "headers.X-Custom"),
    "bad-jsonpath-in-url": ([OK, _get("/api/articles/{result=ok:$.a[}/")], 1, "url"),
    "bad-jsonpath-in-body": ([OK, _create("{result=ok:$..[}")], 1, "body"),
    "bad-jsonpath-in-header": (
        [OK, _echo("", headers={"X-Custom": "{result=ok:$.a[}"})], 1, "headers.X-Custom"),
    "omit-not-boolean": ([OK, _create("b", omit_response_on_success="yes")], 1,
                         "omit_response_on_success"),
    "omit-number": ([OK, _create("b", omit_response_on_success=1)], 1,
                    "omit_response_on_success"),
}


@pytest.mark.parametrize(("items", "index", "field"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_before_anything_runs(alice_token, items, index, field) -> None:
    errors = _refused(items, alice_token)
    assert (index, field) in [(e["index"], e["field"]) for e in errors], errors
    assert not Article.objects.exists()


CYCLES = {  # the items, and the indexes of the items on the cycle
    "self": ([OK, _create("b", name="self", depends_on="self")], {1}),
    "two": ([_create("a", name="a", depends_on="b"), _create("b", name="b", depends_on=["a"])],
            {0, 1}),
    "three": ([_create("a", name="a", depends_on="c"), _create("b", name="b", depends_on="a"),
               OK, _create("c", name="c", depends_on="b")], {0, 1, 3}),
    "through-a-reference": ([OK, _create("{result=b:$.id}", name="a"),
                             _create("b", name="b", depends_on="a")], {1, 2}),
}


@pytest.mark.parametrize(("items", "cyclic"), CYCLES.values(), ids=CYCLES.keys())
def test_cycles_are_refused(alice_token, items, cyclic) -> None:
    errors = _refused(items, alice_token)
    matching = [e for e in errors if e["field"] == "depends_on" and "cycle" in e["message"]]
    assert matching, errors
    assert {e["index"] for e in matching} <= cyclic
    assert not Article.objects.exists()


def test_every_problem_is_reported_at_once(alice_token) -> None:
    errors = _refused([OK, _create("b", name="bad name"), _create("c", depends_on=5)],
                      alice_token)
    found = {(e["index"], e["field"]) for e in errors}
    assert {(1, "name"), (2, "depends_on")} <= found
    assert not Article.objects.exists()


# --- omit_response_on_success ---------------------------------------------------------------


def test_omit_response_on_success(alice_token) -> None:
    items = _batch([
        _create("kept", name="c", omit_response_on_success=True),
        _get("/api/articles/{result=c:$.id}/"),
        _create("", omit_response_on_success=True),
        _get("/views/binary/", omit_response_on_success=True),
        _create("shown", omit_response_on_success=False),
    ], alice_token)
    assert _statuses(items) == [201, 200, 400, 200, 201]
    assert "body" not in items[0] and "body_encoding" not in items[0]
    assert items[0]["reason_phrase"] == "Created"
    assert items[0]["headers"]["Content-Type"] == "application/json"
    assert items[0]["name"] == "c"
    assert _json(items[1])["title"] == "kept"  # the reference still saw the body
    assert "title" in _json(items[2])          # a failure keeps its body
    assert "body" not in items[3] and "body_encoding" not in items[3]
    assert _json(items[4])["title"] == "shown"
    assert list(Article.objects.values_list("title", flat=True)) == ["kept", "shown"]


# --- parallel executors respect the graph -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dependents_see_their_dependency(any_executor, alice_token) -> None:
    items = _batch([
        _get("/api/articles/", depends_on="c"),
        _create("created", name="c"),
        _get("/api/articles/{result=c:$.id}/"),
        {"method": "post", "url": "/api/comments/", "name": "comment",
         "body": {"article": "{result=c:$.id}", "text": "hello"}},
        _get("/api/articles/{result=c:$.id}/", depends_on=["comment"], name="last"),
        _create("", name="bad"),
        _create("never", depends_on="bad"),
        _get("/api/comments/", depends_on=["comment"]),
    ], alice_token)
    assert _statuses(items) == [200, 201, 200, 201, 200, 400, 424, 200]
    assert _titles(items[0]) == ["created"]
    assert _json(items[2])["title"] == "created"
    assert items[4]["name"] == "last"
    assert "bad" in _not_run(items[6])
    assert [c["text"] for c in _json(items[7])] == ["hello"]
    assert set(Article.objects.values_list("title", flat=True)) == {"created"}
    assert Comment.objects.get().article.title == "created"


@pytest.mark.django_db(transaction=True)
def test_independent_items_overlap_across_a_write_in_graph_mode(parallel, alice_token) -> None:
    # Without a graph, the POST would split the two barrier GETs into separate waves.
    key = uuid.uuid4().hex
    items = _batch([
        _barrier(key, 2),
        _create("between", name="c"),
        _barrier(key, 2),
        _get("/api/articles/{result=c:$.id}/"),
    ], alice_token)
    assert _statuses(items) == [200, 201, 200, 200]
    assert _json(items[3])["title"] == "between"


@pytest.mark.django_db(transaction=True)
def test_names_alone_keep_the_write_ordering(parallel, alice_token) -> None:
    # Negative control of the test above: no depends_on and no reference, so no graph mode.
    key = uuid.uuid4().hex
    items = _batch([
        _barrier(key, 2, timeout=0.3, name="b1"),
        _create("between", name="c"),
        _barrier(key, 2, timeout=0.3, name="b2"),
    ], alice_token)
    assert _statuses(items) == [500, 201, 500]


def test_dependents_of_one_item_run_together(parallel) -> None:
    key = uuid.uuid4().hex
    items = _batch([
        _get("/views/whoami/", name="who"),
        _barrier(key, 3, depends_on="who"),
        _barrier(key, 3, depends_on=["who"]),
        _get(_barrier(key, 3)["url"] + "&method={result=who:$.method}"),
    ])
    assert _statuses(items) == [200, 200, 200, 200]


def test_a_dependent_does_not_start_before_its_dependency_ends(parallel) -> None:
    # Negative control: the second barrier item waits for the first, so they cannot meet.
    key = uuid.uuid4().hex
    items = _batch([_barrier(key, 2, timeout=0.3, name="first"),
                    _barrier(key, 2, timeout=0.3, depends_on="first")])
    assert _statuses(items) == [500, 424]
    assert "first" in _not_run(items[1])


def test_a_dependency_that_timed_out_fails_its_dependents(parallel) -> None:
    items = _batch([_get("/views/sleep/?seconds=2", name="slow"),
                    _get("/views/", depends_on="slow"),
                    _get("/views/")], timeout=0.5)
    assert _statuses(items) == [504, 424, 200]
    message = _not_run(items[1])
    assert "slow" in message and "504" in message


# --- failure policies with dependencies --------------------------------------------------------


def test_on_error_stop_runs_in_dependency_order(alice_token) -> None:
    items = _batch([
        _get("/api/articles/", name="list", depends_on="c"),
        _create("first", name="c"),
        _create("", depends_on="list"),  # 400: stops the batch
        _create("after", depends_on="c"),
    ], alice_token, on_error="stop")
    assert _statuses(items) == [200, 201, 400, 424]
    assert _titles(items[0]) == ["first"]
    assert "request 2 failed" in _not_run(items[3])
    assert list(Article.objects.values_list("title", flat=True)) == ["first"]  # not rolled back


def test_atomic_with_dependencies_rolls_back(alice_token) -> None:
    body = _send([
        {"method": "post", "url": "/api/comments/", "name": "comment",
         "body": {"article": "{result=art:$.id}", "text": "in a transaction"}},
        _create("parent", name="art"),
        _get("/api/comments/{result=comment:$.id}/"),
        _create("", depends_on="comment"),
    ], alice_token, atomic=True)
    assert _statuses(body["batch"]) == [201, 201, 200, 400]
    assert _json(body["batch"][2])["text"] == "in a transaction"
    assert body["atomic"] == {"committed": False, "failed_index": 3}
    assert not Article.objects.exists() and not Comment.objects.exists()


def test_atomic_rolls_back_after_an_unresolvable_reference(alice_token) -> None:
    body = _send([
        _get("/views/whoami/?x={result=c:$.nope}"),
        _create("rolled back", name="c"),
        _create("never run"),
    ], alice_token, atomic=True)
    assert _statuses(body["batch"]) == [424, 201, 424]
    assert "matched nothing" in _not_run(body["batch"][0])
    assert body["atomic"] == {"committed": False, "failed_index": 0}
    assert not Article.objects.exists()


def test_atomic_with_dependencies_commits(alice_token) -> None:
    body = _send([
        {"method": "post", "url": "/api/comments/", "name": "comment",
         "body": {"article": "{result=art:$.id}", "text": "committed"}},
        _create("parent", name="art"),
    ], alice_token, atomic=True)
    assert _statuses(body["batch"]) == [201, 201]
    assert body["atomic"] == {"committed": True, "failed_index": None}
    assert Comment.objects.get().article.title == "parent"


# --- process executor ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dependencies_in_worker_processes(settings, alice_token, caplog) -> None:
    caplog.set_level(logging.INFO, logger="batch_requests")
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 2, "TIMEOUT": 30,
                               "CONCURRENT_EXECUTOR": EXECUTOR + "ProcessBasedExecutor"}
    try:
        items = _batch([
            _get("/api/articles/", depends_on="c"),
            _create("from a process", name="c"),
            _get("/api/articles/{result=c:$.id}/"),
            {"method": "post", "url": "/api/comments/",
             "body": {"article": "{result=c:$.id}", "text": "across processes"}},
            _create("", name="bad"),
            _create("never", depends_on="bad"),
        ], alice_token)
    finally:
        settings.BATCH_REQUESTS = {}  # shuts the pool down (setting_changed)
    assert _statuses(items) == [200, 201, 200, 201, 400, 424]
    assert _titles(items[0]) == ["from a process"]
    assert _json(items[2])["title"] == "from a process"
    assert "bad" in _not_run(items[5])
    assert Comment.objects.get().article.title == "from a process"
    assert not Article.objects.filter(title="never").exists()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "batch_requests"]
    assert "ProcessBasedExecutor" in line  # the items really ran in worker processes
    assert line.endswith("statuses 200 201 200 201 400 424")


# --- the showcase: JSON:API --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_jsonapi_article_comment_and_relationship(any_executor, alice_token) -> None:
    headers = {"Content-Type": JSONAPI, "Accept": JSONAPI}
    items = _batch([
        {"method": "post", "url": "/jsonapi/articles/", "name": "article", "headers": headers,
         "body": {"data": {"type": "articles", "attributes": {"title": "Showcase"}}}},
        {"method": "post", "url": "/jsonapi/comments/", "name": "comment", "headers": headers,
         "body": {"data": {
             "type": "comments", "attributes": {"text": "Linked by reference"},
             "relationships": {"article": {"data": {
                 "type": "articles", "id": "{result=article:$.data.id}"}}}}}},
        {"method": "get", "headers": {"Accept": JSONAPI}, "depends_on": "comment",
         "url": "/jsonapi/articles/{result=article:$.data.id}/relationships/comments/"},
    ], alice_token)
    assert _statuses(items) == [201, 201, 200], items
    article_id = _json(items[0])["data"]["id"]
    comment = _json(items[1])["data"]
    assert comment["relationships"]["article"]["data"] == {"type": "articles", "id": article_id}
    assert _json(items[2])["data"] == [{"type": "comments", "id": comment["id"]}]
    stored = Comment.objects.get(pk=comment["id"])
    assert stored.article.pk == int(article_id) and stored.article.title == "Showcase"
    assert stored.author.username == "alice" and stored.text == "Linked by reference"
