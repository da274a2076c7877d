"""The torch backend (``backend="torch"``, ocrfleet/recognition/backends/torch_backend.py) on
the CPU: ONNX Runtime's text on every real line, the CTC argmax taken in torch, fp16 refused
on CPU, a clear error without torch, the GPU stack order (GPU availability faked: this machine
has no GPU), and the threads-pool batcher feeding it lines of many jobs at once."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import REC  # noqa: E402
from ocrfleet.errors import BackendUnavailableError  # noqa: E402
from ocrfleet.recognition import sources  # noqa: E402
from ocrfleet.recognition.backends import select  # noqa: E402
from ocrfleet.recognition.backends.base import EngineOptions  # noqa: E402
from ocrfleet.recognition.backends.torch_backend import TorchBackend  # noqa: E402
from ocrfleet.recognition.engine import Recognizer  # noqa: E402
from ocrfleet.recognition.inputs import decode_image_bytes  # noqa: E402

OPTS = EngineOptions(cpu_threads=1)  # torch's OpenMP pool stalls on a loaded 2-core machine (see test_torch_graph)


def real_lines() -> list[np.ndarray]:
    out = []
    for tsv in sorted(REC.glob("*/labels.tsv")):
        for line in tsv.read_text(encoding="utf-8").splitlines():
            if line.strip():
                path = tsv.parent / line.split("\t", 1)[0]
                out.append(decode_image_bytes(path.read_bytes(), str(path)))
    return out


@pytest.fixture(scope="module")
def lines():
    return real_lines()


@pytest.fixture(scope="module")
def v5_torch():
    return Recognizer(sources.resolve("PP-OCRv5_mobile_rec"), OPTS, backend="torch")


@pytest.mark.parametrize("model", ["PP-OCRv5_mobile_rec", "PP-OCRv6_tiny_rec"])
def test_same_text_as_onnxruntime_on_every_real_line(model, lines, v5_torch):
    files = sources.resolve(model)
    got_rec = v5_torch if model == "PP-OCRv5_mobile_rec" else Recognizer(files, OPTS, backend="torch")
    want_rec = Recognizer(files, OPTS, backend="onnxruntime")
    assert got_rec.backend_name == "torch" and want_rec.backend_name == "onnxruntime"
    got = got_rec.recognize(lines, batch_size=8)
    want = want_rec.recognize(lines, batch_size=8)
    assert len(lines) >= 90
    diff = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if w[0] != g[0]]
    assert not diff, f"torch text differs from ONNX Runtime on {len(diff)} lines: {diff[:5]}"
    assert max(abs(w[1] - g[1]) for w, g in zip(want, got)) <= 1e-3
    assert sum(bool(t) for t, _ in got) > 0.9 * len(lines)  # real text, not empty strings


def test_argmax_in_torch_equals_argmax_of_probabilities(v5_torch, lines):
    from ocrfleet.recognition.preprocess import make_batch

    backend = v5_torch.backend
    batch = make_batch(lines[:4], v5_torch.files.input_shape)
    probs = backend.run(batch)
    idx, prob = backend.run_argmax(batch)
    assert idx.shape == prob.shape == probs.shape[:2]
    np.testing.assert_array_equal(idx, probs.argmax(axis=2))
    np.testing.assert_allclose(prob, probs.max(axis=2), atol=1e-6)
    assert v5_torch.decoder.from_argmax(idx, prob) == v5_torch.decoder(probs)


def test_fp16_on_cpu_is_refused_clearly():
    files = sources.resolve("PP-OCRv6_tiny_rec")
    with pytest.raises(BackendUnavailableError, match="fp16 needs a CUDA GPU"):
        select.create("torch", files, EngineOptions(precision="fp16"))
    assert "fp16" in TorchBackend.available(files, EngineOptions(precision="fp16"))


def test_gpu_refused_without_cuda():
    # this machine has no GPU (CPU torch): a clear reason, not a crash
    files = sources.resolve("PP-OCRv6_tiny_rec")
    assert TorchBackend.available(files, EngineOptions(device="gpu")) == "this torch build sees no CUDA GPU"


def test_missing_torch_gives_the_install_hint(monkeypatch):
    import importlib.util
    import sys

    from ocrfleet.recognition.backends import torch_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    files = sources.resolve("PP-OCRv6_tiny_rec")
    assert "pip install 'ocrfleet[torch]'" in TorchBackend.available(files, OPTS)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"ocrfleet\[torch\]"):
        torch_backend.load_torch()


def test_gpu_default_order_puts_torch_last(monkeypatch):
    """No GPU here: availability of each backend on "gpu" is faked."""
    reg = select.registry()
    for name, cls in reg.items():
        monkeypatch.setattr(cls, "available", classmethod(lambda c, f, o: None))
    gpu = EngineOptions(device="gpu")
    onnx_files = sources.resolve("PP-OCRv6_tiny_rec")
    assert select.default_order(onnx_files, gpu) == ["onnxruntime", "torch"]
    paddle_like = dataclasses.replace(onnx_files, fmt="paddle")
    assert select.default_order(paddle_like, gpu) == ["paddle", "onnxruntime", "torch"]
    # only torch has CUDA (the lent machine's case): it is the one chosen
    for name in ("paddle", "onnxruntime"):
        monkeypatch.setattr(reg[name], "available", classmethod(lambda c, f, o: "no CUDA build"))
    assert select.default_order(paddle_like, gpu) == ["torch"]
    # on the CPU torch runs only when named
    assert "torch" not in select.default_order(onnx_files, EngineOptions())


def test_batcher_feeds_torch_from_many_jobs(v5_torch, lines):
    from ocrfleet.testing.batching import recognize_concurrently
    from ocrfleet.workers.batcher import Batcher

    alone = [v5_torch.recognize([im], batch_size=1)[0] for im in lines[:12]]
    b = Batcher(v5_torch, max_lines=16, max_wait_ms=50, name="torch-test")
    chunks = [list(range(i, min(i + 3, 12))) for i in range(0, 12, 3)]
    results, errors = recognize_concurrently(b, lines, chunks)
    b.stop()
    assert not errors
    got = [r for k in range(len(chunks)) for r in results[k]]
    assert [t for t, _ in got] == [t for t, _ in alone]
    assert np.allclose([s for _, s in got], [s for _, s in alone], atol=1e-4)


def test_cuda_graph_policy_pads_batches_and_captures_recurring_shapes():
    """The shape policy of the CUDA-graph path (the capture itself needs a GPU: gpu_check.sh)."""
    import dataclasses as dc

    files = sources.resolve("PP-OCRv6_tiny_rec")
    backend = select.create("torch", files, OPTS)
    assert backend._graphed(np.zeros((3, 3, 48, 320), np.float32), True) is None  # CPU: never
    backend.cuda = True  # as on a GPU
    x = np.ones((3, 3, 48, 320), np.float32)
    assert backend._graphed(x, True) is None  # first sight of the shape: eager
    padded, key = backend._graphed(x, True)  # it recurs: graphed, batch padded to a power of two
    assert key == ((4, 3, 48, 320), True) and padded.shape == (4, 3, 48, 320)
    assert (padded[:3] == 1).all() and (padded[3] == 0).all()
    assert backend._graphed(np.ones((4, 3, 48, 320), np.float32), True)[1] == key  # same graph
    assert backend._graphed(np.ones((5, 3, 48, 977), np.float32), True) is None  # a one-off width
    backend.files = dc.replace(files, task="det")
    assert backend._graphed(x, True) is None  # pages: every size differs, always eager


def test_cuda_graph_cache_stops_capturing_when_full(monkeypatch):
    from ocrfleet.recognition.backends import torch_backend

    backend = select.create("torch", sources.resolve("PP-OCRv6_tiny_rec"), OPTS)
    backend.cuda = True
    monkeypatch.setattr(torch_backend, "MAX_GRAPHS", 1)
    x = np.zeros((1, 3, 48, 320), np.float32)
    backend.graphs[((1, 3, 48, 320), True)] = "a captured graph"
    assert backend._graphed(x, True) is not None  # a kept graph is used
    y = np.zeros((1, 3, 48, 400), np.float32)
    assert backend._graphed(y, True) is None and backend._graphed(y, True) is None  # full: eager, no churn
    assert list(backend.graphs) == [((1, 3, 48, 320), True)]


@pytest.mark.parametrize("name", ["PP-OCRv5_mobile_det", "PP-OCRv6_tiny_det"])
def test_detection_on_torch_gives_onnxruntime_boxes(name):
    import cv2

    from conftest import DATA
    from ocrfleet import TextDetection

    page = cv2.imread(str(DATA / "real" / "receipts" / "wildreceipt" / "2.jpeg"))
    got = TextDetection(model_name=name, device="cpu", cpu_threads=1, backend="torch")
    want = TextDetection(model_name=name, device="cpu", cpu_threads=1, backend="onnxruntime")
    assert got.backend == "torch"
    (gp, gs), (wp, ws) = got.detect(page), want.detect(page)
    assert len(wp) > 10 and np.array_equal(gp, wp) and np.allclose(gs, ws, atol=1e-4)


def test_textline_orientation_on_torch_gives_onnxruntime_classes():
    from ocrfleet import TextLineOrientationClassification

    images = real_lines()[:16]
    kw = dict(model_name="PP-LCNet_x1_0_textline_ori", device="cpu", cpu_threads=1)
    got = TextLineOrientationClassification(backend="torch", **kw).classify(images)
    want = TextLineOrientationClassification(backend="onnxruntime", **kw).classify(images)
    assert [c for c, _ in got] == [c for c, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)
