"""Unit tests for the message envelope: serializers, compression, refusals, bad bytes."""
from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from multiq.exceptions import ContentDisallowed, DecodeError, MultiQError
from multiq.message import Message, decode, peek

COMPRESSIONS = ["zlib", "bzip2", "gzip", "lzma"]


def make_message(**fields: Any) -> Message:
    values: dict = dict(
        id="6f1d7c1e-3c39-4b5e-9d43-4b0b3f0e9a11", task="proj.tasks.add",
        args=[1, "two", [3.5, None], {"k": True}], kwargs={"x": 1, "nested": {"y": [1, 2]}},
        queue="images", priority=7, eta=1700000000.5, expires=1700003600.0, retries=2,
        headers={"origin": "gen1@host"}, options={"link": [{"task": "cb"}]},
        root_id="root-1", parent_id="parent-1", shadow="nice name", sent=1699999999.25,
    )
    values.update(fields)
    return Message(**values)


def assert_same(got: Message, sent: Message) -> None:
    for name in ("id", "task", "args", "kwargs", "queue", "priority", "eta", "expires",
                 "retries", "headers", "options", "root_id", "parent_id", "shadow", "sent"):
        assert getattr(got, name) == getattr(sent, name), name


# -- round trips -------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    msg = make_message()
    data = msg.encode("json")
    assert isinstance(data, bytes)
    json.loads(data)  # the envelope is JSON
    got = decode(data, ["json"])
    assert_same(got, msg)


def test_minimal_message_round_trip_has_defaults() -> None:
    msg = Message(id="i", task="t")
    got = decode(msg.encode(), ["json"])
    assert (got.id, got.task, got.args, got.kwargs) == ("i", "t", [], {})
    assert got.retries == 0 and got.priority is None and got.eta is None


def test_msgpack_round_trip() -> None:
    pytest.importorskip("msgpack")
    msg = make_message()
    data = msg.encode("msgpack")
    got = decode(data, ["json", "msgpack"])
    assert_same(got, msg)
    with pytest.raises(ContentDisallowed):
        decode(data, ["json"])


def test_pickle_is_refused_unless_accepted() -> None:
    when = dt.datetime(2022, 9, 22, 9, 2, 39, tzinfo=dt.timezone.utc)
    msg = make_message(args=[(1, 2), {3, 4}], kwargs={"when": when})
    data = msg.encode("pickle")
    with pytest.raises(ContentDisallowed):
        decode(data, ["json"])
    with pytest.raises(ContentDisallowed):
        decode(data, ["json", "msgpack"])
    got = decode(data, ["json", "pickle"])
    assert got.args == [(1, 2), {3, 4}]  # pickle keeps Python types
    assert got.kwargs == {"when": when}
    assert got.id == msg.id and got.task == msg.task


def test_content_type_names_are_accepted_too() -> None:
    data = make_message().encode("pickle")
    got = decode(data, ["application/json", "application/x-python-serialize"])
    assert got.task == "proj.tasks.add"


def test_json_refused_when_not_accepted() -> None:
    pytest.importorskip("msgpack")
    with pytest.raises(ContentDisallowed):
        decode(make_message().encode("json"), ["msgpack"])


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
def test_compression_round_trip(serializer: str, compression: str) -> None:
    if serializer == "msgpack":
        pytest.importorskip("msgpack")
    msg = make_message()
    data = msg.encode(serializer, compression)
    got = decode(data, ["json", "msgpack", "pickle"])
    assert_same(got, msg)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compression_makes_repetitive_payloads_smaller(compression: str) -> None:
    msg = make_message(args=["x" * 20000], kwargs={})
    plain = msg.encode("json")
    packed = msg.encode("json", compression)
    assert len(packed) < len(plain) / 5
    assert decode(packed, ["json"]).args == ["x" * 20000]


def test_unknown_serializer_and_compression_are_errors() -> None:
    with pytest.raises(MultiQError):
        make_message().encode("yaml-ish")
    with pytest.raises(MultiQError):
        make_message().encode("json", "brotli-ish")


def test_non_ascii_arguments() -> None:
    msg = make_message(task="加法运算", args=["张三", "🙂", "Grüße"],
                       kwargs={"名字": "小家伙", "age": 13}, id="小家伙")
    for serializer in ("json", "pickle"):
        for compression in (None, "zlib"):
            got = decode(msg.encode(serializer, compression), ["json", "pickle"])
            assert got.task == "加法运算" and got.id == "小家伙"
            assert got.args == ["张三", "🙂", "Grüße"]
            assert got.kwargs == {"名字": "小家伙", "age": 13}
    envelope = json.loads(msg.encode("json").decode("utf-8"))
    assert envelope["id"] == "小家伙"


def test_peek_reads_the_envelope_without_the_body() -> None:
    data = make_message().encode("pickle", "zlib")
    env = peek(data)
    assert env["id"] == "6f1d7c1e-3c39-4b5e-9d43-4b0b3f0e9a11"
    assert env["task"] == "proj.tasks.add"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"\xff\xfe\x00garbage",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"no": "id or task"}',
    b'"just a string"',
    b"\x80\x04\x95",  # the start of a pickle, not an envelope
])
def test_undecodable_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data, ["json", "pickle"])


def _envelope(**fields: Any) -> bytes:
    env = {"v": 1, "id": "i", "task": "t", "queue": "multiq", "retries": 0, "sent": 0}
    env.update(fields)
    return json.dumps(env).encode()


@pytest.mark.parametrize("data", [
    _envelope(ct="application/json", body="!!! not base64 !!!"),
    _envelope(ct="application/json", body=base64.b64encode(b"{broken json").decode()),
    _envelope(ct="application/json", ce="zlib", body=base64.b64encode(b"not zlib").decode()),
    _envelope(ct="application/json", body=base64.b64encode(b'{"a": 1}').decode()),
    _envelope(ct="application/json", body=base64.b64encode(b"[1, 2, 3]").decode()),
    _envelope(ct="application/x-python-serialize",
              body=base64.b64encode(b"\x80\x04garbage").decode()),
    _envelope(args="not a list", kwargs={}),
    _envelope(args=[], kwargs=[1, 2]),
])
def test_bad_bodies_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data, ["json", "pickle"])


def test_an_unknown_content_type_is_refused() -> None:
    data = _envelope(ct="application/x-yaml", body=base64.b64encode(b"a: 1").decode())
    with pytest.raises((ContentDisallowed, DecodeError)):
        decode(data, ["json"])


# -- the send path's envelope ----------------------------------------------------------------


@pytest.mark.parametrize("args, kwargs", [
    ([], {}),
    ([1, "two", [3.5, None], {"k": True}], {"x": 1, "nested": {"y": [1, 2]}}),
    ((1, 2), {}),  # a tuple is sent as a list
    (["张三", "🙂", "Grüße", "quote \" and \\ and \u2028"], {"名字": "小家伙"}),
    ([1e300, -0.0, 10 ** 30], {"big": 2 ** 70}),
])
def test_plain_envelope_is_byte_for_byte_the_general_one(args: Any, kwargs: Any) -> None:
    from multiq.message import envelope

    fields = ("6f1d7c1e-3c39-4b5e-9d43-4b0b3f0e9a11", "proj.tasks.加法", "imäges",
              1699999999.25, args, kwargs)
    plain = envelope(*fields, retries=2)
    general = envelope(*fields, retries=2, serializer="application/json")  # not the fast path
    assert plain == general
    assert plain == Message(*fields[:2], args=list(args), kwargs=kwargs, queue=fields[2],
                            retries=2, sent=fields[3]).encode()
    assert decode(plain, ["json"]).args == list(args)


@pytest.mark.parametrize("sent", [float("nan"), float("inf"), 0, 1700000000])
def test_unusual_sent_times_take_the_general_path(sent: Any) -> None:
    from multiq.message import envelope

    assert envelope("i", "t", "q", sent, [1], {}) == \
        envelope("i", "t", "q", sent, [1], {}, serializer="application/json")


# -- field checks: each field of an envelope is checked where it is decoded ----------------------


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("fields, field", [
    ({"id": 12345}, "id"),
    ({"id": ""}, "id"),
    ({"id": None}, "id"),
    ({"task": 7}, "task"),
    ({"task": ""}, "task"),
    ({"queue": ["multiq"]}, "queue"),
    ({"args": {"a": 1}}, "args"),
    ({"args": "not a list"}, "args"),
    ({"kwargs": [1]}, "kwargs"),
    ({"retries": -1}, "retries"),
    ({"retries": "2"}, "retries"),
    ({"retries": True}, "retries"),
    ({"retries": 1.5}, "retries"),
    ({"sent": "yesterday"}, "sent"),
    ({"eta": "soon"}, "eta"),
    ({"eta": True}, "eta"),
    ({"expires": "tomorrow"}, "expires"),
    ({"expires": [1]}, "expires"),
    ({"countdown": "10"}, "countdown"),
    ({"priority": "high"}, "priority"),
    ({"priority": 10}, "priority"),
    ({"priority": -1}, "priority"),
    ({"priority": True}, "priority"),
    ({"priority": 5.0}, "priority"),
    ({"root_id": 1}, "root_id"),
    ({"parent_id": ["p"]}, "parent_id"),
    ({"shadow": {"name": "x"}}, "shadow"),
    ({"headers": "origin"}, "headers"),
    ({"headers": [["origin", "x"]]}, "headers"),
    ({"options": [1, 2]}, "options"),
    ({"options": "link"}, "options"),
    ({"options": {"timelimit": 5}}, "options.timelimit"),
    ({"options": {"timelimit": [5]}}, "options.timelimit"),
    ({"options": {"timelimit": ["5", None]}}, "options.timelimit"),
    ({"options": {"timelimit": [-1, None]}}, "options.timelimit"),
    ({"options": {"timelimit": [True, None]}}, "options.timelimit"),
    ({"options": {"ignore_result": "yes"}}, "options.ignore_result"),
    ({"options": {"link": "cb"}}, "options.link"),
    ({"options": {"link": [{"task": "cb"}, 3]}}, "options.link"),
    ({"options": {"link": {"args": []}}}, "options.link"),
    ({"options": {"link_error": [{"task": "cb", "args": "x"}]}}, "options.link_error"),
    ({"options": {"link_error": {"task": "cb", "kwargs": [1]}}}, "options.link_error"),
    ({"ct": 1, "body": ""}, "ct"),
    ({"ct": "application/json", "ce": 9, "body": ""}, "ce"),
    ({"ct": "application/json", "body": 123}, "body"),
])
def test_a_field_of_the_wrong_type_is_a_decode_error_naming_it(fields: Any, field: str) -> None:
    with pytest.raises(DecodeError, match=rf"Invalid message: {field}\b.* must be"):
        decode(_envelope(**fields), ["json"])


def test_non_finite_times_are_refused() -> None:
    for value in ("NaN", "Infinity", "-Infinity"):
        data = _envelope(eta=0).replace(b'"eta": 0', b'"eta": ' + value.encode())
        with pytest.raises(DecodeError, match="eta must be a finite number"):
            decode(data, ["json"])


def test_the_message_names_what_was_expected_and_what_came() -> None:
    with pytest.raises(DecodeError) as info:
        decode(_envelope(expires="tomorrow"), ["json"])
    assert str(info.value) == ("Invalid message: expires must be a finite number or null, "
                               "not str 'tomorrow'")


def test_json_nested_too_deeply_is_a_decode_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    data = b'{"id": "i", "task": "t", "args": ' + deep + b"}"
    with pytest.raises(DecodeError, match="nested too deeply"):
        peek(data)
    with pytest.raises(DecodeError):
        decode(data, ["json"])
    body = base64.b64encode(b"[" + deep + b", {}]").decode()  # in a serialized body too
    with pytest.raises(DecodeError, match="json"):
        decode(_envelope(ct="application/json", body=body), ["json"])
    msgpack = pytest.importorskip("msgpack")
    packed = b"\x92" + b"\x91" * 100_000 + b"\x90" + msgpack.packb({})
    with pytest.raises(DecodeError, match="msgpack"):
        decode(_envelope(ct="application/x-msgpack", body=base64.b64encode(packed).decode()),
               ["json", "msgpack"])


def test_body_kwargs_must_have_string_keys() -> None:
    msgpack = pytest.importorskip("msgpack")
    body = base64.b64encode(msgpack.packb([[1], {b"one": 1}])).decode()
    with pytest.raises(DecodeError, match="kwargs must be a mapping with string keys"):
        decode(_envelope(ct="application/x-msgpack", body=body), ["json", "msgpack"])
    body = base64.b64encode(msgpack.packb([{"a": 1}, {}])).decode()
    with pytest.raises(DecodeError, match="args must be a list"):
        decode(_envelope(ct="application/x-msgpack", body=body), ["json", "msgpack"])


def test_an_unknown_compression_is_a_decode_error() -> None:
    body = base64.b64encode(b"[[], {}]").decode()
    with pytest.raises(DecodeError, match="compression"):
        decode(_envelope(ct="application/json", ce="brotli-ish", body=body), ["json"])


def test_valid_values_of_every_checked_field_are_accepted() -> None:
    got = decode(_envelope(
        sent=1700000000, eta=1700000001, expires=1700000002.5, countdown=3, priority=0,
        root_id="r", parent_id=None, shadow="s", headers={"origin": "o"},
        options={"link": {"task": "cb", "args": [], "kwargs": {}, "options": {}},
                 "link_error": [{"task": "eb"}], "timelimit": [10, None],
                 "ignore_result": False, "something_else": object.__name__},
        args=[1], kwargs={"k": 2}), ["json"])
    assert (got.sent, got.eta, got.expires, got.priority) == (1700000000, 1700000001,
                                                              1700000002.5, 0)
    assert got.options["timelimit"] == [10, None] and got.headers == {"origin": "o"}
    nulls = decode(_envelope(priority=None, eta=None, expires=None, headers=None,
                             options=None, sent=None), ["json"])
    assert nulls.headers == {} and nulls.options == {} and nulls.sent == 0.0
    assert decode(_envelope(args=[_nested(50)]), ["json"]).args == [_nested(50)]


def test_a_group_members_envelope_decodes_as_the_general_one() -> None:
    import json as _json

    from multiq.message import decode, envelope
    fast = envelope("id-1", "t.add", "q", 1.25, [1, "x"], {"k": 2},
                    options={"group_id": 'g"1\u00e9', "group_index": 7})
    general = envelope("id-1", "t.add", "q", 1.25, [1, "x"], {"k": 2},
                       options={"group_id": 'g"1\u00e9', "group_index": 7, "x": None})
    assert _json.loads(fast)["options"] == {"group_id": 'g"1\u00e9', "group_index": 7}
    a, b = decode(fast, {"application/json"}), decode(general, {"application/json"})
    assert (a.id, a.args, a.kwargs, a.options["group_id"], a.options["group_index"]) == \
        (b.id, b.args, b.kwargs, b.options["group_id"], b.options["group_index"])
