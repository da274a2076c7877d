"""Webhook delivery: a signed JSON POST on its own queue, retried with exponential backoff,
dead-lettered after a bounded number of attempts. Private targets are refused unless
allow-listed; the connection is pinned to the address that was checked."""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import socket
import ssl
from urllib.parse import urlsplit

from celery import shared_task

from ocrfleet.config.settings import Settings
from ocrfleet.jobs import signing
from ocrfleet.jobs.contract import DELIVER_TASK, webhook_sent_key
from ocrfleet import retry
from ocrfleet.redaction import redact_obj
from ocrfleet.tasks import state

MAX_RESPONSE = 64 * 1024


class BlockedTarget(Exception):
    pass


class PermanentFailure(Exception):
    pass


def delivery_id(job_id: str, status: str) -> str:
    return "msg_" + hashlib.sha256(f"{job_id}:{status}".encode()).hexdigest()[:32]


def build_delivery(url: str, result: dict) -> dict:
    payload = {"type": "ocr.job.finished", "job_id": result["job_id"], "status": result["status"],
               "result_uri": result.get("result_uri"), "summary": result.get("summary"),
               "error": result.get("error"), "finished_at": result.get("finished_at")}
    out = {"delivery_id": delivery_id(result["job_id"], result["status"]), "url": url,
           "job_id": result["job_id"], "payload": redact_obj(payload)}
    if result.get("tenant"):
        out["tenant"] = result["tenant"]
    return out


def tenant_secrets(s: Settings) -> dict[str, str]:
    """``webhook_tenant_secrets`` entries ``tenant=secret`` as a mapping."""
    out = {}
    for entry in s.webhook_tenant_secrets:
        tenant, sep, secret = entry.partition("=")
        if not sep or not tenant.strip() or not secret:
            raise ValueError("webhook_tenant_secrets entries must be 'tenant=secret'")
        out[tenant.strip()] = secret
    return out


def secret_for(s: Settings, tenant: str | None) -> str:
    """The tenant's own secret when one is configured, else the fleet's webhook_secret."""
    return tenant_secrets(s).get(tenant or "", s.webhook_secret) if tenant else s.webhook_secret


def check_secrets(s: Settings) -> None:
    """ValueError unless every configured secret can sign; a worker needs a secret unless
    ``allow_unsigned_webhooks`` opts out explicitly."""
    if not s.webhook_secret and not s.allow_unsigned_webhooks:
        raise ValueError("no webhook secret: set OCRFLEET_WEBHOOK_SECRET (receivers verify signatures "
                         "with it), or OCRFLEET_ALLOW_UNSIGNED_WEBHOOKS=1 to send unverifiable webhooks")
    for name, secret in [("webhook_secret", s.webhook_secret)] + [
            (f"webhook_tenant_secrets[{t}]", v) for t, v in tenant_secrets(s).items()]:
        if secret:
            try:
                signing.secret_bytes(secret)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None


def resolve_target(s: Settings, host: str, port: int) -> str:
    """The IP to connect to; BlockedTarget for non-public addresses that are not allow-listed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    allowed = set(s.webhook_allow_private)
    for info in infos:
        ip = info[4][0]
        addr = ipaddress.ip_address(ip)
        if addr.is_global and not addr.is_multicast:
            return ip
        if host in allowed or ip in allowed:
            return ip
    raise BlockedTarget(f"webhook target {host} resolves to a non-public address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self):
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(s: Settings, delivery: dict) -> int:
    """One signed POST; returns the HTTP status (redirects are not followed)."""
    parts = urlsplit(delivery["url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedTarget(f"unsupported webhook URL scheme {parts.scheme!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = resolve_target(s, parts.hostname, port)
    body = json.dumps(delivery["payload"], separators=(",", ":"), sort_keys=True).encode()
    try:
        headers = signing.headers(secret_for(s, delivery.get("tenant")), delivery["delivery_id"], body)
    except ValueError as exc:  # a malformed secret: the delivery is dead-lettered, not lost
        raise PermanentFailure(f"cannot sign: {exc}") from None
    headers["user-agent"] = "ocrfleet-webhooks/1"
    cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    conn = cls(parts.hostname, port, ip, s.webhook_timeout)
    try:
        conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                     body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(MAX_RESPONSE)
        return resp.status
    finally:
        conn.close()


def backoff(s: Settings, attempt: int) -> float:
    """Seconds before delivery attempt ``attempt + 1``: base, 2x, 4x ... up to the max, +-20 %."""
    return retry.backoff(attempt - 1, s.webhook_backoff_base, s.webhook_backoff_max, jitter=0.2)


def enqueue(app, s: Settings, delivery: dict) -> None:
    app.send_task(DELIVER_TASK, args=[delivery], queue=s.queue("webhooks"))


@shared_task(bind=True, name=DELIVER_TASK, ignore_result=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery: dict) -> None:
    from ocrfleet.workers import metrics
    from ocrfleet.workers.logs import get_logger

    s: Settings = self.app.ocrfleet_settings
    attempt = self.request.retries + 1
    log = get_logger(job_id=delivery["job_id"], delivery_id=delivery["delivery_id"], attempt=attempt)
    sent_key = webhook_sent_key(s, delivery["delivery_id"])
    r = state.client(s)
    if r.exists(sent_key):
        log.info("webhook.duplicate_skipped")
        return
    error = None
    try:
        status = post(s, delivery)
        if 200 <= status < 300:
            r.set(sent_key, "1", ex=s.result_expires)
            metrics.WEBHOOKS.labels("delivered").inc()
            log.info("webhook.delivered", http_status=status)
            return
        error = f"HTTP {status}"
        if 400 <= status < 500 and status not in (408, 425, 429):
            raise PermanentFailure(error)
    except (BlockedTarget, PermanentFailure) as exc:
        return _give_up(s, delivery, attempt, str(exc), log)
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    metrics.WEBHOOKS.labels("retry").inc()
    if attempt >= s.webhook_max_attempts:
        return _give_up(s, delivery, attempt, error, log)
    delay = backoff(s, attempt)
    log.warning("webhook.retry", error=error, retry_in_s=round(delay, 2))
    raise self.retry(countdown=delay)


def _give_up(s: Settings, delivery: dict, attempt: int, error: str, log) -> None:
    from ocrfleet.workers import metrics

    metrics.WEBHOOKS.labels("dead_lettered").inc()
    log.error("webhook.dead_lettered", error=error)
    state.dead_letter(s, "webhooks", delivery["delivery_id"],
                      {"delivery": delivery, "attempts": attempt, "last_error": error})
