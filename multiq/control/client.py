"""``app.control``: commands sent to worker nodes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, Union

if TYPE_CHECKING:
    from multiq.app import MultiQ


class Control:
    """The client side of remote control."""

    def __init__(self, app: MultiQ) -> None:
        self.app = app

    def revoke(self, task_id: Union[str, Iterable[str]], terminate: bool = False,
               signal: str = "SIGTERM", **_: Any) -> Dict[str, Any]:
        """Revoke tasks: stored in Redis (so nodes started later also skip them) and
        announced to live nodes at once."""
        ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
        expires = float(self.app.conf.worker_revoke_expires or 86400)
        self.app.broker.revoke(ids, expires, {"terminate": terminate, "signal": signal})
        return {"ok": f"tasks {sorted(ids)} flagged as revoked"}
