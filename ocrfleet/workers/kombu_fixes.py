"""Workaround for a kombu 5.7 Redis-transport crash on broker connection loss (found by
tests/reliability/test_faults.py::test_redis_restart_during_200_jobs).

When Redis goes away, Celery's consumer closes the broken connection; closing the channel
restores unacked messages (``QoS.restore_unacked``) through a connection whose ``client`` is
already None, so kombu raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``.
That is not a connection error, ``ignore_errors`` lets it through and the worker exits with
"Unrecoverable error". An ack/reject of a task that finishes in that window fails the same way.

Here those three QoS calls swallow only that AttributeError: the messages stay in the Redis
``unacked`` hash (persisted by AOF) and the visibility-timeout sweep restores them; a job run
again finds its result object and finishes with the same result (at-least-once, idempotent).
Same family as celery/kombu#582 and #970. Remove once kombu handles it.
"""
from __future__ import annotations

import functools
import logging

from kombu.transport import redis as kombu_redis

log = logging.getLogger("ocrfleet.kombu_fixes")


def _guard(name: str) -> None:
    original = getattr(kombu_redis.QoS, name)
    if getattr(original, "_ocrfleet_guarded", False):
        return

    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except AttributeError as exc:  # the channel's connection was already torn down
            log.warning("kombu redis QoS.%s skipped after a broker connection loss (%r); unacked messages "
                        "stay in Redis and come back after the visibility timeout", name, exc)
            return None

    guarded._ocrfleet_guarded = True
    setattr(kombu_redis.QoS, name, guarded)


def apply() -> None:
    for name in ("restore_unacked", "ack", "reject"):
        _guard(name)
