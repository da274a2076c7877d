"""boto3 S3 client from ``Settings`` and the classification of its errors."""
from __future__ import annotations

import functools

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ocrfleet.config.settings import Settings
from ocrfleet.errors import InputNotFoundError

NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
DENIED_CODES = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class TransientStorageError(Exception):
    """A storage call failed in a way worth retrying (5xx, throttling, connection)."""


@functools.lru_cache(maxsize=8)
def _client(endpoint, region, ak, sk):
    return boto3.client(
        "s3", endpoint_url=endpoint or None, region_name=region,
        aws_access_key_id=ak or None, aws_secret_access_key=sk or None,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                      read_timeout=30, s3={"addressing_style": "path"},
                      # flexible checksums only where S3 requires them (botocore < 1.36
                      # behaviour): measured in bench/fleet.py as part of the per-job cost
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def reset() -> None:
    """Forget the clients (after fork: a child must not share the parent's connections)."""
    _client.cache_clear()


def client(s: Settings):
    return _client(s.s3_endpoint_url, s.s3_region, s.s3_access_key, s.s3_secret_key)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def classify(exc: Exception, ref: str) -> Exception:
    """Map a boto error to InputNotFoundError (permanent) or TransientStorageError."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in NOT_FOUND_CODES or code in DENIED_CODES or status in (403, 404):
            return InputNotFoundError(f"object not found or not readable ({code or status})", input_ref=ref)
        return TransientStorageError(f"S3 error {code or status} for {ref}")
    if isinstance(exc, BotoCoreError):
        return TransientStorageError(f"S3 unreachable for {ref}: {exc}")
    return exc
