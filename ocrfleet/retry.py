"""The one backoff rule of ocrfleet: exponential, capped, optionally jittered. Used by storage
retries, webhook deliveries, waits for a broker out of memory and hub downloads."""
from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry):
    ``min(cap, base * 2**attempt)``, times a random factor in ``[1 - jitter, 1 + jitter]``."""
    delay = min(cap, base * 2 ** max(0, attempt))
    return delay * random.uniform(1 - jitter, 1 + jitter) if jitter else delay
