"""OpenVINO backend memory settings (issue 12): batches over MAX_INPUT_VALUES run in slices with
the same output as one call, and the heap is trimmed every TRIM_EVERY calls."""
from __future__ import annotations

import numpy as np
import pytest

from ocrfleet.recognition import sources
from ocrfleet.recognition.backends import openvino as ov_backend
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.preprocess import make_batch

from conftest import read_labels

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def backend():
    return ov_backend.OpenVinoBackend(sources.resolve("PP-OCRv6_tiny_rec", None), EngineOptions(cpu_threads=1))


def real_batch(n: int, width_px: int) -> np.ndarray:
    import cv2

    imgs = [cv2.imread(str(p)) for p, _ in read_labels("wildreceipt_lines")[:n]]
    imgs = [cv2.resize(im, (width_px * im.shape[0] // 48, im.shape[0])) for im in imgs]
    return make_batch(imgs, (3, 48, 320))


def test_batches_over_the_cap_run_in_slices_with_the_same_output(backend, monkeypatch):
    batch = real_batch(7, 640)
    assert batch.shape[0] == 7
    whole = backend.run(batch)
    calls = []
    infer = backend._infer
    monkeypatch.setattr(backend, "_infer", lambda b: calls.append(len(b)) or infer(b))
    monkeypatch.setattr(ov_backend, "MAX_INPUT_VALUES", 3 * int(np.prod(batch.shape[1:])))
    sliced = backend.run(batch)
    assert calls == [3, 3, 1]
    np.testing.assert_allclose(sliced, whole, atol=1e-5)
    # a single line over the cap still runs, alone
    monkeypatch.setattr(ov_backend, "MAX_INPUT_VALUES", 10)
    calls.clear()
    np.testing.assert_allclose(backend.run(batch[:2]), whole[:2], atol=1e-5)
    assert calls == [1, 1]


def test_heap_trimmed_every_n_calls(backend, monkeypatch):
    trims = []
    monkeypatch.setattr(ov_backend.glibc, "malloc_trim", lambda: trims.append(0))
    line = real_batch(1, 320)
    for _ in range(2 * ov_backend.TRIM_EVERY):
        backend.run(line)
    assert trims == [0, 0]
