"""Pages rendered for tests, read by the library's and the fleet's tests alike: a two-column page
(``reading_order``) and a mostly blank page (margin trimming)."""
from __future__ import annotations

import numpy as np

COLUMN_WORDS = ("ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT")


def two_column_page() -> np.ndarray:
    """A BGR page: a title across the top, then six lines in each of two columns ("LEFT n WORD"
    beside "RIGHT n WORD"), drawn with the bundled font; PaddleOCR's order interleaves them."""
    from PIL import Image, ImageDraw, ImageFont

    from ocrfleet.recognition.visualize import font_path

    font = ImageFont.truetype(font_path(), 30)
    img = Image.new("RGB", (1190, 900), "white")
    draw = ImageDraw.Draw(img)
    draw.text((80, 40), "TWO COLUMN REPORT", font=font, fill="black")
    for i, w in enumerate(COLUMN_WORDS):
        draw.text((80, 140 + 90 * i), f"LEFT {i + 1} {w}", font=font, fill="black")
        draw.text((640, 142 + 90 * i), f"RIGHT {i + 1} {w}", font=font, fill="black")
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])


SPARSE_LINES = ("INVOICE 2026-0042", "Total due 1234.50 EUR", "Thank you for your order")


def sparse_page() -> np.ndarray:
    """A BGR A4 page at 144 dpi (1190x1684) that is mostly blank paper: three lines of
    ``SPARSE_LINES`` near its top left, drawn with the bundled font (margin trimming's test page)."""
    from PIL import Image, ImageDraw, ImageFont

    from ocrfleet.recognition.visualize import font_path

    font = ImageFont.truetype(font_path(), 28)
    img = Image.new("RGB", (1190, 1684), "white")
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(SPARSE_LINES):
        draw.text((120, 160 + 60 * i), text, font=font, fill="black")
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
