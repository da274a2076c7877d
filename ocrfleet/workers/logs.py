"""structlog JSON logs for workers; values of secret-looking keys are masked, credentials in
values redacted."""
from __future__ import annotations

import logging
import re
import sys

import structlog

from ocrfleet.config.settings import mask_url
from ocrfleet.redaction import redact, redact_obj

SECRET_KEY = re.compile(r"secret|password|token|authorization|api_key|signature|credential", re.I)


def _redact(_logger, _name, event: dict) -> dict:
    """Secret-looking keys masked; credentials and presigned signatures in any value (nested
    too) replaced by *** (ocrfleet.redaction)."""
    for key, value in list(event.items()):
        if SECRET_KEY.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(mask_url(value) if "://" in value and "@" in value else value)
        elif isinstance(value, (dict, list, tuple)):
            event[key] = redact_obj(value)
    return event


def configure(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        cache_logger_on_first_use=False,
    )


def get_logger(**bind):
    return structlog.get_logger("ocrfleet").bind(**bind)
