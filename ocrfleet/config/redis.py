"""Every Redis client of the fleet is built here, from settings: a plain ``redis://`` /
``rediss://`` / ``unix://`` URL or a Redis Sentinel group (``sentinel://h1:26379;sentinel://h2:26379/0``
with ``sentinel_master_name``), so nothing else needs to know which one is deployed.

The fleet's own clients (idempotency claims, delivery counters, dead letters, running marks)
retry connection errors with backoff for ~15 s, so a Redis restart or a Sentinel failover is
ridden out instead of failing a submit or a running job (``redis.Redis.from_url`` does not
retry). Through Sentinel every reconnect asks the sentinels for the current primary.
The Celery broker and result backend use Celery's own ``sentinel://`` transport; the options
it needs come from :func:`sentinel_transport_options` (see docs/failover.md)."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

SENTINEL_SCHEME = "sentinel://"


def is_sentinel(url: str) -> bool:
    return url.strip().lower().startswith(SENTINEL_SCHEME)


def parse_sentinel_url(url: str) -> dict:
    """``sentinel://[user:pass@]host:port[/db];sentinel://host:port;...`` -> the sentinel
    addresses, and the primary's db and credentials from the FIRST entry (as kombu and Celery
    read them)."""
    chunks = [c.strip() for c in url.split(";") if c.strip()]
    parsed = [urlsplit(c) for c in chunks]
    for chunk, parts in zip(chunks, parsed):
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError(f"not a sentinel:// address: {chunk.split('@')[-1]!r}")
    if not parsed:
        raise ValueError("sentinel URL names no sentinel")
    first = parsed[0]
    return {"hosts": [(p.hostname, p.port or 26379) for p in parsed],
            "db": int(first.path.strip("/") or 0),
            "username": unquote(first.username) if first.username else None,
            "password": unquote(first.password) if first.password else None}


def _master_name(s) -> str:
    if not s.sentinel_master_name:
        raise ValueError("a sentinel:// URL needs the sentinel_master_name setting "
                         "(OCRFLEET_SENTINEL_MASTER_NAME)")
    return s.sentinel_master_name


def sentinel_kwargs(s, timeout: float = 2.0) -> dict:
    """Connection options for the sentinel processes themselves (not the primary)."""
    out = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if s.sentinel_password:
        out["password"] = s.sentinel_password
    return out


def sentinel_transport_options(s, url: str) -> dict:
    """The extra Celery transport options (broker or result backend) for ``url``: nothing
    for a plain Redis URL, the master name and sentinel auth/timeouts for ``sentinel://``."""
    if not is_sentinel(url):
        return {}
    return {"master_name": _master_name(s), "sentinel_kwargs": sentinel_kwargs(s)}


def _retry(retries: int) -> Retry:
    if retries <= 0:
        return Retry(NoBackoff(), 0)
    return Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=retries)


def redis_client(url: str, s=None, *, retries: int = 12, **kwargs) -> redis.Redis:
    """A client for ``url``; ``s`` (Settings) is needed for a ``sentinel://`` URL. ``retries``
    (12: ~15 s with backoff) applies to connection errors and timeouts; ``kwargs`` go to the
    connections (e.g. ``socket_timeout``)."""
    common = dict(retry=_retry(retries), retry_on_error=[redis.ConnectionError, redis.TimeoutError], **kwargs)
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **common)
    if s is None:
        raise ValueError("a sentinel:// URL needs the fleet settings (sentinel_master_name)")
    p = parse_sentinel_url(url)
    timeout = kwargs.get("socket_connect_timeout") or 2.0
    sentinel = redis.sentinel.Sentinel(p["hosts"], sentinel_kwargs=sentinel_kwargs(s, timeout))
    creds = {k: p[k] for k in ("username", "password") if p[k] is not None}
    return sentinel.master_for(_master_name(s), db=p["db"], **creds, **common)


def client_for(s, which: str = "redis", **kwargs) -> redis.Redis:
    """A client for one of the fleet's Redis roles: ``redis`` (the fleet's own keys,
    ``redis_url`` or the broker), ``broker`` or ``backend`` (the Celery result backend)."""
    url = {"redis": s.redis, "broker": s.broker_url, "backend": s.result_backend}[which]
    return redis_client(url, s, **kwargs)
