"""Token buckets for rate limits (failed auth per IP, manual triggers per job).

Pure: the caller passes the current monotonic time, so tests need no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Float slack: a caller that waits exactly the returned time must get its token.
_SLACK = 1e-6


@dataclass
class TokenBuckets:
    """One bucket per key; `capacity` tokens refilled at `per_second`."""

    capacity: float
    per_second: float
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """Spend a token for `key`. Returns 0 if allowed, else seconds until one is free."""
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.per_second)
        if tokens < 1 - _SLACK:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.per_second
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting is the safe direction
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds until `key` may act again, without spending a token."""
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.per_second)
        return 0.0 if tokens >= 1 - _SLACK else (1 - tokens) / self.per_second
