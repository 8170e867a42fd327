"""The solo pool: requests run one at a time in the node's main thread."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

from multiq.pools.base import Execute, Fail, Pool

if TYPE_CHECKING:
    from multiq.worker.items import Request


class SoloPool(Pool):
    kind = "solo"
    runs_inline = True

    def __init__(self, execute: Execute, concurrency: int = 1, *,
                 fail: Optional[Fail] = None) -> None:
        super().__init__(execute, 1, fail=fail)
        self.current: Optional[Request] = None

    def free_slots(self) -> int:
        return 1

    def apply(self, req: Request) -> None:
        self.current = req
        try:
            self.execute(req)
        except Exception as exc:  # not the task's own (an outcome): it fails, the node goes on
            if self.fail is None:
                raise
            self.fail(req, exc)
        finally:
            self.current = None

    def active(self) -> List[Request]:
        return [self.current] if self.current is not None else []
