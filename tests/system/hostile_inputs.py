"""Hypothesis strategies for hostile input to a live node (tests/system/test_fuzz_hostile.py).

A strategy draws *templates*; ``render(bad, tag)`` turns one into the bytes that go to
Redis, with a tag unique to the run inside them (so its dead-letter entry can be found) and
says which result, if any, must read FAILURE. Every template is bad by construction: none
of them may run a task. Field values are only ever drawn from what the envelope rules
(SPEC §3 "Bad input") call wrong for that field, never from what a reasonable check could
call right, so what the test expects does not depend on the draw.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from hypothesis import strategies as st

KNOWN_TASK = "sysq_reliable.record"  # also the probe task, whose limits the fuzz attacks

# -- junk values ---------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _sig_or_none(v: Any) -> bool:
    return v is None or isinstance(v, dict) or (isinstance(v, list)
                                                and all(isinstance(x, dict) for x in v))


def _timelimit_ok(v: Any) -> bool:
    return v is None or (isinstance(v, list) and len(v) == 2
                         and all(x is None or _number(x) for x in v))


#: Envelope field -> whether a value is acceptable there. A mutation draws a value for
#: which this is False (falsy values are never drawn for fields read as ``x or {}``).
VALID: Dict[str, Callable[[Any], bool]] = {
    "id": lambda v: isinstance(v, str),  # "" is left out: neither clearly right nor wrong
    "task": lambda v: isinstance(v, str) and v != "",
    "args": lambda v: isinstance(v, list),
    "kwargs": lambda v: isinstance(v, dict),
    "eta": lambda v: v is None or _number(v),
    "expires": lambda v: v is None or _number(v),
    "sent": lambda v: v is None or _number(v),
    "countdown": lambda v: v is None or _number(v),
    "priority": lambda v: v is None or (type(v) is int and 0 <= v <= 9),
    "retries": lambda v: type(v) is int and v >= 0,
    "root_id": lambda v: v is None or isinstance(v, str),
    "parent_id": lambda v: v is None or isinstance(v, str),
    "shadow": lambda v: v is None or isinstance(v, str),
    "headers": lambda v: isinstance(v, dict) or not v,
    "options": lambda v: isinstance(v, dict) or not v,
    "options.timelimit": lambda v: _timelimit_ok(v) or not v,
    "options.link": lambda v: _sig_or_none(v) or not v,
    "options.link_error": lambda v: _sig_or_none(v) or not v,
    "options.ignore_result": lambda v: v is None or type(v) in (bool, int, float),
}

# Hand-picked wrong values hypothesis would rarely hit by itself.
EXTRA_WRONG: Dict[str, Tuple[Any, ...]] = {
    "expires": ("tomorrow",), "eta": ("soon", float("nan")), "retries": (-1, 1.5),
    "priority": ("high", 10, -1, 4.0, True), "options": ("x", [1]), "headers": ("h",),
    "options.timelimit": (5, [1, 2, 3], ["a", "b"]), "kwargs": ([1],), "args": ({"a": 1},),
    "id": (5, ["x"]), "task": (7, ""),
}


def wrong(field: str) -> st.SearchStrategy:
    """Values that are wrong for ``field`` (see VALID)."""
    ok = VALID[field]
    drawn = junk.filter(lambda v: not ok(v))
    extra = EXTRA_WRONG.get(field)
    return st.sampled_from(extra) | drawn if extra else drawn


assert not any(VALID[f](v) for f, values in EXTRA_WRONG.items() for v in values)


# -- stream and delayed-set messages -------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A hostile message template. ``kind`` decides how ``value`` is rendered."""

    kind: str  # raw | json | unknown | wrong | missing | body | deep | huge
    value: Any
    band: int = 0
    head: Optional[bytes] = None  # delayed set only: a garbage "<band>,<n>" head


@dataclass(frozen=True)
class Rendered:
    data: bytes
    result_id: Optional[str]  # the id whose result must read FAILURE, if it has a str id


def base_envelope(tag: str) -> Dict[str, Any]:
    return {"v": 1, "id": tag, "task": KNOWN_TASK, "queue": "multiq", "retries": 0,
            "sent": 1.0, "args": ["fz"], "kwargs": {}, "fz": tag}


def _set(env: Dict[str, Any], field: str, value: Any) -> None:
    if not field.startswith("options."):
        env[field] = value
    elif isinstance(env.setdefault("options", {}), dict):  # else options is wrong already
        env["options"][field.split(".", 1)[1]] = value


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _envelope_result(env: Dict[str, Any]) -> Rendered:
    rid = env.get("id")
    return Rendered(_dumps(env), rid if isinstance(rid, str) and rid else None)


def render(bad: Bad, tag: str) -> Rendered:
    """The bytes of ``bad`` carrying ``tag``, and the result id that must read FAILURE."""
    mark = tag.encode()
    if bad.kind == "raw":
        return Rendered(bad.value + b" " + mark, None)
    if bad.kind == "json":  # valid JSON that is not an envelope object
        return Rendered(_dumps([tag, bad.value] if bad.value is not None else tag), None)
    env = base_envelope(tag)
    if bad.kind == "unknown":
        env["task"] = f"fuzz.unknown.{bad.value}"
    elif bad.kind == "wrong":
        for field, value in bad.value:
            _set(env, field, value)
    elif bad.kind == "missing":
        for field in bad.value:
            env.pop(field, None)
    elif bad.kind == "body":
        del env["args"], env["kwargs"]
        env.update(bad.value)
    elif bad.kind == "deep":
        depth, opener, closer = bad.value
        env["id"] = 7  # a decoder that gives up on the nesting cannot read an id either
        head = _dumps(env)[:-1] + b', "args": ['
        return Rendered(head + opener * depth + closer * depth + b"]}", None)
    elif bad.kind == "huge":
        env["id"] = 8
        env["args"] = ["x" * bad.value]
    return _envelope_result(env)


def delayed_body(bad: Bad, data: bytes) -> Tuple[bytes, bool]:
    """The delayed-hash body of ``bad``; whether its head is garbage (then the only record
    of it can be a dead-letter entry)."""
    if bad.head is None:
        return b"%d,0|" % bad.band + data, False
    if b"|" in bad.head:
        return bad.head + data, True
    return bad.head + b"|" + data, True


GARBAGE_HEADS = (b"", b"x", b"7", b",", b"a,0", b"10,0", b"-1,0", b"99,0", b"5.5,0",
                 b"\xff\xfe,0", b"x|", b"7|")

_field = st.sampled_from(sorted(VALID))
_mutation = _field.flatmap(lambda f: st.tuples(st.just(f), wrong(f)))
_values: Dict[str, st.SearchStrategy] = {
    "raw": st.binary(max_size=64),
    "json": junk,
    "unknown": st.text(max_size=16),
    "wrong": st.lists(_mutation, min_size=1, max_size=3),
    "missing": st.tuples(
        st.sets(st.sampled_from(["id", "task"]), min_size=1),
        st.sets(st.sampled_from(["v", "queue", "retries", "sent", "args", "kwargs"])),
    ).map(lambda t: t[0] | t[1]),
    "body": st.fixed_dictionaries({"body": junk.filter(lambda v: v != "")},
                                  optional={"ct": junk, "ce": junk}),
    "deep": st.tuples(st.integers(20_000, 120_000),
                      st.sampled_from([(b"[", b"]"), (b'{"a":[', b"]}")]))
    .map(lambda t: (t[0], *t[1])),
    "huge": st.integers(200_000, 1_500_000),
}
#: The kinds of bad message, "wrong" fields drawn three times as often as the others.
KINDS = ("raw", "json", "unknown", "wrong", "wrong", "wrong", "missing", "body", "deep",
         "huge")
bad_messages = st.one_of([st.builds(Bad, kind=st.just(k), value=_values[k],
                                    band=st.integers(0, 9)) for k in KINDS])

delayed_messages = st.one_of([st.builds(Bad, kind=st.just(k), value=_values[k],
                                        band=st.integers(0, 9),
                                        head=st.none() | st.sampled_from(GARBAGE_HEADS))
                              for k in KINDS if k != "huge"])

# -- control and revoke channels -----------------------------------------------------------

SAFE_METHODS = ("ping", "stats", "active", "reserved", "scheduled", "registered", "revoked",
                "conf", "query_task", "active_queues", "clock", "report", "enable_events",
                "disable_events", "no_such_command")
_not_number = junk.filter(lambda v: not _number(v) and v is not None)
_not_int_like = junk.filter(lambda v: not (type(v) in (int, float) and v > 0)
                            and not (isinstance(v, str) and v.strip().isdigit())
                            and v is not None and not isinstance(v, bool))
_containers = junk.filter(lambda v: isinstance(v, (list, dict)))

#: A mutating command with arguments that are wrong for it (never right by chance; a
#: ``shutdown`` is a legitimate stop and is never sent).
_mutating = st.one_of(
    st.fixed_dictionaries({"task_name": st.just(KNOWN_TASK), "soft": _not_number,
                           "hard": _not_number}).map(lambda a: ("time_limit", a)),
    st.fixed_dictionaries({"task_name": st.just(KNOWN_TASK), "rate_limit": _containers})
    .map(lambda a: ("rate_limit", a)),
    st.tuples(st.sampled_from(["pool_grow", "pool_shrink"]),
              st.fixed_dictionaries({"n": _not_int_like})),
    st.fixed_dictionaries({"max": _not_int_like, "min": _not_int_like})
    .map(lambda a: ("autoscale", a)),
    st.fixed_dictionaries({"task_id": junk.filter(lambda v: not isinstance(v, (str, list)))},
                          optional={"terminate": junk, "signal": junk})
    .map(lambda a: ("revoke", a)),
    st.tuples(st.sampled_from(["add_consumer", "cancel_consumer"]),
              st.fixed_dictionaries({"queue": junk.filter(lambda v: not isinstance(v, str))})),
)

_command_object = st.one_of(
    st.fixed_dictionaries({}, optional={
        "method": st.sampled_from(SAFE_METHODS) | junk,
        "arguments": junk | st.dictionaries(st.text(max_size=8), junk, max_size=3),
        "destination": junk, "expires": junk, "reply_to": junk, "ticket": junk}),
    _mutating.map(lambda ma: {"method": ma[0], "arguments": ma[1], "destination": None,
                              "reply_to": None}),
)
control_messages = st.one_of(
    st.binary(max_size=48), junk.map(lambda v: _dumps(v)), _command_object.map(_dumps))

revoke_messages = st.one_of(
    st.binary(max_size=48), junk.map(lambda v: _dumps(v)),
    st.fixed_dictionaries({}, optional={"ids": junk, "terminate": junk, "signal": junk})
    .map(_dumps))


@dataclass(frozen=True)
class Batch:
    stream: Tuple[Bad, ...]
    delayed: Tuple[Bad, ...]
    control: Tuple[bytes, ...]
    revoke: Tuple[bytes, ...]


batches = st.builds(
    Batch,
    stream=st.lists(bad_messages, max_size=8).filter(
        lambda xs: sum(b.kind == "huge" for b in xs) <= 1).map(tuple),
    delayed=st.lists(delayed_messages, max_size=4).map(tuple),
    control=st.lists(control_messages, max_size=5).map(tuple),
    revoke=st.lists(revoke_messages, max_size=4).map(tuple),
).filter(lambda b: b.stream or b.delayed or b.control or b.revoke)
