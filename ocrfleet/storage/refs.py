"""Fetch the bytes behind an input reference: ``s3://``, ``file://`` (allowed roots only),
``http(s)://`` (allow-listed hosts only). Every read is streamed and size-capped."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from ocrfleet.config.settings import Settings
from ocrfleet.errors import InputNotFoundError, InputTooLargeError, InvalidInputError
from ocrfleet.storage import s3
from ocrfleet.storage.s3 import TransientStorageError

CHUNK = 1 << 20


def _read_capped(stream, limit: int, ref: str) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise InputTooLargeError(f"input is over the {limit}-byte limit", input_ref=ref)
        chunks.append(chunk)


def fetch(s: Settings, ref: str) -> bytes:
    parts = urlsplit(ref)
    if ".." in parts.path.split("/"):
        raise InvalidInputError("'..' path segments are not allowed", input_ref=ref)
    if parts.scheme == "s3":
        return _fetch_s3(s, parts.netloc, parts.path.lstrip("/"), ref)
    if parts.scheme == "file":
        return _fetch_file(s, unquote(parts.path), ref)
    if parts.scheme in ("http", "https"):
        return _fetch_http(s, ref, parts.hostname)
    raise InvalidInputError(f"unsupported reference scheme {parts.scheme!r}", input_ref=ref)


def _fetch_s3(s: Settings, bucket: str, key: str, ref: str) -> bytes:
    try:
        obj = s3.client(s).get_object(Bucket=bucket, Key=key)
        if obj.get("ContentLength", 0) > s.max_input_bytes:
            obj["Body"].close()
            raise InputTooLargeError(f"object is {obj['ContentLength']} bytes; the limit is "
                                     f"{s.max_input_bytes}", input_ref=ref)
        with obj["Body"] as body:
            return _read_capped(body, s.max_input_bytes, ref)
    except (ClientError, BotoCoreError) as exc:
        raise s3.classify(exc, ref) from exc


def resolve_file(s: Settings, path: str, ref: str) -> str:
    """The real path of ``path`` if it lies under an allowed root (symlinks resolved)."""
    real = os.path.realpath(path)
    for root in s.allowed_file_roots:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip("/") + "/"):
            return real
    raise InvalidInputError("file reference is outside the allowed roots", input_ref=ref)


def _fetch_file(s: Settings, path: str, ref: str) -> bytes:
    real = resolve_file(s, path, ref)
    try:
        if os.path.getsize(real) > s.max_input_bytes:
            raise InputTooLargeError(f"file is over the {s.max_input_bytes}-byte limit", input_ref=ref)
        with open(real, "rb") as fh:
            return _read_capped(fh, s.max_input_bytes, ref)
    except FileNotFoundError as exc:
        raise InputNotFoundError("file does not exist", input_ref=ref) from exc
    except IsADirectoryError as exc:
        raise InvalidInputError("reference is a directory", input_ref=ref) from exc


class _AllowListedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to an allow-listed http(s) host (an allow-listed origin must not
    bounce the worker to 169.254.169.254, localhost or another internal service)."""

    def __init__(self, s: Settings, ref: str):
        super().__init__()
        self.allowed, self.ref = set(s.allowed_http_hosts), ref

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        parts = urlsplit(newurl)
        if parts.scheme not in ("http", "https") or parts.hostname not in self.allowed:
            raise InvalidInputError(f"HTTP {code} redirect to {parts.scheme}://{parts.hostname} refused: "
                                    "host is not allow-listed", input_ref=self.ref)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_http(s: Settings, ref: str, host: str | None) -> bytes:
    if host not in s.allowed_http_hosts:
        raise InvalidInputError(f"host {host!r} is not allow-listed", input_ref=ref)
    req = urllib.request.Request(ref, headers={"User-Agent": "ocrfleet-worker"})
    opener = urllib.request.build_opener(_AllowListedRedirects(s, ref))
    try:
        with opener.open(req, timeout=30) as resp:
            return _read_capped(resp, s.max_input_bytes, ref)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410, 401, 403):
            raise InputNotFoundError(f"HTTP {exc.code}", input_ref=ref) from exc
        raise TransientStorageError(f"HTTP {exc.code} for {ref}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientStorageError(f"cannot reach {ref}: {exc}") from exc
