"""A page's OCR result drawn as PaddleOCR draws it: on the left the page with each line's box
filled in a colour (blended 50 %) and its number, on the right a white page with each line's
text written into its box, outlined in the same colour. CJK-capable font from
``ocrfleet.recognition.visualize.font_path``."""
from __future__ import annotations

import math
import random

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrfleet.recognition.visualize import font_path


def _font(size: int):
    path = font_path()
    size = max(1, size)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _fit_font(text: str, w: int, h: int, vertical: bool):
    if vertical:  # one character per row
        size = max(1, int(w * 0.8))
        font = _font(size)
        height = sum(font.getbbox(c)[3] - font.getbbox(c)[1] + 2 for c in text)
        if height > h:
            font = _font(int(size * h / height))
        return font
    size = max(1, int(h * 0.99))
    font = _font(size)
    length = font.getlength(text)
    if length > w:
        font = _font(int(size * w / length))
    return font


def _text_in_box(size: tuple[int, int], box: np.ndarray, text: str) -> np.ndarray:
    """A white page of ``size`` with ``text`` warped into the quad ``box``."""
    bh = int(math.dist(box[0], box[3]))
    bw = int(math.dist(box[0], box[1]))
    patch = Image.new("RGB", (max(bw, 1), max(bh, 1)), (255, 255, 255))
    if text and bw > 0 and bh > 0:
        draw = ImageDraw.Draw(patch)
        vertical = bh > 2 * bw and bh > 30
        font = _fit_font(text, bw, bh, vertical)
        if vertical:
            y = 0
            for ch in text:
                draw.text((0, y), ch, font=font, fill=(0, 0, 0))
                bbox = font.getbbox(ch)
                y += bbox[3] - bbox[1] + 2
        else:
            draw.text((0, 0), text, font=font, fill=(0, 0, 0))
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    matrix = cv2.getPerspectiveTransform(src, np.asarray(box, np.float32))
    return cv2.warpPerspective(np.asarray(patch), matrix, size, flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))


def draw_ocr(image_bgr: np.ndarray, polys, texts) -> Image.Image:
    h, w = image_bgr.shape[:2]
    rgb = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    left = rgb.copy()
    draw_left = ImageDraw.Draw(left)
    right = np.full((h, w, 3), 255, np.uint8)
    rng = random.Random(0)
    number_font = _font(max(10, min(24, h // 60)))
    numbers = []
    for idx, (poly, text) in enumerate(zip(polys, texts)):
        color = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        box = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
        draw_left.polygon([(int(x), int(y)) for x, y in box], fill=color)
        numbers.append((idx, box, color))
        layer = _text_in_box((w, h), box, text)
        cv2.polylines(layer, [box.astype(np.int32).reshape(-1, 1, 2)], True, color, 1)
        right = cv2.bitwise_and(right, layer)
    left = Image.blend(rgb, left, 0.5)
    draw_left = ImageDraw.Draw(left)
    for idx, box, color in numbers:  # the line number at each box's top-left corner
        x, y = box[:, 0].min(), box[:, 1].min()
        draw_left.text((float(x), float(max(0, y - number_font.size))), str(idx), fill=(255, 0, 0), font=number_font)
    canvas = Image.new("RGB", (w * 2, h), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(Image.fromarray(right), (w, 0))
    return canvas
