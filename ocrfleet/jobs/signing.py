"""Webhook signatures (Standard Webhooks scheme): how the fleet signs and how you verify.

Headers sent with every delivery:

* ``webhook-id``: the stable delivery id (same on every retry; use it to de-duplicate)
* ``webhook-timestamp``: Unix seconds when this attempt was signed
* ``webhook-signature``: ``v1,<base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))>``;
  several space-separated signatures may be present during secret rotation.

Verification recipe (any language): rebuild ``f"{id}.{timestamp}.".encode() + raw_body``,
HMAC-SHA256 it with the shared secret, base64-encode, compare in constant time with each
``v1,`` entry, and reject timestamps more than 5 minutes from now. In Python::

    from ocrfleet.jobs.signing import verify_signature
    verify_signature(secret, request.headers, raw_body)   # raises InvalidSignature
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Mapping

TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"(?:0|[1-9][0-9]{0,18})")  # ASCII digits: no sign, space or padding


class InvalidSignature(Exception):
    pass


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key; ValueError for an empty secret or a ``whsec_`` one that is not base64."""
    if isinstance(secret, str) and secret.startswith("whsec_"):  # Standard Webhooks base64 secrets
        try:
            secret = base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    elif isinstance(secret, str):
        secret = secret.encode()
    if not secret:
        raise ValueError("the webhook secret is empty")
    return secret


def sign(secret: str | bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_bytes(secret), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str | bytes, delivery_id: str, body: bytes, now: float | None = None) -> dict:
    ts = int(time.time() if now is None else now)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, delivery_id, ts, body),
        "content-type": "application/json",
    }


def verify_signature(secret: str | bytes, headers: Mapping[str, str], body: bytes,
                     tolerance: int = TOLERANCE_S, now: float | None = None) -> None:
    """Raise ``InvalidSignature`` unless ``body`` was signed with ``secret`` recently. An
    empty or malformed secret never verifies anything. Add a ``ReplayGuard`` to refuse a
    delivery id seen before."""
    try:
        secret_bytes(secret)
    except ValueError as exc:
        raise InvalidSignature(f"cannot verify: {exc}") from None
    h = {k.lower(): v for k, v in headers.items()}
    try:
        delivery_id, ts_text, sigs = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
    except KeyError as exc:
        raise InvalidSignature("missing or malformed webhook headers") from exc
    if not isinstance(ts_text, str) or not _TIMESTAMP.fullmatch(ts_text):
        raise InvalidSignature("malformed webhook-timestamp (ASCII digits only)")
    ts = int(ts_text)
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window")
    expected = sign(secret, delivery_id, ts, body).encode()
    for candidate in sigs.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise InvalidSignature("no matching signature")


class ReplayGuard:
    """Receiver-side replay protection: remembers verified ``webhook-id`` values for ``ttl``
    seconds (default twice the timestamp tolerance, so a replayed request is refused either by
    its old timestamp or by its id). In memory by default; pass a redis-py client to share it
    between receiver processes. The fleet re-sends the SAME id when it retries a delivery you
    did not acknowledge with a 2xx: call ``forget(id)`` if you fail after ``check``::

        guard = ReplayGuard()
        verify_signature(secret, request.headers, raw_body)   # raises InvalidSignature
        guard.check(request.headers["webhook-id"])            # raises InvalidSignature on a replay
    """

    def __init__(self, ttl: float = 2 * TOLERANCE_S, redis=None, prefix: str = "webhook-seen:"):
        self.ttl, self.redis, self.prefix = ttl, redis, prefix
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, delivery_id: str, now: float | None = None) -> None:
        if self.redis is not None:
            if not self.redis.set(self.prefix + delivery_id, "1", nx=True, ex=max(1, int(self.ttl))):
                raise InvalidSignature(f"delivery {delivery_id} was already received (replay)")
            return
        now = time.time() if now is None else now
        with self._lock:
            for key in [k for k, exp in self._seen.items() if exp <= now]:
                del self._seen[key]
            if delivery_id in self._seen:
                raise InvalidSignature(f"delivery {delivery_id} was already received (replay)")
            self._seen[delivery_id] = now + self.ttl

    def forget(self, delivery_id: str) -> None:
        if self.redis is not None:
            self.redis.delete(self.prefix + delivery_id)
        else:
            with self._lock:
                self._seen.pop(delivery_id, None)
