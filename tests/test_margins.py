"""Margin trimming (``ocrfleet.detection.margins``; on with ``PaddleOCR(preset="fast")``): the
detector runs on a page without its blank outer rows and columns, and its map is put back in place.

Synthetic arrays for the region itself; real bundled weights (PP-OCRv6 tiny det + rec) on a
rendered, mostly blank A4 page for the detector and the pipeline. The speed it buys is measured in
bench/pages_ab.py (docs/pages.md run L), not here.
"""
from __future__ import annotations

import numpy as np
import pytest

from ocrfleet.detection.margins import EMPTY, MARGIN, content_region
from ocrfleet.testing.pages import SPARSE_LINES, sparse_page

MODELS = dict(text_detection_model_name="PP-OCRv6_tiny_det", text_recognition_model_name="PP-OCRv6_tiny_rec",
              use_textline_orientation=False)


def _white(h=1600, w=1120):
    return np.full((h, w, 3), 255, np.uint8)


def test_region_is_the_ink_widened_by_the_margin_and_aligned():
    img = _white()
    img[300:341, 200:601] = 30  # a "line" of ink
    y0, y1, x0, x1 = content_region(img)
    assert (y0, y1, x0, x1) == (192, 448, 96, 704)  # (300 - 96) // 32 * 32 ... ceil((341 + 96) / 32) * 32
    assert y0 <= 300 - MARGIN and y1 >= 341 + MARGIN and x0 <= 200 - MARGIN and x1 >= 601 + MARGIN
    assert all(v % 32 == 0 for v in (y0, y1, x0, x1))


def test_every_ink_pixel_is_inside_the_region():
    rng = np.random.default_rng(3)
    for _ in range(20):
        img = np.full((960, 736, 3), rng.integers(0, 256), np.uint8)  # any uniform sheet, not only white
        for _ in range(int(rng.integers(1, 4))):
            y, x = int(rng.integers(0, 950)), int(rng.integers(0, 726))
            img[y:y + 10, x:x + 10] = rng.integers(0, 256, 3)
        region = content_region(img)
        ink = np.argwhere((img != img[0, 0]).any(axis=2) | (img[0, 0] != img).any(axis=2))
        if region is None or not len(ink):
            continue
        y0, y1, x0, x1 = region
        assert ((ink[:, 0] >= y0) & (ink[:, 0] < y1) & (ink[:, 1] >= x0) & (ink[:, 1] < x1)).all()


def test_faint_ink_counts_and_noise_or_full_pages_are_left_whole():
    img = _white()
    img[100:120, 100:300] = 0
    img[1500, 1000] = 255 - 16  # within the tolerance: paper, not ink
    assert content_region(img) == (0, 224, 0, 416)
    img[700, 600] = 255 - 17  # one pixel just over it, far from the rest: ink
    assert content_region(img) == (0, 800, 0, 704)
    noisy = np.random.default_rng(0).integers(200, 256, (1600, 1120, 3), dtype=np.uint8)  # speckled scan
    assert content_region(noisy) is None
    full = _white()
    full[40:1560, 40:1080:7] = 0  # ink up to every edge: nothing worth trimming
    assert content_region(full) is None
    odd = _white(1000, 700)  # sides that are not multiples of 32
    odd[10:20, 10:20] = 0
    assert content_region(odd) is None


def test_blank_pages_have_no_region():
    assert content_region(_white()) == EMPTY
    assert content_region(np.full((640, 640, 3), 90, np.uint8)) == EMPTY
    bands = _white()
    bands[800:] = 200  # two uniform halves: every row is uniform, no text anywhere
    assert content_region(bands) == EMPTY
    gray = np.full((640, 640), 255, np.uint8)
    gray[300:310, 300:400] = 0
    assert content_region(gray) == (192, 416, 192, 512)


@pytest.fixture(scope="module")
def pipelines():
    from ocrfleet import PaddleOCR

    fast = PaddleOCR(**MODELS, cpu_threads=2, preset="fast")
    whole = PaddleOCR(**MODELS, cpu_threads=2, preset="fast", trim_margins=False)
    return fast, whole


def _spy(det):
    """The detector's model input shapes, recorded (the model itself is called unchanged)."""
    seen = []
    run = det.backend_impl.run
    det.backend_impl.run = lambda batch: seen.append(batch.shape) or run(batch)
    return seen


def test_detector_sees_only_the_region_and_boxes_stay_in_page_coordinates(pipelines):
    fast, whole = pipelines
    det = fast.text_det_model
    seen = _spy(det)
    page = sparse_page()
    params = dict(limit_side_len=736, limit_type="min", max_side_limit=1600)
    trimmed, _ = det.detect(page, trim_margins=True, **params)
    full, _ = det.detect(page, **params)
    (small, big) = seen
    assert big[2:] == (1600, 1120) and small[2] * small[3] < 0.15 * big[2] * big[3]
    assert len(trimmed) == len(full) == len(SPARSE_LINES)
    by_row = lambda polys: sorted(polys, key=lambda p: p[:, 1].mean())  # noqa: E731
    for a, b in zip(by_row(trimmed), by_row(full)):  # the same lines, in the same place on the page
        assert np.abs(a.mean(axis=0) - b.mean(axis=0)).max() < 6 and np.abs(a - b).max() < 12


def test_fast_preset_trims_margins_with_the_same_text(pipelines):
    from ocrfleet import PaddleOCR

    fast, whole = pipelines
    assert fast.trim_margins and not whole.trim_margins
    assert not PaddleOCR(**MODELS, cpu_threads=1).trim_margins  # PaddleOCR's behaviour by default
    assert PaddleOCR(**MODELS, cpu_threads=1, trim_margins=True).trim_margins  # anyone may ask for it
    seen, seen_whole = _spy(fast.text_det_model), _spy(whole.text_det_model)
    page = sparse_page()
    (res,) = fast.predict(page)
    (ref,) = whole.predict(page)
    assert seen[-1][2] * seen[-1][3] < 0.15 * seen_whole[-1][2] * seen_whole[-1][3]
    assert res["rec_texts"] == ref["rec_texts"] == list(SPARSE_LINES)
    dense = np.ascontiguousarray(np.tile(page[100:350], (6, 1, 1))[:1684])  # lines down the whole sheet
    dense[:, 700:] = np.ascontiguousarray(dense[:, 100:590])[:, :490]
    fast.predict(dense), whole.predict(dense)
    assert seen[-1] == seen_whole[-1]  # nothing worth trimming: the whole page, as without it


def test_trimmed_by_default_only_where_new_input_sizes_are_free(pipelines):
    """preset "fast" trims on ONNX Runtime on a CPU; not on OpenVINO (a compile per input size) nor,
    by default, on a GPU (a stand-in detector: no GPU here); an explicit choice wins."""
    from types import SimpleNamespace

    from ocrfleet import PaddleOCR
    from ocrfleet.detection.margins import trims_by_default

    fast, _ = pipelines
    assert fast.text_det_model.backend == "onnxruntime" and trims_by_default("fast", fast.text_det_model)
    assert not trims_by_default(None, fast.text_det_model)
    gpu = SimpleNamespace(backend="onnxruntime", backend_impl=SimpleNamespace(opts=SimpleNamespace(device="gpu")))
    assert not trims_by_default("fast", gpu)
    ov = PaddleOCR(**MODELS, cpu_threads=1, preset="fast", backend="openvino")
    assert ov.text_det_model.backend == "openvino" and not ov.trim_margins
    assert PaddleOCR(**MODELS, cpu_threads=1, preset="fast", backend="openvino", trim_margins=True).trim_margins


def test_blank_page_skips_the_detector(pipelines):
    fast, _ = pipelines
    seen = _spy(fast.text_det_model)
    (res,) = fast.predict(np.full((1684, 1190, 3), 255, np.uint8))
    assert res["dt_polys"] == [] and res["rec_texts"] == [] and seen == []


def test_no_trimming_for_a_fixed_input_shape():
    """A detector built for one input size keeps it: no trimming (a static-shape engine could not run it)."""
    from ocrfleet.detection import TextDetection

    det = TextDetection(model_name=MODELS["text_detection_model_name"], cpu_threads=1, input_shape=(3, 640, 640))
    seen = _spy(det)
    polys, _ = det.detect(sparse_page(), trim_margins=True)
    assert seen == [(1, 3, 640, 640)] and len(polys) == len(SPARSE_LINES)


def test_cli_trim_margins(tmp_path, monkeypatch, capsys):
    import cv2

    import ocrfleet.ocr.pipeline as pipeline
    from ocrfleet.cli import main

    built = []

    class Recorded(pipeline.PaddleOCR):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self.trim_margins)

    monkeypatch.setattr(pipeline, "PaddleOCR", Recorded)
    path = tmp_path / "sparse.png"
    cv2.imwrite(str(path), sparse_page())
    args = ["ocr", "-i", str(path), "--text_detection_model_name", MODELS["text_detection_model_name"],
            "--text_recognition_model_name", MODELS["text_recognition_model_name"],
            "--use_textline_orientation", "false", "--cpu_threads", "1", "--text"]
    for extra, trimmed in (([], False), (["--preset", "fast"], True), (["--preset", "fast", "--trim_margins", "false"],
                                                                        False), (["--trim_margins", "true"], True)):
        assert main(args + extra) == 0
        assert built[-1] is trimmed
        assert capsys.readouterr().out.split() == " ".join(SPARSE_LINES).split()
