"""Credentials out of everything the fleet writes down: ``user:pass@`` in URLs and presigned-URL
signatures (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``Signature``,
``sig``, ``token``, ...) become ``***``. Used by worker logs (structlog and the stdlib records
of Celery itself), result objects, backend records, webhook payloads and dead letters.

``redact(text)`` for strings, ``redact_obj(value)`` for JSON-like values (iterative: safe on
any nesting), ``install_logging()`` for every stdlib log record of the process."""
from __future__ import annotations

import logging
import re

MASK = "***"
# scheme://user:password@host or scheme://token@host -> the userinfo is masked
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:\"'<>]*)(:[^\s/@\"'<>]*)?@")
# query parameters that carry credentials in presigned or tokenised URLs
_PARAMS = re.compile(
    r"(?i)([?&;](?:x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|"
    r"x-goog-credential|signature|sig|se|sv|token|access_token|id_token|api_key|apikey|key|"
    r"password|awsaccesskeyid|googleaccessid|x-amz-expires-signature)=)([^&\s\"'<>#]*)")


def _userinfo(m: re.Match) -> str:
    if m.group(3):
        return f"{m.group(1)}{m.group(2)}:{MASK}@"
    return f"{m.group(1)}{MASK}@"


def redact(text: str) -> str:
    if not isinstance(text, str) or ("@" not in text and "=" not in text):
        return text
    if "@" in text and "://" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _PARAMS.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_obj(value):
    """A copy of ``value`` with every string redacted (dict keys kept); no recursion."""
    if isinstance(value, str):
        return redact(value)
    if not isinstance(value, (dict, list, tuple)):
        return value
    root = [value]
    out = [None]
    stack = [(root, 0, out)]
    while stack:
        src, i, dst = stack.pop()
        v = src[i]
        if isinstance(v, dict):
            new = {}
            dst[i] = new
            for k, item in v.items():
                new[k] = None
                stack.append((v, k, new))
        elif isinstance(v, (list, tuple)):
            new = [None] * len(v)
            dst[i] = new
            for j in range(len(v)):
                stack.append((v, j, new))
        else:
            dst[i] = redact(v) if isinstance(v, str) else v
    return out[0]


class _Factory:
    """A LogRecord factory that stores the redacted, already-formatted message (and traceback)."""

    def __init__(self, inner):
        self.inner = inner
        self._ocrfleet_redacting = True

    def __call__(self, *args, **kwargs):
        record = self.inner(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string stays the logging module's problem
            return record
        clean = redact(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record


def install_logging() -> None:
    """Redact every stdlib log record of this process (Celery's own lines included)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "_ocrfleet_redacting", False):
        logging.setLogRecordFactory(_Factory(current))
