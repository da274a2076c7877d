"""Bad (and awkward-but-valid) input files, generated at test time: nothing big is committed.

``files()`` returns name -> bytes for everything the bad-input suite uploads to S3."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np

from .helpers import DATA, line_png


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG whose IHDR claims width x height (8-bit RGB); the IDAT holds a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def jpeg_header_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A real JPEG with the frame header (SOF0) patched to claim width x height."""
    data = bytearray(cv2.imencode(".jpg", _line())[1].tobytes())
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def _line() -> np.ndarray:
    return cv2.imdecode(np.frombuffer(line_png(), np.uint8), cv2.IMREAD_COLOR)


def _pil(mode: str, fmt: str, **kw) -> bytes:
    from PIL import Image

    img = Image.fromarray(cv2.cvtColor(_line(), cv2.COLOR_BGR2RGB)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png16() -> bytes:
    return cv2.imencode(".png", _line().astype(np.uint16) * 257)[1].tobytes()


def rgba_png() -> bytes:
    img = cv2.cvtColor(_line(), cv2.COLOR_BGR2BGRA)
    img[:, :, 3] = np.where(img[:, :, 0] < 128, 255, 0)  # background fully transparent
    return cv2.imencode(".png", img)[1].tobytes()


def solid_png(h: int, w: int) -> bytes:
    return cv2.imencode(".png", np.full((h, w), 255, np.uint8))[1].tobytes()


def pdf_pages(n: int) -> bytes:
    """An n-page PDF of blank pages (10,000 pages is about 1 MB)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    for _ in range(n):
        doc.new_page(200, 60).close()
    buf = io.BytesIO()
    doc.save(buf)
    doc.close()
    return buf.getvalue()


def pdf_page_of(points: float) -> bytes:
    """One blank page of points x points (10,000 pt at 144 dpi would render 400 MP)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    doc.new_page(points, points).close()
    buf = io.BytesIO()
    doc.save(buf)
    doc.close()
    return buf.getvalue()


def files() -> dict[str, bytes]:
    png = line_png()
    jpg = cv2.imencode(".jpg", _line())[1].tobytes()
    real_pdf = (DATA / "pdf" / "render.pdf").read_bytes()
    return {
        "good.png": png,
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
        "truncated.png": png[: len(png) // 2],
        "zero.png": b"",
        "corrupt.jpg": b"\xff\xd8\xff\xe0" + b"\x00garbage" * 40,
        "truncated.jpg": jpg[: len(jpg) // 2],
        "zero.jpg": b"",
        "text.png": b"hello, I am a text file with a .png name\n" * 5,
        "html.jpg": b"<!doctype html><html><body>not an image</body></html>",
        "1x1.png": solid_png(1, 1),
        "1x100000.png": solid_png(1, 100_000),   # 1 px high, 100,000 px wide
        "100000x1.png": solid_png(100_000, 1),   # 100,000 px high, 1 px wide
        "bomb.png": png_header_bomb(),
        "bomb.jpg": jpeg_header_bomb(),
        "cmyk.jpg": _pil("CMYK", "JPEG"),
        "16bit.png": png16(),
        "rgba.png": rgba_png(),
        "gray.png": _pil("L", "PNG"),
        "palette.png": _pil("P", "PNG"),
        "tiff.tif": _pil("RGB", "TIFF"),
        "render.pdf": real_pdf,
        "encrypted.pdf": (DATA / "pdf" / "encrypted.pdf").read_bytes(),
        "malformed.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ngarbage\n%%EOF\n",
        "truncated.pdf": real_pdf[: len(real_pdf) // 3],
        "pages10000.pdf": pdf_pages(10_000),
        "big.bin": b"\0" * (3 * 1024 * 1024),    # over the suite's 2 MiB max_input_bytes
        "25mp.png": solid_png(5000, 5000),         # 25 MP decoded (75 MB BGR), ~30 KB encoded
        "page10000pt.pdf": pdf_page_of(10_000),
        "page20000pt.pdf": pdf_page_of(20_000),
    }
