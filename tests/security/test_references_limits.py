"""References cost a bounded amount (issue 11, item 2).

``{result=NAME:PATH}`` paths are a safe JSONPath subset read by jsonpath-ng's base parser:
names, indices, wildcards, slices and one recursive descent. Regular expressions, filters,
named operators, unions and ``where`` are refused with a 400 before anything runs, and so is a
batch with more than MAX_REFERENCES references or a path longer than
MAX_REFERENCE_PATH_LENGTH, before any path is parsed. A value longer than
MAX_REFERENCE_VALUE_SIZE, a response nested too deeply, or paths that would visit more than
WALK_LIMIT values make the item answer 424, never the batch 500. Error messages quote only an
excerpt of what the caller sent.
"""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

import pytest
from django.test import Client

from batch_requests.dispatch import SubResult
from batch_requests.jsonpath import WALK_LIMIT, compile_path
from batch_requests.payload import parse_batch
from batch_requests.references import Unresolved, resolve
from test_project.articles.models import Article
from tests.helpers import batch_items, post_batch

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


# --- helpers --------------------------------------------------------------------------------


def _auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def _create(title: str, **keys: Any) -> dict:
    """A write: ``POST /api/articles/``."""
    return {"method": "post", "url": "/api/articles/", "body": {"title": title}, **keys}


def _echo(body: Any, content_type: str | None = None, **keys: Any) -> dict:
    """``POST /views/echo/``: answers with the raw body, the form fields and X-Custom."""
    item = {"method": "post", "url": "/views/echo/", "body": body, **keys}
    if content_type:
        item["headers"] = {"Content-Type": content_type, **item.get("headers", {})}
    return item


def _form(body: str, name: str = "form") -> dict:
    """An echo of a form body: its fields come back as ``$.post.<field>`` lists."""
    return _echo(body, FORM, name=name)


def _text_of(item: dict) -> str:
    """The body an echo item received, after its references were filled in."""
    assert item["status_code"] == 200, item
    return json.loads(item["body"])["body"]


def _refused(client: Client, items: list[dict], token: str) -> tuple[list[dict], bytes]:
    response = post_batch(client, items, **_auth(token))
    assert response.status_code == 400, response.content[:2000]
    return response.json()["errors"], response.content


def _error_at(errors: list[dict], index: int, field: str) -> str:
    messages = [e["message"] for e in errors if (e["index"], e["field"]) == (index, field)]
    assert messages, errors
    return messages[0]


def _not_run(item: dict) -> str:
    assert item["status_code"] == 424, item
    return json.loads(item["body"])["error"]


def _result(body: bytes, name_index: int = 0) -> SubResult:
    return SubResult(name_index, 200, "OK", [("Content-Type", "application/json")], body)


def _unique() -> str:
    return uuid.uuid4().hex[:12]


# --- the subset: refused before anything runs -------------------------------------------------

# (path, the field it is written in). Each one was accepted by the extended parser.
ATTACKS = {
    "regex-sub": ("$.body.`sub(/(a+)+$/, x)`", "url"),
    "regex-match-filter": ("$[?(@.body =~ '(a+)+$')]", "body"),
    "filter": ("$.post[?(@.x)]", "headers.X-Custom"),
    "named-operator-this": ("$.post.`this`", "url"),
    "named-operator-len": ("$.post.`len`", "body"),
    "union": ("$.body | $.method", "url"),
    "intersection": ("$.body & $.method", "url"),
    "where": ("$.post where a", "body"),
    "wherenot": ("$.post wherenot a", "body"),
    "two-recursive-descents": ("$..post..a", "url"),
    "descents-around-a-name": ("$..post.a..b", "body"),
    "slice-step-zero": ("$.post.a[::0]", "url"),
    "no-root": ("post.a", "url"),
    "root-inside": ("$.post.$", "body"),
}


def _holding(path: str, field: str) -> dict:
    reference = f"{{result=form:{path}}}"
    if field == "url":
        return {"method": "get", "url": f"/views/whoami/?v={reference}"}
    if field == "body":
        return _echo({"v": reference})
    return _echo("", headers={"X-Custom": reference})


@pytest.mark.parametrize(("path", "field"), ATTACKS.values(), ids=ATTACKS.keys())
def test_paths_outside_the_subset_are_refused_before_anything_runs(
        client: Client, alice_token: str, path: str, field: str) -> None:
    errors, _ = _refused(client, [_create("must not be created"), _form("a=1"),
                                  _holding(path, field)], alice_token)
    message = _error_at(errors, 2, field)
    assert "not supported" in message or "may" in message or "must" in message, message
    assert "references accept names" in message  # says what is accepted
    assert not Article.objects.exists()  # the write in the same batch did not run


def test_the_refusal_of_a_regex_names_what_is_refused(client: Client, alice_token: str) -> None:
    errors, _ = _refused(client, [_form("a=1"), _holding("$..post..a", "url"),
                                  _holding("$.post.`this`", "body"),
                                  _holding("$[?(@.x)]", "headers.X-Custom")], alice_token)
    assert "one recursive descent" in _error_at(errors, 1, "url")
    assert "named operators" in _error_at(errors, 2, "body")
    assert "filters, regular expressions" in _error_at(errors, 3, "headers.X-Custom")


def test_a_refused_path_is_parsed_once(client: Client, alice_token: str) -> None:
    path = f"$.x{_unique()}[?(@.y)]"
    before = compile_path.cache_info()
    for _ in range(2):
        _refused(client, [_form("a=1"), _holding(path, "url")], alice_token)
    after = compile_path.cache_info()
    assert after.misses - before.misses == 1  # the second batch reused the cached refusal
    assert after.hits - before.hits >= 1


# --- MAX_REFERENCES ---------------------------------------------------------------------------


def test_more_references_than_max_references_is_a_400(client: Client, alice_token: str) -> None:
    fifty = " ".join(["{result=form:$.method}"] * 50)
    fine = batch_items(client, [_form("a=1"), _echo(fifty, "text/plain")], **_auth(alice_token))
    assert _text_of(fine[1]) == " ".join(["POST"] * 50)  # 50 is the default limit: allowed

    errors, _ = _refused(client, [_create("must not be created"), _form("a=1"),
                                  _echo(fifty + " {result=form:$.method}", "text/plain")],
                         alice_token)
    assert "MAX_REFERENCES" in _error_at(errors, 2, "body")
    assert not Article.objects.exists()


def test_references_spelled_with_json_escapes_are_counted_too(client: Client,
                                                              alice_token: str) -> None:
    # "\u007b" is "{": the raw document never holds the text "{result=", the parsed one does.
    escaped = " ".join(["\\u007bresult=form:$.method}"] * 51)
    raw = ('{"batch": [{"method": "post", "url": "/api/articles/", "body": {"title": "no"}},'
           ' {"name": "form", "method": "post", "url": "/views/echo/", "body": "a=1",'
           ' "headers": {"Content-Type": "application/x-www-form-urlencoded"}},'
           ' {"method": "post", "url": "/views/echo/", "body": "' + escaped + '",'
           ' "headers": {"Content-Type": "text/plain"}}]}')
    assert "{result=" not in raw
    response = client.post("/api/v1/batch/", raw, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 400, response.content
    assert "MAX_REFERENCES" in _error_at(response.json()["errors"], 2, "body")
    assert not Article.objects.exists()


def test_the_count_names_the_item_and_field_where_it_passes_the_limit(
        client: Client, alice_token: str, settings) -> None:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_REFERENCES": 5}
    errors, _ = _refused(client, [
        _form("a=1"),
        _echo({"x": ["{result=form:$.method}"] * 3}),
        _echo("", headers={"X-Custom": "{result=form:$.method}" * 3}),  # the 6th is here
        {"method": "get", "url": "/views/whoami/?v={result=form:$.method}"},
    ], alice_token)
    assert [(e["index"], e["field"]) for e in errors] == [(2, "headers.X-Custom")]
    assert "MAX_REFERENCES" in errors[0]["message"]


def test_a_batch_of_many_unique_paths_is_refused_without_parsing_them(
        client: Client, alice_token: str) -> None:
    tag = _unique()
    many = " ".join(f"{{result=form:$.p{tag}{i}}}" for i in range(2500))  # 50,000 in all
    before = compile_path.cache_info()
    errors, content = _refused(client, [_form("a=1")] + [_echo(many, "text/plain")] * 20,
                               alice_token)
    assert compile_path.cache_info().misses == before.misses  # not one path was parsed
    assert [(e["index"], e["field"]) for e in errors] == [(1, "body")]
    assert len(content) < 1000


# --- MAX_REFERENCE_PATH_LENGTH ----------------------------------------------------------------


def test_a_path_longer_than_the_limit_is_a_400_before_it_is_parsed(
        client: Client, alice_token: str) -> None:
    at_limit = "$." + "a" * 198  # 200 characters: allowed (it matches nothing: 424)
    items = batch_items(client, [_form("a=1"), _holding(at_limit, "body")],
                        **_auth(alice_token))
    assert "matched nothing" in _not_run(items[1])

    too_long = "$." + "b" * 199 + _unique()
    before = compile_path.cache_info()
    errors, content = _refused(client, [_create("must not be created"), _form("a=1"),
                                        _holding(too_long, "url")], alice_token)
    assert compile_path.cache_info().misses == before.misses
    message = _error_at(errors, 2, "url")
    assert "MAX_REFERENCE_PATH_LENGTH" in message and "213 characters" in message
    assert "b" * 100 not in content.decode()  # only an excerpt is quoted
    assert not Article.objects.exists()


def test_the_path_length_limit_is_a_setting(client: Client, alice_token: str, settings) -> None:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_REFERENCE_PATH_LENGTH": 10}
    errors, _ = _refused(client, [_form("a=1"), _holding("$.post.a[0]", "body")], alice_token)
    assert "limit is 10" in _error_at(errors, 1, "body")
    items = batch_items(client, [_form("a=1"), _echo("v={result=form:$.post}", "text/plain")],
                        **_auth(alice_token))
    assert _text_of(items[1]) == 'v={"a":["1"]}'


def test_many_long_unique_bad_paths_get_a_short_error_body(client: Client,
                                                            alice_token: str) -> None:
    items = [_form("a=1")] + [
        _holding(f"$.a[{_unique()}" + "x" * 50_000, field)
        for field in ["url", "body", "headers.X-Custom"] * 6]
    errors, content = _refused(client, items, alice_token)
    assert len(errors) == 18
    assert len(content) < 10_000
    assert all(len(e["message"]) < 400 for e in errors)


def test_a_malformed_path_is_quoted_by_an_excerpt(client: Client, alice_token: str) -> None:
    path = "$.a[" + "y" * 150
    errors, _ = _refused(client, [_form("a=1"), _holding(path, "body")], alice_token)
    message = _error_at(errors, 1, "body")
    assert "not a supported JSONPath" in message
    assert "y" * 100 not in message and len(message) < 400


# --- MAX_REFERENCE_VALUE_SIZE -----------------------------------------------------------------


def test_a_value_longer_than_the_limit_answers_424(client: Client, alice_token: str,
                                                    settings) -> None:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_REFERENCE_VALUE_SIZE": 100}
    many = "&".join(["n=1"] * 51)  # joined: 51 ones and 50 commas, 101 characters
    items = batch_items(client, [
        _form(f"a={'x' * 100}&b={'y' * 101}&{many}"),
        _echo("v={result=form:$.post.a[0]}", "text/plain"),  # exactly 100: fine
        _echo("v={result=form:$.post.b[0]}", "text/plain"),  # a string of 101
        _echo("v={result=form:$.post.n[*]}", "text/plain"),  # many matches, joined
        _echo("v={result=form:$.post}", "text/plain"),  # an object, encoded
        _create("{result=form:$.body}"),  # a write that must not run
        _echo("v={result=form:$.method}", "text/plain"),  # short: fine
    ], **_auth(alice_token))
    assert [item["status_code"] for item in items] == [200, 200, 424, 424, 424, 424, 200]
    assert _text_of(items[1]) == "v=" + "x" * 100
    for item in items[2:6]:
        assert "MAX_REFERENCE_VALUE_SIZE" in _not_run(item)
    assert _text_of(items[6]) == "v=POST"
    assert not Article.objects.exists()


def test_a_matched_array_passing_the_limit_is_not_built() -> None:
    spec = parse_batch(json.dumps({"batch": [
        {"method": "get", "url": "/x/", "name": "a"},
        {"method": "get", "url": "/x/?v={result=a:$}"}]}).encode()).items
    response = _result(json.dumps(list(range(400_000))).encode())  # 2.6 MB as text
    with pytest.raises(Unresolved, match="MAX_REFERENCE_VALUE_SIZE"):
        resolve(spec[1], {"a": (0, response)})


# --- evaluation: 424, never a 500 ---------------------------------------------------------------


def _one_reference(path: str) -> Any:
    return parse_batch(json.dumps({"batch": [
        {"method": "get", "url": "/x/", "name": "a"},
        {"method": "get", "url": f"/x/?v={{result=a:{path}}}"}]}).encode()).items[1]


def test_a_response_nested_too_deeply_answers_424() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("$", "$..x", "$[0][0]"):
        with pytest.raises(Unresolved, match="nested too deeply"):
            resolve(_one_reference(path), {"a": (0, _result(deep))})


def test_a_deep_but_readable_response_is_walked_without_recursion() -> None:
    deep: Any = {"x": "found"}
    for _ in range(400):
        deep = {"d": [deep]}
    resolved = resolve(_one_reference("$..x"), {"a": (0, _result(json.dumps(deep).encode()))})
    assert resolved.url == "/x/?v=found"


def test_paths_of_one_batch_visit_at_most_walk_limit_values() -> None:
    items = parse_batch(json.dumps({"batch": [
        {"method": "get", "url": "/x/", "name": "a"},
        {"method": "get", "url": "/x/?v={result=a:$..nothing}"},
        {"method": "get", "url": "/x/?v={result=a:$..nowhere}"},
        {"method": "get", "url": "/x/?v={result=a:$[0]}"}]}).encode()).items
    count = WALK_LIMIT * 2 // 3  # one recursive descent visits it all; two cannot
    responses = {"a": (0, _result(json.dumps([0] * count).encode()))}
    cache: dict[str, Any] = {}  # one batch's cache, as BatchRun keeps it
    with pytest.raises(Unresolved, match="matched nothing"):
        resolve(items[1], responses, cache)
    with pytest.raises(Unresolved, match=f"visit more than {WALK_LIMIT} values"):
        resolve(items[2], responses, cache)
    with pytest.raises(Unresolved, match=f"visit more than {WALK_LIMIT} values"):
        resolve(items[3], responses, cache)  # the budget is the batch's
    assert resolve(items[3], responses).url == "/x/?v=0"  # another batch has its own


# --- the accepted forms still resolve ----------------------------------------------------------

ACCEPTED = {  # path -> value filled in, from the echo of "a=1&a=2&a=3&b=x"
    "name": ("$.method", "POST"),
    "names": ("$.post.b[0]", "x"),
    "quoted-names": ("$['post']['b'][0]", "x"),
    "two-names": ('$["method","x_custom"]', "POST,null"),
    "index": ("$.post.a[0]", "1"),
    "negative-index": ("$.post.a[-1]", "3"),
    "wildcard-on-an-array": ("$.post.a[*]", "1,2,3"),
    "wildcard-on-an-object": ("$.post.*", '["1","2","3"],["x"]'),
    "slice": ("$.post.a[1:3]", "2,3"),
    "slice-with-step": ("$.post.a[::2]", "1,3"),
    "slice-open-end": ("$.post.a[-2:]", "2,3"),
    "recursive-descent": ("$..b", '["x"]'),
    "recursive-descent-then-index": ("$..a[1]", "2"),
    "object": ("$.files", "{}"),
    "root-in-parentheses": ("($.post).b", '["x"]'),
}


def test_every_accepted_form_resolves(client: Client, alice_token: str) -> None:
    cases = list(ACCEPTED.values())
    items = batch_items(client, [_form("a=1&a=2&a=3&b=x")] + [
        _echo(f"v={{result=form:{path}}}", "text/plain") for path, _ in cases],
        **_auth(alice_token))
    got = {path: _text_of(item) for (path, _), item in zip(cases, items[1:], strict=True)}
    assert got == {path: f"v={value}" for path, value in cases}


DOCUMENT = {"a": 1, "b": {"a": [1, {"a": "x"}, [2, 3]], "c": None},
            "list": [{"id": 1, "t": "é"}, {"id": 2}, {"x": {"id": 3}}], "e": [], "s": "str",
            "*": 7, "1": "one"}
SAME_AS_JSONPATH_NG = [
    "$", "$.a", "$['a']", '$["a","b"]', "$.a,b", "$.b.a[0]", "$.b.a[-1]", "$.b.a[-1][0]",
    "$.b.a[0,2]", "$.*", "$[*]", "$.list[*].id", "$.list[1:3]", "$.list[::2]", "$.list[::-1]",
    "$.list[:]", "$..a", "$..id", "$..*", "$..[0]", "$..[*]", "$.b..a", "$..a[0]", "$..a.a",
    "$.list[*]..id", "$.'*'", "$.1", "$.s[0]", "$.list[-1:]", "$..b.c", "$.list[*].t",
    "$.nope", "$.e[*]", "$.b.a[9]", "$..zz",
]


@pytest.mark.skipif(not hasattr(importlib.import_module("jsonpath_ng.jsonpath"), "Wildcard"),
                    reason="jsonpath-ng 1.8 and older (the newest on Python 3.10) read '*' "
                    "differently from later releases; the subset follows the later meaning")
@pytest.mark.parametrize("path", SAME_AS_JSONPATH_NG)
def test_values_are_those_of_jsonpath_ngs_own_find(path: str) -> None:
    from jsonpath_ng import parse

    matches = parse(path).find(DOCUMENT)
    spec = parse_batch(json.dumps({"batch": [
        {"method": "get", "url": "/x/", "name": "a"},
        {"method": "post", "url": "/x/", "body": f"{{result=a:{path}}}",
         "headers": {"Content-Type": "text/plain"}}]}).encode()).items[1]
    responses = {"a": (0, _result(json.dumps(DOCUMENT).encode()))}
    if not matches:
        with pytest.raises(Unresolved, match="matched nothing"):
            resolve(spec, responses)
        return
    expected = ",".join(m.value if isinstance(m.value, str)
                        else json.dumps(m.value, separators=(",", ":")) for m in matches)
    assert resolve(spec, responses).body.decode() == expected
