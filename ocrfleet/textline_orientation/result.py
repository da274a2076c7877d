"""TopkResult: PaddleOCR's classification result (``input_path``, ``page_index``,
``input_img``, ``class_ids``, ``scores``, ``label_names``; the JSON leaves out ``input_img``)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrfleet.recognition.result import PaddleResult
from ocrfleet.recognition.visualize import font_path


class TopkResult(PaddleResult):
    def __init__(self, input_path, page_index, image: np.ndarray, class_ids: np.ndarray, scores: np.ndarray,
                 label_names: list[str], index: int = 0):
        super().__init__(input_path=input_path, page_index=page_index, input_img=image, class_ids=class_ids,
                         scores=scores, label_names=label_names, index=index)

    def _draw(self) -> Image.Image:
        """The image (RGB, as PaddleOCR keeps it) with the top label and score in the corner."""
        image = Image.fromarray(np.ascontiguousarray(self["input_img"]))
        label = f"{self['label_names'][0]} {float(self['scores'][0]):.2f}"
        size = max(10, int(image.size[0] * 0.05))
        path = font_path()
        font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size)
        draw = ImageDraw.Draw(image)
        left, top, right, bottom = draw.textbbox((0, 0), label, font)
        draw.rectangle([(3, 3), (3 + right - left + 3, 3 + bottom - top + 6)], fill=(255, 0, 0))
        draw.text((6, 3), label, fill=(255, 255, 255), font=font)
        return image
