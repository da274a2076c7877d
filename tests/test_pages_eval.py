"""``ocrfleet eval --pages``: detection precision / recall / Hmean and end-to-end line accuracy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA

RECEIPTS = DATA / "real" / "receipts" / "wildreceipt"


def _gt(n=3):
    return [(np.array([[10, 10 + 40 * i], [200, 10 + 40 * i], [200, 40 + 40 * i], [10, 40 + 40 * i]], float),
             f"line {i}") for i in range(n)]


def test_scores_of_known_predictions():
    from ocrfleet.ocr.evaluate import score_page

    gt = _gt()
    polys = [p for p, _ in gt]
    perfect = score_page(gt, polys, polys, ["line0", "Line 1", "ｌｉｎｅ 2"])  # spaces and NFKC ignored, case not
    assert (perfect["gt"], perfect["det"], perfect["det_matched"], perfect["e2e_correct"]) == (3, 3, 3, 2)
    shifted = [p + [0, 25] for p in polys]  # IoU under 0.5 with every line: no match
    miss = score_page(gt, shifted, shifted, ["line 0", "line 1", "line 2"])
    assert (miss["det_matched"], miss["e2e_correct"]) == (0, 0)
    extra = score_page(gt, polys + [polys[0] + [300, 0]], polys, ["line 0", "line 1", "line 2"])
    assert (extra["det"], extra["det_matched"], extra["e2e_correct"]) == (4, 3, 3)
    # a don't-care line (only ~ or -) counts for nothing, and a box on it is no false positive
    care = score_page(gt[:2] + [(gt[2][0], "~~~")], polys, polys, ["line 0", "line 1", "whatever"])
    assert (care["gt"], care["det"], care["det_matched"], care["e2e_correct"]) == (2, 2, 2, 2)


@pytest.fixture(scope="module")
def one_receipt(tmp_path_factory):
    """The 348x348 receipt photo and its real annotations, as a one-page set."""
    root = tmp_path_factory.mktemp("pages")
    line = next(ln for ln in (RECEIPTS / "annotations.jsonl").read_text().splitlines() if '"2.jpeg"' in ln)
    (root / "2.jpeg").write_bytes((RECEIPTS / "2.jpeg").read_bytes())
    (root / "annotations.jsonl").write_text(line + "\n")
    return root / "annotations.jsonl"


def test_eval_pages_cli(one_receipt, tmp_path, capsys):
    from ocrfleet import cli

    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--pages", str(one_receipt), "--det_model_name", "PP-OCRv5_mobile_det",
                   "--model_name", "PP-OCRv5_mobile_rec", "--cpu_threads", "2", "--json", str(out),
                   "--no_progress"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["pages"] == 1 and r["gt_lines"] == 24
    assert 0.7 <= r["recall"] <= 1 and 0.7 <= r["precision"] <= 1
    assert abs(r["hmean"] - 2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"])) < 1e-9
    assert 0.5 <= r["e2e_accuracy"] <= r["recall"]
    assert r["det_model"] == "PP-OCRv5_mobile_det" and r["rec_model"] == "PP-OCRv5_mobile_rec"
    text = capsys.readouterr().out
    assert "hmean" in text and "end to end line accuracy" in text


def test_eval_pages_bad_input(tmp_path):
    from ocrfleet import cli

    assert cli.main(["eval", "--pages", str(tmp_path / "nope.jsonl")]) == 2
    (tmp_path / "bad.jsonl").write_text('{"file_name": "x.png"}\n')
    assert cli.main(["eval", "--pages", str(tmp_path / "bad.jsonl"), "--det_model_name", "PP-OCRv5_mobile_det",
                     "--model_name", "PP-OCRv5_mobile_rec"]) == 2
    assert cli.main(["eval"]) == 2
