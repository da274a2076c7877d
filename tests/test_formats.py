"""Model formats: official Paddle dirs (legacy inference.pdmodel and PIR inference.json) and the
ONNX converted from them, on every backend, give the same text."""
from __future__ import annotations

import os
import shutil

import pytest

from conftest import read_labels
from ocrfleet import TextRecognition


@pytest.fixture(scope="module")
def v4_json_dir(v4_official_dir, tmp_path_factory, monkeypatch_module):
    """The same model as a Paddle 3 PIR program (inference.json), as paddle2onnx translates it."""
    import paddle2onnx
    import paddle2onnx.convert as conv

    monkeypatch_module.setenv("P2O_KEEP_TEMP_MODEL", "True")
    out = tmp_path_factory.mktemp("v4json")
    paddle2onnx.export(str(v4_official_dir / "inference.pdmodel"), str(v4_official_dir / "inference.pdiparams"),
                       str(out / "unused.onnx"), opset_version=14, optimize_tool="None")
    tmp = conv.PADDLE2ONNX_EXPORT_TEMP_DIR
    shutil.copy(os.path.join(tmp, "inference_pt.json"), out / "inference.json")
    shutil.copy(os.path.join(tmp, "inference_pt.pdiparams"), out / "inference.pdiparams")
    shutil.rmtree(tmp, ignore_errors=True)  # kept for us by P2O_KEEP_TEMP_MODEL: nothing left in /tmp
    shutil.copy(v4_official_dir / "inference.yml", out / "inference.yml")
    (out / "unused.onnx").unlink()
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_paddle_formats_and_backends_agree(v4_official_dir, v4_json_dir, isolated_home):
    paths = [str(p) for p, _ in read_labels("wildreceipt_lines")][:40]
    texts = {}
    for label, model_dir, backend in [("pdmodel/paddle", v4_official_dir, "paddle"),
                                      ("json/paddle", v4_json_dir, "paddle"),
                                      ("pdmodel/onnxruntime", v4_official_dir, "onnxruntime"),
                                      ("pdmodel/openvino", v4_official_dir, "openvino")]:
        model = TextRecognition(model_dir=str(model_dir), backend=backend, cpu_threads=2)
        assert model.model_name == "PP-OCRv4_mobile_rec" and model.backend == backend
        texts[label] = [r["rec_text"] for r in model.predict(paths)]
    ref = texts["pdmodel/paddle"]
    for label, got in texts.items():
        assert got == ref, label
    # the ONNX conversion was cached once for both ONNX backends
    assert len(list((isolated_home / "onnx").glob("*.onnx"))) == 1
