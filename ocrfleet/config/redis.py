"""The fleet's own Redis clients (idempotency claims, delivery counters, dead letters) retry
connection errors with backoff for ~15 s, so a Redis restart or failover is ridden out
instead of failing a submit or a running job (``redis.Redis.from_url`` does not retry)."""
from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=12),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError])
