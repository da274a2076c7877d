"""The PaddleOCR pipeline's API: results, reading order, PDFs, thresholds, saving, errors, CLI.

Real bundled weights (PP-OCRv5_mobile_det + PP-OCRv5_mobile_rec, PP-LCNet_x1_0_textline_ori),
real pages. Parity with the official pipeline is in test_pipeline_parity.py.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from conftest import DATA, PDF
from test_parity import official_python

RECEIPT = DATA / "real" / "receipts" / "wildreceipt" / "2.jpeg"
# the official 3.7 pipeline result's keys (tests/data/reference/official-paddleocr-3.7.0/pipeline)
OFFICIAL_KEYS = {"input_path", "page_index", "doc_preprocessor_res", "dt_polys", "model_settings", "text_det_params",
                 "text_type", "text_rec_score_thresh", "return_word_box", "rec_texts", "rec_scores", "rec_polys",
                 "vis_fonts", "rec_boxes", "textline_orientation_angles"}


@pytest.fixture(scope="module")
def ocr():
    from ocrfleet import PaddleOCR

    return PaddleOCR(text_detection_model_name="PP-OCRv5_mobile_det",
                     text_recognition_model_name="PP-OCRv5_mobile_rec", cpu_threads=2)


@pytest.fixture(scope="module")
def receipt(ocr):
    return ocr.predict(str(RECEIPT))


def test_receipt_lines_in_reading_order(ocr, receipt):
    (res,) = receipt
    assert isinstance(res, dict) and set(res) == OFFICIAL_KEYS
    assert res["model_settings"] == {"use_doc_preprocessor": False, "use_textline_orientation": True}
    assert res["text_det_params"] == {"limit_side_len": 64, "limit_type": "min", "thresh": 0.3,
                                      "max_side_limit": 4000, "box_thresh": 0.6, "unclip_ratio": 1.5}
    texts = res["rec_texts"]
    assert len(texts) >= 20 and "SUBTOTAL" in texts and "$55.96" in texts
    assert texts.index("KOREAN RESTAURANT") < texts.index("SUBTOTAL") < texts.index("$55.96")
    assert res.text.split("\n") == texts
    assert len(res["rec_scores"]) == len(res["rec_polys"]) == len(texts) == len(res["rec_boxes"])
    assert set(res["textline_orientation_angles"]) <= {0, 1}
    polys = np.asarray(res["rec_polys"])
    assert polys.shape[1:] == (4, 2)
    assert (np.asarray(res["rec_boxes"]) == np.stack(
        [polys[:, :, 0].min(1), polys[:, :, 1].min(1), polys[:, :, 0].max(1), polys[:, :, 1].max(1)], 1)).all()
    tops = [p[0][1] for p in res["dt_polys"]]  # PaddleOCR's order: top to bottom, 10 px rows left to right
    assert all(b >= a - 10 for a, b in zip(tops, tops[1:]))


def test_pdf_pages_give_one_result_each(ocr):
    res = ocr.predict(str(PDF / "multipage.pdf"))
    assert [r["page_index"] for r in res] == [0, 1, 2]
    assert [r.text.replace(" ", "") for r in res] == ["Page1", "Page2", "Page3"] or all(
        f"{i + 1}" in r.text for i, r in enumerate(res))
    assert all(r["input_path"] == str(PDF / "multipage.pdf") for r in res)


def test_blank_page_has_no_lines_and_the_official_keys(ocr):
    (res,) = ocr.predict(np.full((600, 400, 3), 255, np.uint8))
    assert res["rec_texts"] == [] and res.text == "" and len(res["dt_polys"]) == 0
    # as the official pipeline, a page without boxes has no textline_orientation_angles
    assert set(res) == OFFICIAL_KEYS - {"textline_orientation_angles"}
    assert res.json["res"]["rec_boxes"] == []


def test_score_threshold_drops_lines(ocr, receipt):
    scores = receipt[0]["rec_scores"]
    cut = sorted(scores)[len(scores) // 2]
    (res,) = ocr.predict(str(RECEIPT), text_rec_score_thresh=cut)
    assert res["text_rec_score_thresh"] == cut
    assert len(res["rec_texts"]) == sum(s >= cut for s in scores) < len(scores)
    assert min(res["rec_scores"]) >= cut
    assert len(res["dt_polys"]) == len(receipt[0]["dt_polys"])  # detection is unchanged


def test_json_and_files(receipt, tmp_path):
    res = receipt[0]
    data = res.json["res"]
    assert list(data) == ["input_path", "page_index", "model_settings", "dt_polys", "text_det_params", "text_type",
                          "textline_orientation_angles", "text_rec_score_thresh", "return_word_box", "rec_texts",
                          "rec_scores", "rec_polys", "rec_boxes"]
    json.dumps(data)  # plain JSON types only
    path = res.save_to_json(tmp_path)
    assert path.name == "2_res.json" and json.loads(path.read_text(encoding="utf-8")) == data
    img = res.save_to_img(tmp_path)
    assert img.name == "2_ocr_res_img.jpeg"
    from PIL import Image

    with Image.open(img) as im:
        h, w = res["doc_preprocessor_res"]["output_img"].shape[:2]
        assert im.size == (2 * w, h)
        right = np.asarray(im.convert("L"))[:, w:]
        assert (right < 128).mean() > 0.01  # the recognised text is drawn on the right half


def test_textline_orientation_can_be_switched_off_per_call(ocr):
    (res,) = ocr.predict(str(PDF / "render.pdf"), use_textline_orientation=False)
    assert res["model_settings"]["use_textline_orientation"] is False
    assert set(res["textline_orientation_angles"]) == {-1}
    assert "Test File" in res["rec_texts"]


def test_doc_preprocessing_without_weights_is_model_unavailable():
    from ocrfleet import ModelUnavailableError, PaddleOCR

    for flag in ("use_doc_orientation_classify", "use_doc_unwarping"):
        with pytest.raises(ModelUnavailableError) as err:
            PaddleOCR(text_detection_model_name="PP-OCRv5_mobile_det",
                      text_recognition_model_name="PP-OCRv5_mobile_rec", **{flag: True})
        assert err.value.code == "MODEL_UNAVAILABLE" and flag in str(err.value)


def test_bad_inputs(ocr, tmp_path):
    from ocrfleet import InputNotFoundError, InvalidInputError

    with pytest.raises(InputNotFoundError):
        ocr.predict(str(tmp_path / "missing.png"))
    with pytest.raises(InvalidInputError):
        ocr.predict(np.zeros((0, 10, 3), np.uint8))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    got = ocr.predict([str(tmp_path / "junk.png"), np.full((50, 50, 3), 255, np.uint8)], on_error="skip")
    assert len(got) == 1 and ocr.errors and ocr.errors[-1].code == "INVALID_INPUT"
    (res,) = ocr.predict(np.zeros((300, 300, 3), np.uint8))  # all black: no lines, no error
    assert res["rec_texts"] == []


LANG_CASES = [(None, None), ("en", "PP-OCRv4"), ("ch", "PP-OCRv4"), ("fr", None), ("ru", None), ("en", "PP-OCRv5"),
              ("japan", "PP-OCRv5"), ("korean", None), ("ka", None), ("hi", "PP-OCRv3"), ("ch", "PP-OCRv3"),
              ("fr", "PP-OCRv4"), ("xx", None), ("pi", "PP-OCRv6"), ("ar", "PP-OCRv5"), ("en", "PP-OCRv6")]


def test_lang_and_version_pick_paddleocrs_models():
    from ocrfleet.ocr.models import ocr_model_names

    assert ocr_model_names("en", "PP-OCRv4") == ("PP-OCRv4_mobile_det", "en_PP-OCRv4_mobile_rec")
    assert ocr_model_names(None, None) == ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec")
    assert ocr_model_names("ru", None) == ("PP-OCRv5_server_det", "eslav_PP-OCRv5_mobile_rec")
    assert ocr_model_names("xx", None) == (None, None)
    with pytest.raises(ValueError):
        ocr_model_names("en", "PP-OCRv2")
    py = official_python()
    if py is None:
        return
    code = ("import json,sys\nfrom paddleocr._pipelines.ocr import PaddleOCR\n"
            f"print(json.dumps([PaddleOCR._get_ocr_model_names(None, l, v) for l, v in {LANG_CASES!r}]))")
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    official = [tuple(x) for x in json.loads(out.stdout.strip().splitlines()[-1])]
    assert [ocr_model_names(lang, v) for lang, v in LANG_CASES] == official


def test_cli_ocr(tmp_path, capsys):
    from ocrfleet.cli import main

    rc = main(["ocr", "-i", str(PDF / "render.pdf"), "--text_detection_model_name", "PP-OCRv5_mobile_det",
               "--text_recognition_model_name", "PP-OCRv5_mobile_rec", "--use_textline_orientation", "false",
               "--cpu_threads", "2", "--save_path", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["res"]["page_index"] == 0 and "Test File" in out["res"]["rec_texts"]
    assert (tmp_path / "render_0_res.json").is_file() and (tmp_path / "render_0_ocr_res_img.png").is_file()
    assert main(["ocr", "-i", str(tmp_path / "nope.pdf"), "--text_detection_model_name", "PP-OCRv5_mobile_det",
                 "--text_recognition_model_name", "PP-OCRv5_mobile_rec", "--use_textline_orientation", "false"]) == 2
