"""Rate limits: ``"10/s"``, ``"100/m"``, ``"1000/h"`` as a token bucket."""
from __future__ import annotations

import threading
import time
from typing import Optional, Union

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: Union[str, float, int, None]) -> float:
    """Tasks per second; 0 means no limit."""
    if rate is None or rate == "":
        return 0.0
    if isinstance(rate, (int, float)):
        return float(rate)
    count, _, unit = str(rate).partition("/")
    try:
        return float(count) / _UNITS[(unit or "s")[0].lower()]
    except (KeyError, ValueError):
        raise ValueError(f"Invalid rate limit {rate!r}; use N/s, N/m or N/h") from None


class TokenBucket:
    """At most ``rate`` takes a second on average, with bursts of ``capacity``."""

    def __init__(self, rate: float, capacity: float = 1.0) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    @classmethod
    def from_rate(cls, rate: Union[str, float, int, None]) -> Optional[TokenBucket]:
        per_second = parse_rate(rate)
        return cls(per_second) if per_second > 0 else None

    def take(self) -> None:
        """Take one token, waiting for it when the bucket is empty."""
        while True:
            wait = self.try_take()
            if not wait:
                return
            time.sleep(wait)

    def try_take(self) -> float:
        """Take one token if there is one: 0.0; else the seconds until there may be."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate
