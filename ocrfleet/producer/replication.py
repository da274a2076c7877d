"""Opt-in durable enqueue (``enqueue_min_replicas`` > 0): ``submit`` returns only once the job's
message is held by that many Redis replicas, so a failover to one of them cannot lose it.

Redis replication is asynchronous: a message on the primary that has not reached a replica is
lost when Sentinel promotes that replica. ``WAIT n timeout`` covers the writes of the calling
connection only, and the message is pushed by Celery's own connection, so the check runs on the
fleet's broker client: read the primary's replication id, enqueue, then on one connection read
it again, write a probe key and WAIT. The replication stream is ordered, so a replica holding
the probe (written after the enqueue returned) holds the message too; an unchanged replication
id proves the probe went to the primary that took the message (a promoted replica gets a new
id). Anything else raises ``NotReplicatedError``; the producer then rolls back the job's claim,
and the caller can resubmit with the same job_id (at worst the job runs twice, with the same
result object).

The job_id claim is written before the message, so a failover can keep a claim whose message
it lost (and the producer's rollback of that claim can be lost with the primary too). A
confirmed enqueue therefore marks its claim ``:durable``; a resubmit that finds an unmarked
claim with the same spec enqueues again instead of trusting it (``reenqueue_claim``)."""
from __future__ import annotations

import os

import redis

from ocrfleet.config.redis import client_for
from ocrfleet.errors import OcrFleetError
from ocrfleet.jobs.contract import replication_probe_key

_clients: dict[tuple[int, str], redis.Redis] = {}
DURABLE = ":durable"


class NotReplicatedError(OcrFleetError, RuntimeError):
    """The enqueue was not acknowledged by ``enqueue_min_replicas`` replicas in time."""

    code = "NOT_REPLICATED"


def _client(s) -> redis.Redis:
    key = (os.getpid(), s.broker_url)  # never reuse a connection pool across fork
    if key not in _clients:
        _clients[key] = client_for(s, "broker")
    return _clients[key]


def reenqueue_claim(s, existing: str) -> bool:
    """True when a resubmit that found ``existing`` (same spec) must enqueue again: with
    ``enqueue_min_replicas``, only a claim marked durable proves its message survives a failover."""
    return s.enqueue_min_replicas > 0 and not existing.endswith(DURABLE)


def send_replicated(s, send, job_id: str = "", claim: tuple | None = None):
    """Run ``send()`` (the enqueue); with ``enqueue_min_replicas`` > 0, return only once that
    many replicas acknowledged it, else raise ``NotReplicatedError``. ``claim`` (client, key,
    value) is then marked durable."""
    need = s.enqueue_min_replicas
    if need <= 0:
        return send()
    r = _client(s)
    try:
        before = r.info("replication").get("master_replid")
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise NotReplicatedError(f"job {job_id}: broker primary unreachable: {exc}") from exc
    out = send()
    pipe = r.pipeline(transaction=False)
    pipe.info("replication")
    pipe.set(replication_probe_key(s), job_id or "1")
    pipe.wait(need, s.enqueue_replica_timeout_ms)
    try:
        info, _, acked = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
        raise NotReplicatedError(f"job {job_id}: could not confirm replication of the enqueue: {exc}") from exc
    if info.get("master_replid") != before:
        raise NotReplicatedError(f"job {job_id}: the broker primary changed (failover) during the enqueue; "
                                 "the job may be lost: resubmit it with the same job_id")
    if acked < need:
        raise NotReplicatedError(
            f"job {job_id}: enqueue acknowledged by {acked} of {need} replica(s) within "
            f"{s.enqueue_replica_timeout_ms} ms; it would be lost on a failover: resubmit it with the same job_id")
    if claim is not None:
        client, key, value = claim
        try:  # lost or failed: a resubmit only enqueues the job once more
            client.set(key, value + DURABLE, xx=True, keepttl=True)
        except (redis.ConnectionError, redis.TimeoutError):
            pass
    return out
