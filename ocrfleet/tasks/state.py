"""Small Redis state shared by tasks: delivery counters, cancel flags, dead letters."""
from __future__ import annotations

import json
import os
import time

import redis

from ocrfleet.config.redis import client_for
from ocrfleet.config.settings import Settings
from ocrfleet.jobs import contract as keys
from ocrfleet.redaction import redact_obj
from ocrfleet.retry import backoff

OOM_WAIT_S = 600  # longest a task waits for a broker out of memory to take writes again

_clients: dict[tuple[int, str], redis.Redis] = {}


def client(s: Settings) -> redis.Redis:
    key = (os.getpid(), s.redis)  # never reuse a connection pool across fork
    if key not in _clients:
        _clients[key] = client_for(s)
    return _clients[key]


def start(s: Settings, job_id: str, where: str) -> tuple[int, bool]:
    """One round trip when a job starts: count this delivery, mark the job running and read
    its cancel flag. Returns (deliveries, cancelled). The running mark (``host:pid``) is what
    ``Job.status()`` reads until the backend record exists; it is left to expire, because
    deleting it at the end would open a gap before the record is stored."""
    def run():
        pipe = client(s).pipeline(transaction=False)
        pipe.incr(keys.deliveries_key(s, job_id))
        pipe.expire(keys.deliveries_key(s, job_id), s.result_expires)
        pipe.set(keys.running_key(s, job_id), where, ex=s.visibility_timeout)
        pipe.exists(keys.cancel_key(s, job_id))
        return pipe.execute()

    deliveries, _, _, cancelled = through_oom(run)
    return int(deliveries), bool(cancelled)


def through_oom(fn, wait_s: float = OOM_WAIT_S):
    """Run ``fn`` (Redis writes), waiting while Redis answers "OOM command not allowed"
    (maxmemory + noeviction): the job's message stays unacked meanwhile, nothing is lost."""
    deadline = time.time() + wait_s
    attempt = 0
    while True:
        try:
            return fn()
        except redis.ResponseError as exc:
            oom = isinstance(exc, redis.exceptions.OutOfMemoryError) or "maxmemory" in str(exc)
            if not oom or time.time() > deadline:
                raise
            time.sleep(backoff(attempt, 0.1, cap=2.0))
            attempt += 1


def wait_writable(s: Settings) -> None:
    """Return once Redis takes a write (a no-op unless the broker is out of memory)."""
    through_oom(lambda: client(s).set(keys.writable_key(s), "1", ex=60))


def is_cancelled(s: Settings, job_id: str) -> bool:
    return bool(client(s).exists(keys.cancel_key(s, job_id)))


def dead_letter(s: Settings, kind: str, record_id: str, record: dict) -> None:
    record = redact_obj({**record, "dead_lettered_at": time.time()})
    through_oom(lambda: client(s).hset(keys.dead_key(s, kind), record_id, json.dumps(record)))


def dead_letters(s: Settings, kind: str) -> dict[str, dict]:
    raw = client(s).hgetall(keys.dead_key(s, kind))
    return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}


def dead_messages(s: Settings, limit: int = 100) -> list[dict]:
    """Raw queue messages the workers could not decode (newest first), with their reason."""
    return [json.loads(v) for v in client(s).lrange(keys.dead_key(s, "messages"), 0, limit - 1)]


def remove_dead_letter(s: Settings, kind: str, record_id: str) -> bool:
    return bool(client(s).hdel(keys.dead_key(s, kind), record_id))
