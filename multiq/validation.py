"""``@app.task(pydantic=True)``: arguments and results checked and converted with pydantic
models, as Celery 5.5+ does.

On the worker, each argument whose parameter is annotated with a ``pydantic.BaseModel``
subclass (or ``Optional`` of one) is validated into that model (``model_validate``, with
``pydantic_strict`` and ``pydantic_context``); a returned model of the return annotation's
class is stored as ``model_dump(mode="json", **pydantic_dump_kwargs)``. On the sender, model
arguments of annotated parameters are dumped whole (``model_dump(mode="json")``, so they
validate back into the same model), to be sent as JSON.
Other arguments and results pass untouched. pydantic is imported only for such tasks.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from multiq.exceptions import ImproperlyConfigured


def wrap(fun: Callable[..., Any], task_name: str, bind: bool, strict: bool = False,
         context: Optional[Dict[str, Any]] = None,
         dump_kwargs: Optional[Dict[str, Any]] = None) -> Tuple[Callable[..., Any], Any]:
    """``(run, dump_arguments)`` for the task function ``fun``."""
    try:
        import pydantic
    except ImportError as exc:
        raise ImproperlyConfigured("pydantic=True needs pydantic: pip install pydantic") \
            from exc
    base = pydantic.BaseModel
    signature = inspect.signature(fun)
    try:
        hints = typing.get_type_hints(fun)
    except Exception:  # (a name only the type checker sees): the raw annotations
        hints = {name: p.annotation for name, p in signature.parameters.items()}
        hints["return"] = signature.return_annotation
    dump = {"mode": "json", **(dump_kwargs or {})}
    validation_context = {**(context or {}), "multiq_task_name": task_name}

    def model_of(name: str, value: Any) -> Any:
        annotation = _unoptional(hints.get(name), value)
        return annotation if inspect.isclass(annotation) and issubclass(annotation, base) \
            else None

    @functools.wraps(fun)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            model = model_of(name, value)
            if model is not None:
                bound.arguments[name] = model.model_validate(value, strict=strict,
                                                             context=validation_context)
        value = fun(*bound.args, **bound.kwargs)
        returns = _unoptional(hints.get("return"), value)
        if isinstance(value, base) and inspect.isclass(returns) and isinstance(value, returns):
            return value.model_dump(**dump)
        return value

    positional = [name for name, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][int(bind):]

    def dump_arguments(args: Sequence[Any], kwargs: Dict[str, Any]) -> Tuple[Any, Any]:
        """(The sender's) model arguments as the JSON-able dicts they validate from."""
        def plain(name: Optional[str], value: Any) -> Any:
            model = model_of(name, value) if name is not None else None
            return value.model_dump(mode="json") if model is not None \
                and isinstance(value, model) else value
        names = positional + [None] * max(0, len(args) - len(positional))
        return ([plain(n, v) for n, v in zip(names, args)],
                {k: plain(k, v) for k, v in (kwargs or {}).items()})

    return run, dump_arguments


def _unoptional(annotation: Any, value: Any) -> Any:
    """``X`` of ``Optional[X]`` (``X | None``) for a value that is not None."""
    args = typing.get_args(annotation)
    if value is not None and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation
