"""The result document and how exceptions travel inside it."""
from __future__ import annotations

import builtins
import datetime as dt
import importlib
from typing import Any, Dict, List, Optional, Type

from multiq import exceptions, states
from multiq.describe import exception_args, safe_str


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_doc(
    task_id: str,
    status: str,
    result: Any = None,
    traceback: Optional[str] = None,
    extended: Optional[Dict[str, Any]] = None,
    children: Optional[list] = None,
) -> Dict[str, Any]:
    """A result document with Celery's field names."""
    done = status in states.READY_STATES
    doc: Dict[str, Any] = {
        "status": status,
        "result": result,
        "traceback": traceback,
        "children": children or [],
        "date_done": utcnow().isoformat() if done else None,
        "task_id": task_id,
    }
    if extended:
        doc.update(extended)
    return doc


class RemoteError(Exception):
    """An exception raised in another process, carried as its description."""

    def __init__(self, info: Dict[str, Any]) -> None:
        super().__init__(*(info.get("exc_message") or []))
        self.info = info

    def __str__(self) -> str:
        msg = self.info.get("exc_message") or []
        return f"{self.info.get('exc_type')}: {', '.join(map(str, msg))}"

    def __repr__(self) -> str:
        """As the original's: ``ValueError('x')``, not ``RemoteError(...)`` (events show it)."""
        msg = self.info.get("exc_message")
        args = msg if isinstance(msg, (list, tuple)) else [msg]
        return f"{self.info.get('exc_type') or 'Exception'}({', '.join(map(repr, args))})"


def exception_to_dict(exc: BaseException) -> Dict[str, Any]:
    """``{exc_type, exc_message, exc_module}`` as Celery stores it; never raises.

    Arguments JSON cannot carry are replaced by their text; when the arguments cannot be
    read at all, or there are none but the exception has a text of its own, the message
    is the exception's text (``"<unprintable T>"`` at worst).
    """
    if isinstance(exc, RemoteError):
        return dict(exc.info)
    cls = type(exc)
    args = exception_args(exc)
    if args == ():  # no arguments, but maybe a text of its own (a pydantic ValidationError)
        text = safe_str(exc)
        args = (text,) if text else args
    message = [safe_str(exc)] if args is None else _json_args(args)
    return {"exc_type": cls.__qualname__, "exc_message": message,
            "exc_module": str(cls.__module__)}


def _json_args(args: tuple) -> List[Any]:
    from multiq.serialization import json_dumps

    try:
        json_dumps(args)
        return list(args)
    except Exception:
        pass
    out: List[Any] = []
    for arg in args:
        try:
            json_dumps(arg)
            out.append(arg)
        except Exception:
            out.append(safe_str(arg))
    return out


#: Raised again in the caller, these would stop it (exit it, or end a generator), not
#: report a task's failure: ``get()`` raises a TaskError naming them instead.
_CONTROL_FLOW = (SystemExit, KeyboardInterrupt, GeneratorExit)


def exception_from_dict(info: Any) -> BaseException:
    """Rebuild the exception of a FAILURE document; TaskError when its type is not importable
    (or is one of the interpreter's own exits and interrupts)."""
    if not isinstance(info, dict) or "exc_type" not in info:
        return exceptions.TaskError(str(info))
    name, module = info.get("exc_type", ""), info.get("exc_module") or "builtins"
    message = info.get("exc_message", [])
    args = message if isinstance(message, (list, tuple)) else [message]
    cls = _find_exception_class(module, name)
    if cls is not None and not issubclass(cls, _CONTROL_FLOW):
        try:
            return cls(*args)
        except Exception:
            pass
    text = ", ".join(str(a) for a in args)
    return exceptions.TaskError(text, exc_type=name, exc_module=module)


def _find_exception_class(module: str, name: str) -> Optional[Type[BaseException]]:
    try:
        obj: Any = builtins if module == "builtins" else importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None


def parse_date(value: Any) -> Optional[dt.datetime]:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
