"""Views: two that send a task and return its id, one that reports a task's result."""
from typing import Any, Dict

from flask import Blueprint, request

from multiq.result import AsyncResult

from . import tasks

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


@bp.post("/add")
def start_add() -> Dict[str, Any]:
    a = request.form.get("a", type=int)
    b = request.form.get("b", type=int)
    result = tasks.add_together.delay(a, b)
    return {"result_id": result.id}


@bp.post("/greet")
def start_greet() -> Dict[str, Any]:
    result = tasks.greet.delay(request.form.get("name", "world"))
    return {"result_id": result.id}


@bp.get("/result/<id>")
def task_result(id: str) -> Dict[str, Any]:
    result = AsyncResult(id)
    ready = result.ready()
    successful = result.successful() if ready else None
    return {
        "ready": ready,
        "successful": successful,
        "value": result.result if successful else None,
        "error": repr(result.result) if ready and not successful else None,
    }
