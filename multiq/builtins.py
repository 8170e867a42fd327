"""Tasks every app has, for the canvas: map, starmap, chunks, accumulate."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List

if TYPE_CHECKING:
    from multiq.app import MultiQ


def register(app: MultiQ) -> None:
    """Add the built-in tasks to ``app`` (their names start with ``multiq.``)."""
    from multiq.canvas import chunks, maybe_signature

    def xmap(task: Dict[str, Any], it: Iterable[Any]) -> List[Any]:
        fun = maybe_signature(task, app).type
        return [fun(item) for item in it]

    def xstarmap(task: Dict[str, Any], it: Iterable[Any]) -> List[Any]:
        fun = maybe_signature(task, app).type
        return [fun(*item) for item in it]

    def run_chunks(task: Dict[str, Any], it: Iterable[Any], n: int) -> Any:
        return chunks(task, it, n, app=app).apply_async().id

    def accumulate(*args: Any, index: Any = None) -> Any:
        return args[index] if index is not None else args

    for fun, name in ((xmap, "multiq.map"), (xstarmap, "multiq.starmap"),
                      (run_chunks, "multiq.chunks"), (accumulate, "multiq.accumulate")):
        fun.__module__ = "multiq.builtins"
        app._create_task(fun, name=name)
