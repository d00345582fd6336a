"""The pieces under dependencies and uploads: run order, waves, references, multipart bodies."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser
from django.test import Client

from batch_requests.concurrent.base import BaseExecutor
from batch_requests.concurrent.executor import get_executor
from batch_requests.dispatch import SubResult
from batch_requests.exceptions import BatchError
from batch_requests.graph import dependencies, levels, run_order, uses_graph
from batch_requests.payload import parse_batch
from batch_requests.references import Unresolved, resolve
from batch_requests.uploads import Upload, encode_multipart
from tests.helpers import batch_items


def _spec(*items: dict):
    return parse_batch(json.dumps({"batch": list(items)}).encode())


def _get(url: str = "/api/ping/", **extra) -> dict:
    return {"method": "get", "url": url, **extra}


def test_run_order_keeps_request_order_where_dependencies_allow() -> None:
    spec = _spec(_get(depends_on="c"), _get(name="b"), _get(name="c", depends_on="d"),
                 _get(), _get(name="d"))
    assert run_order(dependencies(spec.items)) == [1, 3, 4, 2, 0]


def test_levels_put_independent_items_in_one_wave() -> None:
    spec = _spec(_get(name="a"), _get(name="b"), _get(depends_on=["a", "b"], name="c"),
                 _get(depends_on="a"), _get(depends_on="c"))
    assert levels(dependencies(spec.items)) == [[0, 1], [2, 3], [4]]


def test_a_reference_is_a_dependency() -> None:
    spec = _spec(_get("/api/articles/{result=b:$.id}/"), _get(name="b"))
    assert uses_graph(spec.items)
    assert dependencies(spec.items) == {0: {1}, 1: set()}


def test_names_alone_do_not_switch_to_graph_mode() -> None:
    assert not uses_graph(_spec(_get(name="a"), _get(name="b")).items)


def test_a_longer_cycle_is_named_in_the_error() -> None:
    with pytest.raises(BatchError) as caught:
        _spec(_get(name="a", depends_on="c"), _get(name="b", depends_on="a"),
              _get(name="c", depends_on="b"))
    message = caught.value.problems[0].message
    assert "cycle" in message and "'a'" in message and "'b'" in message and "'c'" in message


def _result(index: int, body: object, content_type: str = "application/json") -> SubResult:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SubResult(index, 200, "OK", [("Content-Type", content_type)], data)


def test_values_are_written_for_where_they_land() -> None:
    spec = _spec(
        _get(name="a"),
        {"method": "post", "url": "/x/{result=a:$.title}/?ids={result=a:$.items[*].id}",
         "headers": {"X-Title": "{result=a:$.title}"},
         "body": {"title": "<{result=a:$.title}>", "meta": "{result=a:$.meta}",
                  "n": "{result=a:$.n}"}},
    ).items
    answer = {"title": 'say "hi"/ok', "items": [{"id": 1}, {"id": 2}], "meta": {"k": [1, True]},
              "n": 3.5}
    resolved = resolve(spec[1], {"a": (0, _result(0, answer))})
    assert resolved.url == "/x/say%20%22hi%22%2Fok/?ids=1,2"
    assert resolved.headers == {"X-Title": 'say "hi"/ok'}
    assert json.loads(resolved.body) == {"title": '<say "hi"/ok>', "meta": '{"k":[1,true]}',
                                         "n": "3.5"}


def test_a_text_body_gets_values_as_they_are() -> None:
    spec = _spec(_get(name="a"), {"method": "post", "url": "/x/", "body": "id={result=a:$.id}",
                                  "headers": {"Content-Type": "text/plain"}}).items
    assert resolve(spec[1], {"a": (0, _result(0, {"id": "a b"}))}).body == b"id=a b"


@pytest.mark.parametrize(("answer", "reason"), [
    (_result(0, b"<html></html>", "text/html"), "is not JSON"),
    (_result(0, {"other": 1}), "matched nothing"),
])
def test_unresolvable_references(answer: SubResult, reason: str) -> None:
    spec = _spec(_get(name="a"), _get("/x/{result=a:$.id}/")).items
    with pytest.raises(Unresolved, match=reason):
        resolve(spec[1], {"a": (0, answer)})


def test_a_header_value_may_not_gain_a_line_break() -> None:
    spec = _spec(_get(name="a"), _get(headers={"X-Id": "{result=a:$.id}"})).items
    with pytest.raises(Unresolved, match="CR, LF"):
        resolve(spec[1], {"a": (0, _result(0, {"id": "1\r\nX-Evil: 1"}))})


def test_multipart_bodies_parse_back_with_djangos_parser(settings) -> None:
    files = (("doc", Upload('r\u00e9sum\u00e9 "final".txt', "text/plain", b"caf\xc3\xa9\r\n--x")),
             ("raw", Upload("bytes.bin", "application/octet-stream", bytes(range(256)))))
    content_type, body = encode_multipart([("title", "h\u00e9llo"), ("tag", "a"),
                                           ("tag", "b")], files)
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    handlers = [MemoryFileUploadHandler()]
    post, parsed = MultiPartParser(meta, io.BytesIO(body), handlers, "utf-8").parse()
    assert isinstance(post, QueryDict)
    assert post.getlist("tag") == ["a", "b"] and post["title"] == "h\u00e9llo"
    assert parsed["doc"].read() == b"caf\xc3\xa9\r\n--x"
    assert parsed["doc"].name == "r\u00e9sum\u00e9 %22final%22.txt"  # quotes escaped as browsers do
    assert parsed["doc"].content_type == "text/plain"
    assert parsed["raw"].read() == bytes(range(256))


def test_an_executor_with_only_execute_runs_dependency_waves(settings, alice_token) -> None:
    """A custom executor written against ``execute`` alone still serves graph-mode batches."""
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True,
                               "CONCURRENT_EXECUTOR": "tests.test_graph.ExecuteOnly"}
    items = batch_items(Client(), [
        {"method": "post", "url": "/api/articles/", "body": {"title": "t"}, "name": "a"},
        {"method": "get", "url": "/api/articles/{result=a:$.id}/"}],
        HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert [i["status_code"] for i in items] == [201, 200]
    executor = get_executor()  # the instance that ran (its module may be a second import)
    assert type(executor).__name__ == "ExecuteOnly" and executor.calls == [1, 1]


def test_an_executor_with_neither_method_says_so() -> None:
    with pytest.raises(NotImplementedError, match="run_group"):
        BaseExecutor(1).run_group([], lambda sub: sub, None)



class ExecuteOnly(BaseExecutor):
    def __init__(self, num_workers: int) -> None:
        super().__init__(num_workers)
        self.calls: list[int] = []

    def execute(self, subrequests, run, timeout=None):
        self.calls.append(len(subrequests))
        return [run(sub) for sub in subrequests]
