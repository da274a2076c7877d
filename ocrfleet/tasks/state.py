"""Small Redis state shared by tasks: delivery counters, cancel flags, dead letters."""
from __future__ import annotations

import json
import os
import time

import redis

from ocrfleet.config.redis import client_for
from ocrfleet.config.settings import Settings

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
    pipe = client(s).pipeline(transaction=False)
    pipe.incr(s.key("deliveries", job_id))
    pipe.expire(s.key("deliveries", job_id), s.result_expires)
    pipe.set(s.key("running", job_id), where, ex=s.visibility_timeout)
    pipe.exists(s.key("cancel", job_id))
    deliveries, _, _, cancelled = pipe.execute()
    return int(deliveries), bool(cancelled)


def is_cancelled(s: Settings, job_id: str) -> bool:
    return bool(client(s).exists(s.key("cancel", job_id)))


def dead_letter(s: Settings, kind: str, record_id: str, record: dict) -> None:
    record = {**record, "dead_lettered_at": time.time()}
    client(s).hset(s.key("dead", kind), record_id, json.dumps(record))


def dead_letters(s: Settings, kind: str) -> dict[str, dict]:
    raw = client(s).hgetall(s.key("dead", kind))
    return {k.decode(): json.loads(v) for k, v in sorted(raw.items())}


def remove_dead_letter(s: Settings, kind: str, record_id: str) -> bool:
    return bool(client(s).hdel(s.key("dead", kind), record_id))
