"""Unit tests for the result document helpers: how exceptions travel in a FAILURE document."""
from __future__ import annotations

import json
import sys
import types
import uuid
from typing import Iterator

import pytest

from multiq.backends.base import exception_from_dict, exception_to_dict, make_doc
from multiq.exceptions import SoftTimeLimitExceeded, TaskError


def roundtrip(exc: BaseException) -> BaseException:
    """What a client rebuilds from a worker's exception, through JSON as in Redis."""
    return exception_from_dict(json.loads(json.dumps(exception_to_dict(exc))))


@pytest.fixture
def errors_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """An importable module ``proj_errors_<hex>`` with custom exceptions."""
    name = f"proj_errors_{uuid.uuid4().hex}"
    module = types.ModuleType(name)

    class PaymentDeclined(Exception):
        pass

    class Outer:
        class Inner(ValueError):
            pass

    class NeedsTwo(Exception):
        def __init__(self, code: int, detail: str) -> None:
            super().__init__(f"{code}: {detail}")

    for cls in (PaymentDeclined, Outer, NeedsTwo):
        cls.__module__ = name
    PaymentDeclined.__qualname__ = "PaymentDeclined"
    Outer.__qualname__ = "Outer"
    Outer.Inner.__module__ = name
    Outer.Inner.__qualname__ = "Outer.Inner"
    NeedsTwo.__qualname__ = "NeedsTwo"
    module.PaymentDeclined = PaymentDeclined  # type: ignore[attr-defined]
    module.Outer = Outer  # type: ignore[attr-defined]
    module.NeedsTwo = NeedsTwo  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    yield module


def test_to_dict_uses_celery_field_names() -> None:
    info = exception_to_dict(ValueError("bad value", 3))
    assert info == {"exc_type": "ValueError", "exc_message": ["bad value", 3],
                    "exc_module": "builtins"}
    json.dumps(info)


def test_builtin_exception_round_trip() -> None:
    for exc in (ZeroDivisionError("division by zero"), KeyError("k"), ValueError("a", 2),
                OSError(2, "No such file"), RuntimeError()):
        back = roundtrip(exc)
        assert type(back) is type(exc)
        assert back.args == exc.args


def test_multiq_exception_round_trip() -> None:
    back = roundtrip(SoftTimeLimitExceeded("soft limit"))
    assert type(back) is SoftTimeLimitExceeded
    assert str(back) == "soft limit"


def test_custom_importable_exception_round_trip(errors_module: types.ModuleType) -> None:
    exc = errors_module.PaymentDeclined("card 4242 declined")
    info = exception_to_dict(exc)
    assert info["exc_module"] == errors_module.__name__
    assert info["exc_type"] == "PaymentDeclined"
    back = roundtrip(exc)
    assert type(back) is errors_module.PaymentDeclined
    assert back.args == ("card 4242 declined",)

    nested = roundtrip(errors_module.Outer.Inner("deep"))
    assert type(nested) is errors_module.Outer.Inner
    assert str(nested) == "deep"


def test_unimportable_exception_becomes_task_error() -> None:
    info = {"exc_type": "PaymentDeclined", "exc_message": ["card declined", 402],
            "exc_module": f"no_such_module_{uuid.uuid4().hex}"}
    exc = exception_from_dict(info)
    assert isinstance(exc, TaskError)
    assert exc.exc_type == "PaymentDeclined"
    assert exc.exc_module == info["exc_module"]
    assert "card declined" in str(exc) and "402" in str(exc)
    assert "PaymentDeclined" in str(exc)


def test_exception_gone_from_the_client_becomes_task_error(
    errors_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = exception_to_dict(errors_module.PaymentDeclined("declined"))
    monkeypatch.delitem(sys.modules, errors_module.__name__)  # the client lacks the module
    exc = exception_from_dict(info)
    assert isinstance(exc, TaskError)
    assert exc.exc_type == "PaymentDeclined"
    assert "declined" in str(exc)


def test_missing_attribute_or_non_exception_becomes_task_error() -> None:
    missing = exception_from_dict({"exc_type": "NoSuchError", "exc_message": ["m"],
                                   "exc_module": "builtins"})
    assert isinstance(missing, TaskError) and missing.exc_type == "NoSuchError"
    not_exc = exception_from_dict({"exc_type": "dumps", "exc_message": ["m"],
                                   "exc_module": "json"})
    assert isinstance(not_exc, TaskError) and not_exc.exc_type == "dumps"


def test_exception_whose_constructor_differs_becomes_task_error(
    errors_module: types.ModuleType,
) -> None:
    exc = exception_from_dict(exception_to_dict(errors_module.NeedsTwo(7, "broken")))
    assert isinstance(exc, (errors_module.NeedsTwo, TaskError))
    assert "7: broken" in str(exc)
    if isinstance(exc, TaskError):
        assert exc.exc_type == "NeedsTwo"


def test_unserializable_arguments_are_kept_as_text() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    info = exception_to_dict(ValueError(Thing()))
    json.dumps(info)  # what is stored must be JSON
    back = exception_from_dict(info)
    assert isinstance(back, ValueError)
    assert "<thing>" in str(back)


def test_not_an_exception_description() -> None:
    for info in ("some text", None, {"no": "exc_type"}, 42):
        exc = exception_from_dict(info)
        assert isinstance(exc, TaskError)


def test_missing_module_means_builtins() -> None:
    exc = exception_from_dict({"exc_type": "KeyError", "exc_message": ["k"]})
    assert type(exc) is KeyError


def test_failure_document_fields() -> None:
    doc = make_doc("tid", "FAILURE", exception_to_dict(ZeroDivisionError("x")), "Traceback...")
    assert set(doc) == {"status", "result", "traceback", "children", "date_done", "task_id"}
    assert doc["status"] == "FAILURE" and doc["task_id"] == "tid"
    assert doc["result"]["exc_type"] == "ZeroDivisionError"
    assert doc["children"] == [] and doc["date_done"]
    assert make_doc("tid", "PENDING")["date_done"] is None
    json.dumps(doc)

