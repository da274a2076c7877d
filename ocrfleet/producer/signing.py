"""Webhook signatures (Standard Webhooks scheme): how the fleet signs and how you verify.

Headers sent with every delivery:

* ``webhook-id``: the stable delivery id (same on every retry; use it to de-duplicate)
* ``webhook-timestamp``: Unix seconds when this attempt was signed
* ``webhook-signature``: ``v1,<base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))>``;
  several space-separated signatures may be present during secret rotation.

Verification recipe (any language): rebuild ``f"{id}.{timestamp}.".encode() + raw_body``,
HMAC-SHA256 it with the shared secret, base64-encode, compare in constant time with each
``v1,`` entry, and reject timestamps more than 5 minutes from now. In Python::

    from ocrfleet.producer.signing import verify_signature
    verify_signature(secret, request.headers, raw_body)   # raises InvalidSignature
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_S = 300


class InvalidSignature(Exception):
    pass


def _secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):  # Standard Webhooks base64 secrets
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def sign(secret: str | bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_secret_bytes(secret), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
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
    """Raise ``InvalidSignature`` unless ``body`` was signed with ``secret`` recently."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        delivery_id, ts_text, sigs = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
        ts = int(ts_text)
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("missing or malformed webhook headers") from exc
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance window")
    expected = sign(secret, delivery_id, ts, body).encode()
    for candidate in sigs.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return
    raise InvalidSignature("no matching signature")
