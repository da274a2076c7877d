"""Engine pieces: CTC decoding, preprocessing, backends agreeing, high-performance choice."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import REC, read_labels
from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition import sources
from ocrfleet.recognition.backends import select
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.decode import CTCDecoder, build_labels
from ocrfleet.recognition.engine import Recognizer
from ocrfleet.recognition.preprocess import make_batch, widths


def _onehot(seq, classes, p=0.9):
    out = np.full((1, len(seq), classes), (1 - p) / (classes - 1), np.float32)
    for t, c in enumerate(seq):
        out[0, t, c] = p
    return out


def test_ctc_merges_repeats_drops_blanks_and_scores_mean():
    dec = CTCDecoder(["a", "b"], num_classes=4)  # blank, a, b, space
    probs = _onehot([1, 1, 0, 1, 2, 3, 0], 4)
    probs[0, 4, 2] = 0.5
    (text, score), = dec(probs)
    assert text == "aab "
    assert score == pytest.approx(np.mean([0.9, 0.9, 0.5, 0.9]), abs=1e-6)
    assert dec(_onehot([0, 0], 4)) == [("", 0.0)]


def test_dictionary_that_already_has_blank_and_space():
    assert build_labels(["blank", "x", "y", " "], 4) == ["blank", "x", "y", " "]
    assert build_labels(["x", "y"], 3) == ["blank", "x", "y"]  # no space class
    with pytest.raises(ModelUnavailableError):
        build_labels(["x", "y"], 10)


def test_preprocess_widths_follow_paddleocr():
    shape = (3, 48, 320)
    assert widths(48, 100, shape) == (100, 320)  # short line padded to 320
    assert widths(32, 640, shape) == (960, 960)
    assert widths(10, 100000, shape) == (3200, 3200)  # capped and squeezed
    batch = make_batch([np.full((48, 100, 3), 255, np.uint8), np.zeros((24, 480, 3), np.uint8)], shape)
    assert batch.shape == (2, 3, 48, 960)
    assert batch[0, :, :, :100].max() == pytest.approx(1.0) and batch[0, :, :, 100:].max() == 0.0
    assert batch[1, :, :, :960].min() == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def v5_files():
    return sources.resolve("PP-OCRv5_mobile_rec")


def test_backends_give_the_same_text(v5_files):
    images = [cv2.imread(str(p)) for p, _ in read_labels("wildreceipt_lines")]
    out = {}
    for name in ("onnxruntime", "openvino"):
        rec = Recognizer(v5_files, EngineOptions(cpu_threads=2), backend=name)
        out[name] = rec.recognize(images, batch_size=8)
        assert rec.backend_name == name
    same = sum(a[0] == b[0] for a, b in zip(out["onnxruntime"], out["openvino"]))
    assert same == len(images)
    assert max(abs(a[1] - b[1]) for a, b in zip(out["onnxruntime"], out["openvino"])) < 1e-3


def test_paddle_backend_refuses_onnx_model(v5_files):
    from ocrfleet.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="Paddle-format"):
        select.create("paddle", v5_files, EngineOptions())


def test_threads_capped_at_cores():
    import os

    assert EngineOptions(cpu_threads=10).threads == min(10, len(os.sched_getaffinity(0)))
    assert EngineOptions(cpu_threads=1).threads == 1


def test_recognize_keeps_order_when_sorting(v5_files):
    rec = Recognizer(v5_files, EngineOptions(cpu_threads=2))
    imgs = [cv2.imread(str(REC / "wildreceipt_lines/imgs" / f"1_00{i}.png")) for i in range(5)]
    sorted_out = rec.recognize(imgs, batch_size=2, pack="sorted")
    single = [rec.recognize([im], batch_size=1)[0] for im in imgs]
    assert [t for t, _ in sorted_out] == [t for t, _ in single]


def test_exact_packing_only_batches_equal_widths():
    from ocrfleet.recognition.engine import plan_batches

    shape = (3, 48, 320)
    sizes = [(48, 100), (48, 960), (48, 200), (48, 961), (48, 300), (48, 960)]
    exact = plan_batches(sizes, shape, batch_size=8)
    assert exact == [[0, 2, 4], [1, 5], [3]]
    assert plan_batches(sizes, shape, 2, "sorted") == [[0, 2], [4, 1], [5, 3]]
    assert plan_batches(sizes, shape, 4, "paddleocr") == [[0, 1, 2, 3], [4, 5]]


def test_exact_packing_text_independent_of_batch_size(v5_files):
    rec = Recognizer(v5_files, EngineOptions(cpu_threads=2))
    imgs = [cv2.imread(str(p)) for p, _ in read_labels("wildreceipt_lines")]
    assert rec.recognize(imgs, batch_size=1) == rec.recognize(imgs, batch_size=32)


def test_batches_never_exceed_the_backends_limit(v5_files):
    """A TensorRT profile fixes the largest batch (``Backend.max_batch``, set by the Paddle
    backend from the model's trt_dynamic_shapes); the engine splits bigger requests. No GPU
    here: the limit is set on a CPU backend, which runs as usual."""
    rec = Recognizer(v5_files, EngineOptions(cpu_threads=2))
    imgs = [cv2.imread(str(p)) for p, _ in read_labels("wildreceipt_lines")]
    want = rec.recognize(imgs, batch_size=1)
    seen = []
    run = rec.backend.run
    rec.backend.run = lambda batch: seen.append(batch.shape[0]) or run(batch)
    rec.backend.max_batch = 3
    assert rec.recognize(imgs, batch_size=32) == want
    assert max(seen) == 3 and len(seen) >= len(imgs) / 3


def test_paddle_tensorrt_batch_limit_comes_from_the_model_yml():
    from types import SimpleNamespace

    from ocrfleet.recognition.backends.paddle import DEFAULT_TRT_SHAPES, trt_shapes

    yml = {"Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": {
        "x": [[1, 3, 48, 160], [4, 3, 48, 320], [16, 3, 48, 2000]]}}}}}
    assert trt_shapes(SimpleNamespace(yml=yml))["x"][2][0] == 16
    assert trt_shapes(SimpleNamespace(yml={})) == DEFAULT_TRT_SHAPES
