"""TextRecResult: one recognised line, printed and saved as PaddleOCR's result object is."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ocrfleet.recognition.visualize import draw_result


class TextRecResult(dict):
    """A dict ``{'input_path', 'page_index', 'rec_text', 'rec_score'}`` plus the input image."""

    def __init__(self, input_path, page_index, rec_text, rec_score, image: np.ndarray | None = None,
                 index: int = 0):
        super().__init__(input_path=input_path, page_index=page_index, rec_text=rec_text,
                         rec_score=rec_score)
        self._image = image
        self._index = index

    @property
    def json(self) -> dict:
        return {"res": dict(self)}

    @property
    def img(self) -> dict:
        """``{'res': PIL.Image}``: the line with the recognised text and score drawn beside it."""
        return {"res": draw_result(self._image, self["rec_text"], self["rec_score"])}

    def _str(self, format_json=True, indent=4, ensure_ascii=False) -> str:
        if format_json:
            return json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii)
        return str(self.json)

    def print(self, format_json: bool = True, indent: int = 4, ensure_ascii: bool = False) -> None:
        print(self._str(format_json, indent, ensure_ascii))

    def _target(self, save_path, suffix: str) -> Path:
        p = Path(save_path)
        if p.suffix.lower() == suffix and not p.is_dir():
            p.parent.mkdir(parents=True, exist_ok=True)
            return p
        p.mkdir(parents=True, exist_ok=True)
        src = self["input_path"]
        stem = Path(src).stem if src else f"res_{self._index}"
        if self["page_index"] is not None:
            stem = f"{stem}_{self['page_index']}"
        return p / f"{stem}_res{suffix}"

    def save_to_json(self, save_path, indent: int = 4, ensure_ascii: bool = False) -> Path:
        target = self._target(save_path, ".json")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii), encoding="utf-8")
        os.replace(tmp, target)
        return target

    def save_to_img(self, save_path) -> Path:
        p = Path(save_path)
        suffix = p.suffix.lower() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp") else ".png"
        target = self._target(save_path, suffix)
        self.img["res"].save(target)
        return target

    def __str__(self) -> str:
        return self._str(format_json=False)
