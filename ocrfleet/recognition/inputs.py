"""Everything ``predict`` accepts, turned into line images.

ndarray | image path | http(s) URL | directory of images | PDF path or URL | list of these
→ ``Item(image, input_path, page_index)``. Bytes are checked before they are decoded: a
size cap for downloads, a pixel cap against decompression bombs, a page cap for PDFs.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ocrfleet import envvars
from ocrfleet.envvars import env_int
from ocrfleet.errors import InputNotFoundError, InputTooLargeError, InvalidInputError, OcrFleetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm", ".ppm"}
MAX_PIXELS = env_int("OCRFLEET_MAX_PIXELS", 64_000_000)
MAX_DOWNLOAD_BYTES = env_int("OCRFLEET_MAX_DOWNLOAD_BYTES", 100 * 1024 * 1024)
MAX_PDF_PAGES = env_int("OCRFLEET_MAX_PDF_PAGES", envvars.MAX_PDF_PAGES)  # = Settings.max_pdf_pages
PDF_SCALE = 2.0  # render PDF pages at 144 dpi, as PaddleOCR does


@dataclass
class Item:
    image: np.ndarray | None
    input_path: str | None
    page_index: int | None
    error: OcrFleetError | None = None


def windows(inp, check, size: int, on_error: str, errors: list) -> Iterator[list[Item]]:
    """The items of ``inp`` in lists of up to ``size``, each image passed through ``check(image,
    name)``. A bad item raises (``on_error="raise"``) or is logged, appended to ``errors`` and
    skipped (``"skip"``). The one loop behind every module's ``predict_iter``."""
    import logging

    window: list[Item] = []
    for item in iter_inputs(inp):
        if item.error is None:
            try:
                item.image = check(item.image, item.input_path or "array")
            except OcrFleetError as exc:
                item.error = exc
        if item.error is not None:
            if on_error == "raise":
                raise item.error
            errors.append(item.error)
            logging.getLogger("ocrfleet").warning("skipping bad input %s: %s", item.input_path, item.error)
            continue
        window.append(item)
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


def iter_inputs(inp) -> Iterator[Item]:
    """Expand one ``predict`` input into items; a bad entry becomes an Item with ``error``."""
    if isinstance(inp, (list, tuple)):
        for sub in inp:
            yield from iter_inputs(sub)
        return
    try:
        if isinstance(inp, np.ndarray):
            yield Item(inp, None, None)
        elif isinstance(inp, (str, os.PathLike)):
            yield from _from_string(os.fspath(inp))
        else:
            raise InvalidInputError(f"unsupported input type {type(inp).__name__}; expected ndarray, str or list")
    except OcrFleetError as exc:
        yield Item(None, inp if isinstance(inp, str) else None, None, exc)


def _from_string(ref: str) -> Iterator[Item]:
    if ref.startswith(("http://", "https://")):
        data = fetch_url(ref)
        if is_pdf(data):
            yield from _pdf_items(render_pdf_bytes(data, ref), ref)
        else:
            yield Item(decode_image_bytes(data, ref), ref, None)
        return
    p = Path(ref)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        pdfs = [f.name for f in files if f.suffix.lower() == ".pdf"]
        if pdfs:
            raise InvalidInputError(
                f"directory {ref!r} contains PDF files ({', '.join(pdfs[:3])}); PDFs in a directory "
                "are not supported, pass each PDF file path instead", input_ref=ref)
        images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise InvalidInputError(f"directory {ref!r} contains no image files", input_ref=ref)
        for f in images:
            yield from _from_string(str(f))
        return
    if not p.exists():
        raise InputNotFoundError(f"no such file or directory: {ref!r}", input_ref=ref)
    data = p.read_bytes()
    if p.suffix.lower() == ".pdf" or is_pdf(data):
        yield from _pdf_items(render_pdf_bytes(data, ref), ref)
    else:
        try:
            yield Item(decode_image_bytes(data, ref), ref, None)
        except OcrFleetError as exc:
            yield Item(None, ref, None, exc)


def _pdf_items(pages, ref: str) -> Iterator[Item]:
    for index, image in pages:
        yield Item(image, ref, index)


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF")


CHUNK = 1 << 20


def read_capped(stream, limit: int, ref: str) -> bytes:
    """All of ``stream`` (anything with ``read(n)``), read in chunks; InputTooLargeError as soon
    as it passes ``limit`` bytes (never more than one chunk over it in memory)."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise InputTooLargeError(f"input is over the {limit}-byte limit", input_ref=ref)
        chunks.append(chunk)


def http_get(url: str, max_bytes: int, timeout: float, ref: str | None = None, headers: dict | None = None,
             opener: urllib.request.OpenerDirector | None = None) -> bytes:
    """The one capped HTTP GET (library URLs and fleet ``http(s)://`` references): urllib's
    errors propagate for the caller to classify; InputTooLargeError past ``max_bytes``."""
    req = urllib.request.Request(url, headers={"User-Agent": "ocrfleet", **(headers or {})})
    with (opener or urllib.request.build_opener()).open(req, timeout=timeout) as resp:
        return read_capped(resp, max_bytes, ref or url)


def fetch_url(url: str, max_bytes: int = MAX_DOWNLOAD_BYTES, timeout: float = 15.0) -> bytes:
    try:
        return http_get(url, max_bytes, timeout)
    except urllib.error.HTTPError as exc:
        raise InputNotFoundError(f"HTTP {exc.code} fetching {url}", input_ref=url) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise InputNotFoundError(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}", input_ref=url) from exc


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, without decoding pixels; None if unknown."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Image.DecompressionBombError as exc:  # header claims more than Pillow allows
        raise InputTooLargeError(f"image header claims too many pixels ({exc})") from exc
    except Exception:  # noqa: BLE001 - formats PIL does not know are left to OpenCV
        return None


def decode_image_bytes(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image to uint8 BGR; InvalidInputError / InputTooLargeError otherwise."""
    if not data:
        raise InvalidInputError("empty file (0 bytes)", input_ref=name)
    try:
        size = image_size(data)
    except InputTooLargeError as exc:
        raise InputTooLargeError(str(exc), input_ref=name) from exc
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputTooLargeError(
            f"image of {size[0]}x{size[1]} pixels is over the {max_pixels}-pixel limit", input_ref=name)
    if is_pdf(data):
        raise InvalidInputError("this is a PDF, not an image", input_ref=name)
    if truncated(data):
        raise InvalidInputError("truncated image (the file ends before its end-of-image marker)",
                                input_ref=name)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV refuses some corrupt headers by raising
        raise InvalidInputError(f"not a decodable image ({str(exc).strip().splitlines()[-1]})",
                                input_ref=name) from exc
    if img is None or img.size == 0:
        raise InvalidInputError("not a decodable image (corrupt, truncated or not an image format)",
                                input_ref=name)
    return img


def truncated(data: bytes) -> bool:
    """A JPEG without an end-of-image marker after its last scan, or a PNG without IEND: OpenCV
    4.10 decodes what is there and fills the rest with grey, which would OCR half an image."""
    if data[:3] == b"\xff\xd8\xff":  # markers cannot occur inside entropy-coded data (stuffing)
        return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data.rfind(b"IEND") < 0
    return False


def render_pdf_bytes(data: bytes, name: str = "document.pdf", pages=None,
                     max_pages: int = MAX_PDF_PAGES, scale: float = PDF_SCALE
                     ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (page_index, BGR image) for the selected pages (all when ``pages`` is None)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        msg = str(exc)
        if "password" in msg.lower():
            raise InvalidInputError("PDF is encrypted (password required)", input_ref=name) from exc
        raise InvalidInputError(f"malformed PDF: {msg}", input_ref=name) from exc
    try:
        count = len(doc)
        selected = list(range(count)) if pages is None else list(pages)
        bad = [p for p in selected if not 0 <= int(p) < count]
        if bad:
            raise InvalidInputError(f"page(s) {bad} outside the document's {count} pages", input_ref=name)
        if len(selected) > max_pages:
            raise InputTooLargeError(f"{len(selected)} pages requested; the limit is {max_pages}",
                                     input_ref=name)
        for index in selected:
            page = doc[int(index)]
            try:
                bitmap = page.render(scale=scale)  # pdfium renders BGR(A/X) or gray
                pixels = bitmap.to_numpy()
            finally:
                page.close()
            if pixels.ndim == 2 or pixels.shape[2] == 1:
                pixels = cv2.cvtColor(pixels.reshape(pixels.shape[:2]), cv2.COLOR_GRAY2BGR)
            yield int(index), np.ascontiguousarray(pixels[:, :, :3])
    finally:
        doc.close()
