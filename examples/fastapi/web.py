"""A FastAPI application that sends multiq tasks and awaits their results without
blocking its event loop."""
from typing import Any, Dict, List

from fastapi import FastAPI, HTTPException
from tasks import add, app, slow_square

from multiq.exceptions import TimeoutError

api = FastAPI(title="multiq with FastAPI")


@api.post("/add")
async def add_now(x: int, y: int) -> Dict[str, Any]:
    """Send ``add`` and wait (asynchronously) for its value."""
    result = await add.adelay(x, y)
    try:
        return {"id": result.id, "value": await result.aget(timeout=10)}
    except TimeoutError:
        raise HTTPException(504, f"task {result.id} did not finish in 10 s") from None


@api.post("/squares")
async def squares(n: int) -> Dict[str, List[int]]:
    """Send ``n`` async tasks at once and gather their values."""
    results = [await slow_square.adelay(i) for i in range(n)]
    return {"values": [await r.aget(timeout=30) for r in results]}


@api.post("/later")
async def later(x: int, y: int) -> Dict[str, str]:
    """Send ``add`` and return its id at once."""
    return {"id": (await add.aapply_async((x, y), countdown=1)).id}


@api.get("/result/{task_id}")
async def result(task_id: str) -> Dict[str, Any]:
    res = app.AsyncResult(task_id)
    return {"state": res.state, "value": res.result if res.successful() else None}
