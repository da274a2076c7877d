"""Result objects printed and saved as PaddleOCR's are: a ``dict`` with exactly the official
keys, whose ``.json`` / ``print()`` / ``save_to_json()`` leave out the non-JSON keys
(``input_img``, ``vis_font``) as PaddleOCR does, and ``.img`` / ``save_to_img()`` drawing."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrfleet.recognition.visualize import draw_result, font_path


def to_json(obj):
    """numpy values and arrays as plain JSON types (PaddleX's ``_format_data``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return [to_json(v) for v in obj.tolist()]
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


@dataclass(frozen=True)
class VisFont:
    """The font ``save_to_img`` draws text with (PaddleX's ``vis_font`` holds a Font with ``.path``)."""

    path: str | None


class PaddleResult(dict):
    """Base: ``HIDDEN`` keys stay out of the JSON; subclasses implement ``_draw()``."""

    HIDDEN: tuple[str, ...] = ("input_img",)

    def __init__(self, *args, index: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self._index = index

    @property
    def json(self) -> dict:
        return {"res": to_json({k: v for k, v in self.items() if k not in self.HIDDEN})}

    @property
    def img(self) -> dict:
        """``{'res': PIL.Image}``."""
        return {"res": self._draw()}

    def _draw(self):  # pragma: no cover - protocol
        raise NotImplementedError

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


class TextRecResult(PaddleResult):
    """PaddleOCR's keys: ``input_path``, ``page_index``, ``input_img`` (the line, BGR),
    ``rec_text``, ``rec_score``, ``vis_font``; the JSON holds the four text keys only."""

    HIDDEN = ("input_img", "vis_font")

    def __init__(self, input_path, page_index, rec_text, rec_score, image: np.ndarray | None = None,
                 index: int = 0):
        super().__init__(input_path=input_path, page_index=page_index, input_img=image,
                         rec_text=rec_text, rec_score=rec_score, vis_font=VisFont(font_path()), index=index)

    def _draw(self):
        """The line with the recognised text and score drawn beside it."""
        return draw_result(self["input_img"], self["rec_text"], self["rec_score"])
