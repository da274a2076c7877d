"""Result objects: one JSON per job at ``s3://<bucket>/<prefix>/<job_id>.json``, written once
(``If-None-Match: *``) so a redelivered job never replaces the first result."""
from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from ocrfleet.config.settings import Settings
from ocrfleet.jobs.contract import result_key, result_uri, visual_key, visual_uri
from ocrfleet.storage import s3

__all__ = ["result_key", "result_uri", "visual_key", "visual_uri", "write_visual", "write_result",
           "read_result", "result_exists"]


def write_visual(s: Settings, job_id: str, n: int, png: bytes) -> str:
    """Put line ``n``'s visualisation PNG; return its URI. A plain overwrite: a redelivery
    draws the same image, and these are written before the result object, so a result that
    exists implies its images exist."""
    uri = visual_uri(s, job_id, n)
    try:
        s3.client(s).put_object(Bucket=s.results_bucket, Key=visual_key(s, job_id, n), Body=png,
                                ContentType="image/png")
    except (ClientError, BotoCoreError) as exc:
        raise s3.classify(exc, uri) from exc
    return uri


def write_result(s: Settings, job_id: str, result: dict) -> tuple[bool, dict]:
    """Create the result object; (True, result) if written, (False, existing) if it existed."""
    body = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
    try:
        s3.client(s).put_object(Bucket=s.results_bucket, Key=result_key(s, job_id), Body=body,
                                ContentType="application/json", IfNoneMatch="*")
        return True, result
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 412 or s3.error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False, read_result(s, job_id)
        # any other refusal of OUR result write (bad credentials, missing bucket, 5xx) is the
        # storage's problem, not the input's: retried, then STORAGE_UNAVAILABLE
        raise s3.TransientStorageError(f"cannot write {result_uri(s, job_id)}: S3 error "
                                       f"{s3.error_code(exc) or status}") from exc
    except BotoCoreError as exc:
        raise s3.classify(exc, result_uri(s, job_id)) from exc


def read_result(s: Settings, job_id: str) -> dict:
    try:
        obj = s3.client(s).get_object(Bucket=s.results_bucket, Key=result_key(s, job_id))
        return json.loads(obj["Body"].read())
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise
        raise s3.TransientStorageError(f"cannot read {result_uri(s, job_id)}: S3 error "
                                       f"{s3.error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise s3.TransientStorageError(f"S3 unreachable for {result_uri(s, job_id)}: {exc}") from exc


def result_exists(s: Settings, job_id: str) -> bool:
    """True if the result object exists; TransientStorageError when S3 cannot tell."""
    try:
        s3.client(s).head_object(Bucket=s.results_bucket, Key=result_key(s, job_id))
        return True
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise s3.TransientStorageError(f"S3 error for {result_uri(s, job_id)}: {exc}") from exc
    except BotoCoreError as exc:
        raise s3.TransientStorageError(f"S3 unreachable for {result_uri(s, job_id)}: {exc}") from exc
