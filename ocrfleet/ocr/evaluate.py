"""``ocrfleet eval --pages annotations.jsonl``: detection and end-to-end accuracy on whole pages.

An annotation file is JSON lines, one page each: ``{"file_name", "annotations": [{"box":
[x1,y1,...,x4,y4], "text"}]}`` (the WildReceipt format), image paths relative to the file.

Per set (``evaluate_pages()`` returns a dict):

- detection ``precision``, ``recall``, ``hmean``: detected boxes (``dt_polys``) matched one to one
  to ground-truth lines at polygon IoU >= 0.5 (greedy, highest IoU first);
- ``e2e_accuracy``: share of ground-truth lines matched (IoU >= 0.5, one to one) by a recognised
  line (``rec_polys``) with the same text after NFKC and removing all whitespace;
- don't-care lines (text that is only ``~``, ``-`` or empty: unreadable or separator lines)
  count for neither; a detection matched to one is not a false positive. In ground truth,
  ``_`` and ``^`` (underline and superscript marks) are removed before comparing text;
- ``pages_per_s``: pages / seconds spent in ``predict`` (decoding excluded, one warm-up page).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ocrfleet.errors import InputNotFoundError, InvalidInputError
from ocrfleet.recognition.evaluate import normalize, read_image

IOU = 0.5


def load_pages(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"annotation file {str(path)!r} does not exist")
    pages = []
    for no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            lines = [(np.asarray(a["box"], np.float64).reshape(4, 2), str(a["text"])) for a in rec["annotations"]]
            pages.append({"image": path.parent / rec["file_name"], "name": rec["file_name"], "lines": lines})
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{no}: not a page annotation ({exc})") from exc
    if not pages:
        raise InvalidInputError(f"annotation file {str(path)!r} has no pages")
    return pages


def gt_text(text: str) -> str:
    return normalize(text.replace("_", "").replace("^", ""))


def dont_care(text: str) -> bool:
    return not gt_text(text).strip("~-")


def quad_iou(a, b) -> float:
    """IoU of two polygons, each taken as its convex hull (text quads are convex)."""
    import cv2

    pa = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 2))
    pb = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 2))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = cv2.contourArea(pa) + cv2.contourArea(pb) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(a, b) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    boxes_b = [np.asarray(q, np.float64).reshape(-1, 2) for q in b]
    for i, p in enumerate(a):
        p = np.asarray(p, np.float64).reshape(-1, 2)
        lo, hi = p.min(0), p.max(0)
        for j, q in enumerate(boxes_b):
            if (q.min(0) < hi).all() and (q.max(0) > lo).all():  # bounding boxes overlap
                out[i, j] = quad_iou(p, q)
    return out


def match(iou: np.ndarray, thresh: float = IOU) -> list[tuple[int, int]]:
    """One-to-one (gt, pred) pairs with IoU >= thresh, highest IoU first."""
    pairs = sorted(((iou[i, j], i, j) for i, j in zip(*np.nonzero(iou >= thresh))), reverse=True)
    used_g, used_p, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_g and j not in used_p:
            used_g.add(i)
            used_p.add(j)
            out.append((int(i), int(j)))
    return out


def score_page(gt: list[tuple[np.ndarray, str]], dt_polys, rec_polys, rec_texts) -> dict:
    care = [i for i, (_, t) in enumerate(gt) if not dont_care(t)]
    det_pairs = match(iou_matrix([p for p, _ in gt], dt_polys))
    ignored = {j for i, j in det_pairs if i not in care}
    tp = sum(1 for i, _ in det_pairs if i in care)
    e2e_pairs = match(iou_matrix([p for p, _ in gt], rec_polys))
    right = [i for i, j in e2e_pairs if i in care and normalize(rec_texts[j]) == gt_text(gt[i][1])]
    return {"gt": len(care), "det": len(dt_polys) - len(ignored), "det_matched": tp, "e2e_correct": len(right),
            "wrong": [(gt[i][1], rec_texts[j]) for i, j in e2e_pairs
                      if i in care and normalize(rec_texts[j]) != gt_text(gt[i][1])]}


def evaluate_pages(path, ocr, progress: bool = False) -> dict:
    """Run ``ocr`` (a ``PaddleOCR``) on every annotated page and score it (see the module doc)."""
    pages = load_pages(path)
    images = [read_image(p["image"]) for p in pages]
    missing = [p["name"] for p, im in zip(pages, images) if im is None]
    if missing:
        raise InputNotFoundError(f"unreadable page images in {path}: {missing}")
    ocr.predict(images[0])  # warm-up
    seconds, per_page = 0.0, []
    for page, image in zip(pages, images):
        t0 = time.perf_counter()
        res = ocr.predict(image)[0]
        seconds += time.perf_counter() - t0
        s = score_page(page["lines"], res["dt_polys"], res["rec_polys"], res["rec_texts"])
        per_page.append({"page": page["name"], **s})
        if progress:
            print(f"  {page['name']}: {s['det_matched']}/{s['gt']} found, {s['e2e_correct']} read right",
                  file=sys.stderr)
    gt = sum(p["gt"] for p in per_page)
    det = sum(p["det"] for p in per_page)
    tp = sum(p["det_matched"] for p in per_page)
    precision = tp / det if det else 0.0
    recall = tp / gt if gt else 0.0
    return {
        "annotations": str(path), "pages": len(pages), "gt_lines": gt, "detected": det,
        "precision": precision, "recall": recall,
        "hmean": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "e2e_accuracy": sum(p["e2e_correct"] for p in per_page) / gt if gt else 0.0,
        "seconds": seconds, "pages_per_s": len(pages) / seconds if seconds else None, "per_page": per_page,
    }


def format_report(r: dict, det_name: str, rec_name: str, errors: int = 0) -> str:
    lines = [f"{r['annotations']}: {r['pages']} pages, {r['gt_lines']} lines, {det_name} + {rec_name}",
             f"  detection  precision {100 * r['precision']:6.2f}%  recall {100 * r['recall']:6.2f}%  "
             f"hmean {100 * r['hmean']:6.2f}%  (IoU >= {IOU})",
             f"  end to end line accuracy {100 * r['e2e_accuracy']:6.2f}%  "
             f"({sum(p['e2e_correct'] for p in r['per_page'])}/{r['gt_lines']})",
             f"  throughput {r['pages_per_s']:.2f} pages/s"]
    wrong = [w for p in r["per_page"] for w in p["wrong"]]
    for gt, pred in wrong[:errors]:
        lines.append(f"    {gt!r} -> {pred!r}")
    return "\n".join(lines)


def run_pages(args) -> int:
    from ocrfleet.ocr.pipeline import PaddleOCR

    for path in args.pages:
        if not Path(path).is_file():
            raise InputNotFoundError(f"annotation file {path!r} does not exist")
    ocr = PaddleOCR(text_detection_model_name=args.det_model_name, text_detection_model_dir=args.det_model_dir,
                    text_recognition_model_name=args.model_name, text_recognition_model_dir=args.model_dir,
                    use_textline_orientation=args.use_textline_orientation, device=args.device,
                    cpu_threads=args.cpu_threads, backend=args.backend)
    results = []
    for path in args.pages:
        r = evaluate_pages(path, ocr, progress=args.progress)
        r.update(det_model=ocr.text_det_model.model_name, rec_model=ocr.text_rec_model.model_name)
        results.append(r)
        print(format_report(r, r["det_model"], r["rec_model"], args.show_errors))
    if args.json_out:
        out = results[0] if len(results) == 1 else results
        Path(args.json_out).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0
