"""Fetch the bytes behind an input reference: ``s3://``, ``file://`` (allowed roots only),
``http(s)://`` (allow-listed hosts only). Every read is streamed and size-capped."""
from __future__ import annotations

import http.client
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from ocrfleet.config.settings import Settings
from ocrfleet.errors import InputNotFoundError, InputTooLargeError, InvalidInputError
from ocrfleet.jobs.spec import file_allowed, url_allowed
from ocrfleet.recognition.inputs import http_get, read_capped
from ocrfleet.storage import s3
from ocrfleet.storage.s3 import TransientStorageError

def fetch(s: Settings, ref: str) -> bytes:
    parts = urlsplit(ref)
    if ".." in parts.path.split("/"):
        raise InvalidInputError("'..' path segments are not allowed", input_ref=ref)
    if "\x00" in unquote(ref):
        raise InvalidInputError("NUL bytes are not allowed in a reference", input_ref=ref)
    if parts.scheme == "s3":
        return _fetch_s3(s, parts.netloc, parts.path.lstrip("/"), ref)
    if parts.scheme == "file":
        return _fetch_file(s, unquote(parts.path), ref)
    if parts.scheme in ("http", "https"):
        return _fetch_http(s, ref, parts.hostname)
    raise InvalidInputError(f"unsupported reference scheme {parts.scheme!r}", input_ref=ref)


def _fetch_s3(s: Settings, bucket: str, key: str, ref: str) -> bytes:
    try:
        return read_s3_object(s3.client(s), bucket, key, s.max_input_bytes, ref)
    except (ClientError, BotoCoreError) as exc:
        raise s3.classify(exc, ref) from exc


def read_s3_object(client, bucket: str, key: str, limit: int, ref: str) -> bytes:
    """An object's bytes, refused (TOO_LARGE) past ``limit`` whatever its declared length says."""
    obj = client.get_object(Bucket=bucket, Key=key)
    if obj.get("ContentLength", 0) > limit:
        obj["Body"].close()
        raise InputTooLargeError(f"object is {obj['ContentLength']} bytes; the limit is {limit}", input_ref=ref)
    with obj["Body"] as body:
        return read_capped(body, limit, ref)


def resolve_file(s: Settings, path: str, ref: str) -> str:
    """The real path of ``path`` if it lies under an allowed root (symlinks resolved)."""
    real = file_allowed(s.allowed_file_roots, path, resolve=True)
    if real is None:
        raise InvalidInputError("file reference is outside the allowed roots (allowed_file_roots)", input_ref=ref)
    return real


def _fetch_file(s: Settings, path: str, ref: str) -> bytes:
    """Regular files only: a FIFO, socket or device under an allowed root is refused (checked
    before and after a non-blocking open, so nothing can hold the worker on a read)."""
    real = resolve_file(s, path, ref)
    try:
        st = os.stat(real)
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError("reference is a directory", input_ref=ref)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError("reference is not a regular file (FIFO, socket or device)", input_ref=ref)
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInputError("reference is not a regular file", input_ref=ref)
            if st.st_size > s.max_input_bytes:
                raise InputTooLargeError(f"file is over the {s.max_input_bytes}-byte limit", input_ref=ref)
            return read_capped(fh, s.max_input_bytes, ref)
    except FileNotFoundError as exc:
        raise InputNotFoundError("file does not exist", input_ref=ref) from exc
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise InvalidInputError("reference is a directory", input_ref=ref) from exc
    except PermissionError as exc:
        raise InputNotFoundError("file is not readable", input_ref=ref) from exc


class _AllowListedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to an allow-listed http(s) host (an allow-listed origin must not
    bounce the worker to 169.254.169.254, localhost or another internal service)."""

    def __init__(self, s: Settings, ref: str):
        super().__init__()
        self.allowed, self.ref = set(s.allowed_http_hosts), ref

    def http_error_302(self, req, fp, code, msg, headers):
        # checked here, before urllib's own scheme check (which raises an HTTPError that
        # would look like a temporary server error): file://, ftp:// ... are input errors
        target = headers.get("location") or headers.get("uri") or ""
        newurl = urllib.parse.urljoin(req.full_url, target)
        if not url_allowed(self.allowed, newurl):
            parts = urlsplit(newurl)
            raise InvalidInputError(f"HTTP {code} redirect to {parts.scheme}://{parts.netloc} refused: "
                                    "only allow-listed http(s) hosts", input_ref=self.ref)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not url_allowed(self.allowed, newurl):
            parts = urlsplit(newurl)
            raise InvalidInputError(f"HTTP {code} redirect to {parts.scheme}://{parts.netloc} refused: "
                                    "host is not allow-listed", input_ref=self.ref)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_http(s: Settings, ref: str, host: str | None) -> bytes:
    if not url_allowed(s.allowed_http_hosts, ref):
        raise InvalidInputError(f"host {urlsplit(ref).netloc!r} is not allow-listed (host:port)", input_ref=ref)
    parts = urlsplit(ref)
    headers = {"User-Agent": "ocrfleet-worker"}
    url = ref
    if parts.username is not None:  # user:pass@ -> HTTP basic auth; never part of the request line
        import base64

        cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
        url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
    opener = urllib.request.build_opener(_AllowListedRedirects(s, ref))
    try:
        return http_get(url, s.max_input_bytes, 30, ref, headers, opener)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:  # a redirect urllib would not follow: not worth a retry
            raise InvalidInputError(f"HTTP {exc.code} redirect not followed: {exc.reason}", input_ref=ref) from exc
        if exc.code in (404, 410, 401, 403):
            raise InputNotFoundError(f"HTTP {exc.code}", input_ref=ref) from exc
        raise TransientStorageError(f"HTTP {exc.code} for {ref}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise TransientStorageError(f"cannot reach {ref}: {exc}") from exc
    except (http.client.InvalidURL, ValueError) as exc:
        raise InvalidInputError(f"not a usable URL: {exc}", input_ref=ref) from exc
