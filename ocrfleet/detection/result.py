"""TextDetResult: PaddleOCR's text-detection result (``input_path``, ``page_index``,
``input_img``, ``dt_polys``, ``dt_scores``; the JSON leaves out ``input_img``)."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ocrfleet.recognition.result import PaddleResult


class TextDetResult(PaddleResult):
    def __init__(self, input_path, page_index, image: np.ndarray, polys: np.ndarray, scores: list[float],
                 index: int = 0):
        super().__init__(input_path=input_path, page_index=page_index, input_img=image, dt_polys=polys,
                         dt_scores=scores, index=index)

    def _draw(self) -> Image.Image:
        """The page with every box outlined in red, as PaddleOCR draws it."""
        image = np.ascontiguousarray(self["input_img"]).copy()
        for box in self["dt_polys"]:
            cv2.polylines(image, [np.reshape(np.array(box).astype(int), (-1, 1, 2)).astype(np.int64)],
                          True, (0, 0, 255), 2)
        return Image.fromarray(image[:, :, ::-1])
