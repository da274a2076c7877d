"""``ocrfleet eval``: accuracy and speed of a model on a labelled set of text-line images.

A label file is UTF-8 text, one line per image: ``relative_image_path<TAB>label``, paths
relative to the label file's folder (PaddleOCR's ``rec_gt`` format).

Metrics (``evaluate()`` returns them as a dict):

- ``accuracy``: exact match of the predicted text and the label;
- ``accuracy_ignore_space``: both normalised as PaddleOCR's ``RecMetric`` does with its
  default ``ignore_space=True`` (all spaces removed), plus Unicode NFKC (so full-width
  forms equal their ASCII forms);
- ``accuracy_ignore_space_case``: the same, case-insensitive (``str.casefold``);
- ``norm_edit_similarity``: mean of ``1 - edit_distance / max(len(pred), len(label))``
  over lines, on the space-free NFKC form (PaddleOCR's ``norm_edit_dis``), and
  ``norm_edit_similarity_case`` case-insensitively;
- ``cer``: total edit distance / total label characters, on the space-free NFKC form;
- ``lines_per_s``: lines / seconds spent recognising (image decoding excluded; one
  warm-up batch is run first and not counted).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrfleet.envvars import parse_bool

try:  # rapidfuzz (C++) when installed; a short DP otherwise
    from rapidfuzz.distance import Levenshtein as _Lev
except ImportError:  # pragma: no cover - depends on the environment
    _Lev = None


@dataclass
class Sample:
    image: Path
    rel: str
    label: str
    line_no: int


def load_labels(labels_path: str | Path) -> list[Sample]:
    path = Path(labels_path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {str(path)!r} does not exist")
    out = []
    with open(path, encoding="utf-8-sig") as fh:
        for no, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            rel, tab, label = line.partition("\t")
            if not tab:
                raise ValueError(f"{path}:{no}: expected 'image_path<TAB>label', got {line[:80]!r}")
            out.append(Sample(path.parent / rel, rel, label, no))
    if not out:
        raise ValueError(f"label file {str(path)!r} has no labelled lines")
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if _Lev is not None:
        return _Lev.distance(a, b)
    return _dp_distance(a, b)


def _dp_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalize(text: str, ignore_case: bool = False) -> str:
    """NFKC, every whitespace character removed, optionally case-folded."""
    text = "".join(unicodedata.normalize("NFKC", text).split())
    return text.casefold() if ignore_case else text


def _similarity(pred: str, label: str) -> float:
    n = max(len(pred), len(label))
    return 1.0 if n == 0 else 1.0 - edit_distance(pred, label) / n


def read_image(path: Path) -> np.ndarray | None:
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def _runner(model):
    """A function list[BGR image] -> list[(text, score)] for a Recognizer or a TextRecognition."""
    if hasattr(model, "recognize"):
        return lambda images, bs: model.recognize(images, batch_size=bs)
    if hasattr(model, "predict"):
        def run(images, bs):
            out = []
            for res in model.predict(images, batch_size=bs):
                r = res.json["res"]
                out.append((r["rec_text"], float(r["rec_score"])))
            return out
        return run
    raise TypeError(f"expected a Recognizer or TextRecognition, got {type(model).__name__}")


def _describe(model) -> dict:
    files = getattr(model, "files", None)
    return {
        "model_name": getattr(files, "name", None) or getattr(model, "model_name", None),
        "model_source": getattr(files, "source", None),
        "backend": getattr(model, "backend_name", None) or getattr(model, "backend", None),
    }


def evaluate(labels_path: str | Path, model, batch_size: int = 8, progress: bool = True,
             warmup: bool = True, chunk_size: int | None = None) -> dict:
    """Recognise every labelled image with ``model`` and score it (see the module doc).

    ``model`` is a ``Recognizer`` (``recognize(images, batch_size)``) or a PaddleOCR-style
    ``TextRecognition`` (``predict(images, batch_size)``). Images that cannot be read count
    as wrong, with an empty prediction, and are listed in ``unreadable``.
    """
    from tqdm import tqdm

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError("batch_size must be a positive integer")
    samples = load_labels(labels_path)
    run = _runner(model)
    images = [read_image(s.image) for s in samples]
    readable = [i for i, im in enumerate(images) if im is not None]
    preds: list[tuple[str, float]] = [("", 0.0)] * len(samples)
    if warmup and readable:
        run([images[i] for i in readable[:batch_size]], batch_size)
    chunk = chunk_size or max(256, batch_size * 64)
    seconds = 0.0
    with tqdm(total=len(readable), unit="line", desc=Path(labels_path).parent.name or "eval",
              disable=not progress, file=sys.stderr, leave=False) as bar:
        for start in range(0, len(readable), chunk):
            idx = readable[start:start + chunk]
            t0 = time.perf_counter()
            got = run([images[i] for i in idx], batch_size)
            seconds += time.perf_counter() - t0
            for i, res in zip(idx, got):
                preds[i] = (str(res[0]), float(res[1]))
            bar.update(len(idx))

    items = []
    for s, (text, score) in zip(samples, preds):
        p0, l0 = normalize(text), normalize(s.label)
        p1, l1 = normalize(text, True), normalize(s.label, True)
        items.append({
            "image": s.rel, "label": s.label, "pred": text, "score": round(score, 6),
            "exact": text == s.label, "ignore_space": p0 == l0, "ignore_space_case": p1 == l1,
            "edit_distance": edit_distance(p0, l0), "label_chars": len(l0),
            "norm_edit_similarity": round(_similarity(p0, l0), 6),
            "norm_edit_similarity_case": round(_similarity(p1, l1), 6),
        })
    n = len(items)
    chars = sum(it["label_chars"] for it in items)
    mean = lambda key: sum(float(it[key]) for it in items) / n  # noqa: E731
    return {
        "labels": str(labels_path),
        **_describe(model),
        "batch_size": batch_size,
        "lines": n,
        "accuracy": mean("exact"),
        "accuracy_ignore_space": mean("ignore_space"),
        "accuracy_ignore_space_case": mean("ignore_space_case"),
        "norm_edit_similarity": mean("norm_edit_similarity"),
        "norm_edit_similarity_case": mean("norm_edit_similarity_case"),
        "cer": sum(it["edit_distance"] for it in items) / chars if chars else 0.0,
        "mean_score": sum(it["score"] for it in items) / n,
        "seconds": seconds,
        "lines_per_s": len(readable) / seconds if seconds > 0 else None,
        "unreadable": [samples[i].rel for i, im in enumerate(images) if im is None],
        "items": items,
    }


def format_report(r: dict, errors: int = 0) -> str:
    n = r["lines"]

    def acc(key: str) -> str:
        return f"{round(r[key] * n):>5}/{n:<5} {100 * r[key]:6.2f}%"

    lps = f"{r['lines_per_s']:.1f} lines/s ({r['seconds']:.2f} s)" if r["lines_per_s"] else "-"
    lines = [
        f"{r['labels']}: {n} lines, model {r['model_name']} ({r['model_source']}), "
        f"backend {r['backend']}, batch_size {r['batch_size']}",
        f"  exact match                    {acc('accuracy')}",
        f"  ignoring spaces (NFKC)         {acc('accuracy_ignore_space')}",
        f"  ignoring spaces and case       {acc('accuracy_ignore_space_case')}",
        f"  1 - normalised edit distance   {r['norm_edit_similarity']:.4f} "
        f"(ignoring case {r['norm_edit_similarity_case']:.4f})",
        f"  character error rate           {100 * r['cer']:.2f}%",
        f"  mean score                     {r['mean_score']:.4f}",
        f"  throughput                     {lps}",
    ]
    if r["unreadable"]:
        lines.append(f"  unreadable images              {len(r['unreadable'])}: {', '.join(r['unreadable'][:5])}")
    wrong = [it for it in r["items"] if not it["ignore_space"]]
    for it in wrong[:errors]:
        lines.append(f"    {it['image']}: {it['label']!r} -> {it['pred']!r} ({it['score']:.3f})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI

def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="accuracy and speed of a model on labelled line images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", action="append", default=[],
                   help="label file (image_path<TAB>label per line); may be given more than once")
    p.add_argument("--pages", action="append", default=[],
                   help="page annotations (JSON lines: file_name, annotations [{box, text}]): detection "
                        "and end-to-end accuracy of the OCR pipeline (ocrfleet.ocr.evaluate); repeatable")
    p.add_argument("--det_model_name", default=None, help="with --pages: the text detection model")
    p.add_argument("--det_model_dir", default=None)
    p.add_argument("--use_textline_orientation", default=False, type=parse_bool,
                   help="with --pages: classify 180-degree lines (default false)")
    p.add_argument("--model_name", default=None)
    p.add_argument("--model_dir", default=None)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--backend", default=None, choices=["paddle", "onnxruntime", "openvino"])
    p.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    p.add_argument("--cpu_threads", type=int, default=10)
    p.add_argument("--json", dest="json_out", default=None,
                   help="write the results (metrics and per-line predictions) here: one object, "
                        "or a list with several --labels")
    p.add_argument("--show_errors", type=int, default=0, metavar="N",
                   help="print up to N misrecognised lines per set")
    p.add_argument("--no_progress", dest="progress", action="store_false")
    p.set_defaults(func=run_eval)
    return p


def _options(device: str, cpu_threads: int):
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.devices import single_device

    kind, dev_id = single_device(device or "cpu")
    return EngineOptions(device=kind, device_id=dev_id, cpu_threads=cpu_threads)


def load_recognizer(model_name=None, model_dir=None, backend=None, device="cpu", cpu_threads=10):
    from ocrfleet.recognition import sources
    from ocrfleet.recognition.engine import Recognizer

    files = sources.resolve(model_name, model_dir)
    return Recognizer(files, _options(device, cpu_threads), backend=backend)


def run_eval(args) -> int:
    from ocrfleet.errors import InputNotFoundError, InvalidInputError

    if args.pages:
        from ocrfleet.ocr.evaluate import run_pages

        if args.labels:
            raise InvalidInputError("give either --labels (line images) or --pages (whole pages), not both")
        return run_pages(args)
    if not args.labels:
        raise InvalidInputError("ocrfleet eval needs --labels FILE (line images) or --pages FILE (pages)")
    if args.batch_size < 1:
        raise InvalidInputError("--batch_size must be a positive integer")
    for labels in args.labels:
        if not Path(labels).is_file():
            raise InputNotFoundError(f"label file {labels!r} does not exist")
    rec = load_recognizer(args.model_name, args.model_dir, args.backend, args.device, args.cpu_threads)
    results = []
    for labels in args.labels:
        try:
            r = evaluate(labels, rec, args.batch_size, progress=args.progress)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
        results.append(r)
        print(format_report(r, args.show_errors))
    if args.json_out:
        out = results[0] if len(results) == 1 else results
        Path(args.json_out).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0
