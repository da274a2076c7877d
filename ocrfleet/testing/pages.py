"""Pages rendered for tests: a two-column page (the library's and the fleet's ``reading_order``
tests read the same one)."""
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
