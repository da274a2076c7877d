"""OCRResult: one page's lines, a ``dict`` with exactly the keys of PaddleOCR 3.7's pipeline result.

Keys: ``input_path``, ``page_index``, ``doc_preprocessor_res`` (``{"output_img": page}``),
``dt_polys``, ``model_settings``, ``text_det_params``, ``text_type``, ``text_rec_score_thresh``,
``return_word_box``, ``rec_texts``, ``rec_scores``, ``rec_polys``, ``vis_fonts``, ``rec_boxes`` and,
on a page with at least one detected box, ``textline_orientation_angles`` (0 or 1 = 180 degrees,
-1 when the classifier is off) — as the official pipeline leaves it out of an empty page.
``.json`` (and ``save_to_json``) is the official JSON. The page text (lines joined with newlines in
reading order) is the ``text`` property, not a key, so the key set stays the official one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ocrfleet.ocr.draw import draw_ocr

JSON_ORDER = ("input_path", "page_index", "model_settings", "dt_polys", "text_det_params", "text_type",
              "textline_orientation_angles", "text_rec_score_thresh", "return_word_box", "rec_texts",
              "rec_scores", "rec_polys", "rec_boxes")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class OCRResult(dict):
    def __init__(self, *args, index: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self._index = index

    @property
    def text(self) -> str:
        """The page's recognised lines, in reading order, one per line."""
        return "\n".join(self["rec_texts"])

    @property
    def json(self) -> dict:
        return {"res": {k: _plain(self[k]) for k in JSON_ORDER if k in self}}

    @property
    def img(self) -> dict:
        """``{'ocr_res_img': PIL.Image}``: page with filled, numbered boxes | the text in place."""
        page = self["doc_preprocessor_res"]["output_img"]
        return {"ocr_res_img": draw_ocr(page, self["rec_polys"], self["rec_texts"])}

    def _str(self, json_format: bool, indent: int, ensure_ascii: bool) -> str:
        if json_format:
            return json.dumps(self.json, indent=indent, ensure_ascii=ensure_ascii)
        data = {k: self[k] for k in JSON_ORDER if k in self}
        for key in ("dt_polys", "rec_polys", "rec_scores", "textline_orientation_angles", "rec_boxes"):
            if key in data:
                data[key] = np.array(data[key])
        with np.printoptions(threshold=8, edgeitems=1):
            return str({"res": data})

    def print(self, json_format: bool = False, indent: int = 4, ensure_ascii: bool = False) -> None:
        print(self._str(json_format, indent, ensure_ascii))

    def __str__(self) -> str:
        return self._str(False, 4, False)

    def _stem(self) -> str:
        src = self["input_path"]
        stem = Path(src).stem if src else f"res_{self._index}"
        return f"{stem}_{self['page_index']}" if self["page_index"] is not None else stem

    def save_to_json(self, save_path, indent: int = 4, ensure_ascii: bool = False) -> Path:
        """``save_path`` a .json file, or a folder for ``<name>_res.json`` (``<name>_<page>_res.json``)."""
        p = Path(save_path)
        target = p if p.suffix.lower() == ".json" else p / f"{self._stem()}_res.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.json["res"], indent=indent, ensure_ascii=ensure_ascii), encoding="utf-8")
        os.replace(tmp, target)
        return target

    def save_to_img(self, save_path) -> Path:
        """``save_path`` an image file, or a folder for ``<name>_ocr_res_img.<input suffix or png>``."""
        p = Path(save_path)
        if p.suffix.lower() in IMAGE_SUFFIXES:
            target = p
        else:
            src = Path(self["input_path"] or "")
            suffix = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".png"
            target = p / f"{self._stem()}_ocr_res_img{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        self.img["ocr_res_img"].save(target)
        return target
