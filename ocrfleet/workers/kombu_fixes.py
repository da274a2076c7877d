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

Below: the poison-message screen and the out-of-memory hold (issue 10), see their comment.
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


def apply(settings=None) -> None:
    for name in ("restore_unacked", "ack", "reject"):
        _guard(name)
    apply_poison_guard(settings)


# --- poison messages and a broker out of memory (issue 10) -------------------------------
#
# kombu's Redis transport BRPOPs a message off the queue list and then, in the same call,
# ``json.loads`` it, base64-decodes its body and writes it to the ``unacked`` hash. Any error
# on that path (a list item that is not JSON, a JSON list, a body that is not base64, a
# "OOM command not allowed" reply) propagates out of the consumer: the worker exits and the
# popped message is in neither the list nor the unacked hash (lost). ``screen`` runs first:
# a message that cannot be decoded goes to the dead-letter list ``<key_prefix>:dead:messages``
# with its reason (and the ``ocrfleet_poison_messages_total`` metric); a recognition task
# whose body is unusable (not JSON, nested too deep, not a Celery body) is delivered with a
# small replacement body that fails the job with INVALID_INPUT through the normal task path
# (result object, backend record, webhook). ``QoS.append`` waits out an out-of-memory or
# connection error instead of dropping the message it holds.

import base64
import json
import time

_settings = None
from ocrfleet.jobs.contract import JOB_TASKS, TASKS as KNOWN_TASKS  # noqa: E402
OOM_MARKERS = ("OOM", "EXECABORT", "maxmemory")


def configure(settings) -> None:
    """Limits and the dead-letter key come from the worker's settings."""
    global _settings
    _settings = settings
    _queues.clear()


def _limits():
    s = _settings
    max_bytes = (s.max_spec_bytes if s else 256 * 1024) * 2 + 64 * 1024  # base64 + envelope
    max_depth = (s.max_spec_depth if s else 32) + 4                      # [args, kwargs, embed]
    return max_bytes, max_depth


class Poison(Exception):
    def __init__(self, reason: str, task_id: str | None = None, substitute: dict | None = None):
        super().__init__(reason)
        self.reason, self.task_id, self.substitute = reason, task_id, substitute


_queues: set[str] = set()


def _fleet_queues() -> set[str]:
    if not _queues and _settings:
        from ocrfleet.config.celery import QUEUE_KINDS

        _queues.update(_settings.queue(k) for k in QUEUE_KINDS)
    return _queues


def _envelope(item: bytes, task_queue: bool) -> dict:
    """Every list: JSON and a kombu envelope (else kombu raises out of the consumer). The
    fleet's task queues: also the size and nesting limits."""
    from ocrfleet.jobs.spec import text_too_deep

    max_bytes, max_depth = _limits()
    if task_queue and len(item) > max_bytes:
        raise Poison(f"message is {len(item)} bytes; the limit is {max_bytes}")
    if text_too_deep(item, max_depth if task_queue else 64):
        raise Poison(f"message JSON is nested deeper than {max_depth} levels")
    try:
        payload = json.loads(item)
    except (ValueError, RecursionError) as exc:
        raise Poison(f"message is not JSON: {exc}") from None
    props = payload.get("properties") if isinstance(payload, dict) else None
    if not (isinstance(props, dict) and isinstance(props.get("delivery_tag"), str)
            and isinstance(props.get("delivery_info"), dict)
            and isinstance(payload.get("headers", {}), dict)):
        raise Poison(f"not a kombu message envelope ({type(payload).__name__})")
    return payload


def _body(payload: dict) -> tuple[str, str | None]:
    """The task name and id from the headers; Poison (with a replacement) for a bad body."""
    from ocrfleet.jobs.spec import id_ok, text_too_deep

    headers = payload.get("headers") or {}
    task, task_id = headers.get("task"), headers.get("id")
    if not isinstance(task, str) or not id_ok(task_id):
        raise Poison(f"message headers carry no usable task name/id (task={str(task)[:80]!r}, "
                     f"id={str(task_id)[:80]!r})")
    if task not in KNOWN_TASKS:
        return task, task_id  # Celery itself refuses unregistered tasks (and records the failure)
    body = payload.get("body")
    try:
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body or b"", validate=True)
        elif isinstance(body, str):
            body = body.encode()
    except (ValueError, TypeError) as exc:
        raise Poison(f"message body is not base64: {exc}", task_id, _spec_stub(task, task_id, None)) from None
    if payload.get("content-type") != "application/json":
        raise Poison(f"content type {payload.get('content-type')!r} is not accepted (JSON only)",
                     task_id, _spec_stub(task, task_id, None))
    _, max_depth = _limits()
    if text_too_deep(body, max_depth):
        raise Poison(f"job spec is nested deeper than {max_depth - 4} levels", task_id,
                     _spec_stub(task, task_id, body))
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Poison(f"message body is not JSON: {exc}", task_id, _spec_stub(task, task_id, None)) from None
    if not (isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[0], list)
            and isinstance(decoded[1], dict) and isinstance(decoded[2], (dict, type(None)))):
        raise Poison("message body is not a Celery task body [args, kwargs, embed]", task_id,
                     _spec_stub(task, task_id, body))
    return task, task_id


def _spec_stub(task: str, task_id: str, body: bytes | None) -> dict | None:
    """A replacement body for a recognition job: its id and the few top-level fields the
    failure needs (webhook, tenant, metadata-free)."""
    if task not in JOB_TASKS:
        return None
    spec = {"job_id": task_id}
    if body:
        try:
            decoded = json.loads(body)
            original = decoded[0][0] if isinstance(decoded, list) and decoded and decoded[0] else None
        except (ValueError, RecursionError, TypeError, KeyError, IndexError):
            original = None
        if isinstance(original, dict):
            for key in ("webhook_url", "tenant", "model_name", "submitted_at"):
                if isinstance(original.get(key), (str, int, float)) and len(str(original[key])) < 4096:
                    spec[key] = original[key]
    return spec


def dead_letter(channel, dest_key: bytes, item: bytes, poison: Poison) -> None:
    from ocrfleet.redaction import redact

    record = {"reason": poison.reason, "list": dest_key.decode("utf-8", "replace"),
              "task_id": poison.task_id, "replaced": poison.substitute is not None,
              "dead_lettered_at": time.time(), "raw": redact(item.decode("utf-8", "replace"))}
    from ocrfleet.config.settings import Settings
    from ocrfleet.jobs.contract import dead_key

    key = dead_key(_settings or Settings(), "messages")
    try:
        from ocrfleet.workers import metrics

        metrics.POISON.labels(poison.reason.split(":")[0][:60]).inc()
    except Exception:  # noqa: BLE001 - metrics are best effort
        pass
    log.error("poison message dead-lettered: %s (task id %s, list %s)", poison.reason, poison.task_id,
              record["list"])
    for attempt in range(50):
        try:
            with channel.conn_or_acquire() as client:
                client.pipeline().lpush(key, json.dumps(record)).ltrim(key, 0, 9999).execute()
            return
        except Exception as exc:  # noqa: BLE001 - broker refusing writes: wait, then log it instead
            if attempt == 49:
                log.error("dead letter not stored (%r); the message was: %s", exc, record["raw"][:4000])
                return
            time.sleep(min(2.0, 0.1 * 2 ** attempt))


def _replace_body(payload: dict, poison: Poison) -> dict:
    kwargs = {"rejected": {"code": "INVALID_INPUT", "message": poison.reason[:500]}}
    body = json.dumps([[poison.substitute], kwargs, {"callbacks": None, "errbacks": None,
                                                     "chain": None, "chord": None}]).encode()
    payload["body"] = base64.b64encode(body).decode()
    payload["content-type"], payload["content-encoding"] = "application/json", "utf-8"
    payload["properties"]["body_encoding"] = "base64"
    headers = payload.setdefault("headers", {})
    headers["argsrepr"], headers["kwargsrepr"] = "(<rejected>,)", repr(kwargs)
    return payload


def screen(channel, dest: str, dest_key: bytes, item: bytes):
    """The decoded message to deliver, or None when it was dead-lettered. Task-level checks
    apply to the fleet's task queues only (a control reply list carries no task headers)."""
    payload = None
    task_queue = dest in _fleet_queues() or not _settings
    try:
        payload = _envelope(item, task_queue)
        if task_queue:
            _body(payload)
        return payload
    except Poison as poison:
        dead_letter(channel, dest_key, item, poison)
        if poison.substitute is not None and payload is not None:
            return _replace_body(payload, poison)
        return None


def _brpop_read(self, **options):
    """kombu's Channel._brpop_read (5.7) with ``screen`` between the pop and the delivery."""
    from kombu.transport.virtual import Empty
    from kombu.utils.encoding import bytes_to_str

    try:
        try:
            dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
        except self.connection_errors:
            self.client.connection.disconnect()
            raise
        if dest__item:
            dest_key, item = dest__item
            dest = bytes_to_str(dest_key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = screen(self, dest, dest_key, item)
            if payload is not None:
                self.connection._deliver(payload, dest)
            return True
        raise Empty()
    finally:
        self._in_poll = None
        flush = getattr(self, "_flush_brpop_reauth", None)
        if flush:
            flush()


def _is_oom(exc: BaseException) -> bool:
    """Redis refusing writes for memory: OutOfMemoryError (redis-py strips the "OOM" prefix),
    or a MULTI/EXEC discarded because a queued write was refused."""
    import redis

    return isinstance(exc, (redis.exceptions.OutOfMemoryError, redis.exceptions.ExecAbortError)) or (
        isinstance(exc, redis.ResponseError) and any(m in str(exc) for m in OOM_MARKERS))


def _holding_append(original):
    @functools.wraps(original)
    def append(self, message, delivery_tag):
        """Keep the popped message until the unacked hash takes it (broker out of memory,
        connection lost): it is held in this process, not lost."""
        import redis

        attempt, last_log = 0, 0.0
        while True:
            try:
                return original(self, message, delivery_tag)
            except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError) as exc:
                if isinstance(exc, redis.ResponseError) and not _is_oom(exc):
                    raise
                if time.time() - last_log > 10:
                    log.warning("broker refused to record the message just taken (%r); holding it and "
                                "retrying", exc)
                    last_log = time.time()
                attempt += 1
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
    append._ocrfleet_guarded = True
    return append


def _backend_retries_oom() -> None:
    """The result backend's write retries (result_backend_always_retry) also ride out an
    out-of-memory Redis, so a finished job's record is stored once memory is freed."""
    from celery.backends.redis import RedisBackend

    original = RedisBackend.exception_safe_to_retry
    if getattr(original, "_ocrfleet_guarded", False):
        return

    def exception_safe_to_retry(self, exc):
        return original(self, exc) or _is_oom(exc)

    exception_safe_to_retry._ocrfleet_guarded = True
    RedisBackend.exception_safe_to_retry = exception_safe_to_retry


def apply_poison_guard(settings=None) -> None:
    if settings is not None:
        configure(settings)
    _backend_retries_oom()
    if not getattr(kombu_redis.Channel._brpop_read, "_ocrfleet_guarded", False):
        _brpop_read._ocrfleet_guarded = True
        kombu_redis.Channel._brpop_read = _brpop_read
    if not getattr(kombu_redis.QoS.append, "_ocrfleet_guarded", False):
        kombu_redis.QoS.append = _holding_append(kombu_redis.QoS.append)
