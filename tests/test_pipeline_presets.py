"""``PaddleOCR(preset="fast")``: faster-paddle's detector size, DB thresholds and recognition padding,
recognition on one single-threaded engine per core — with the same text as one engine at batch size 1.

Real bundled weights (PP-OCRv6 tiny det + rec), a real rendered A4 page. Speed is measured in
bench/pages.py, not here.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import DATA

PAGE = DATA / "rendered" / "pages"
MODELS = dict(text_detection_model_name="PP-OCRv6_tiny_det", text_recognition_model_name="PP-OCRv6_tiny_rec",
              use_textline_orientation=False)


@pytest.fixture(scope="module")
def fast():
    from ocrfleet import PaddleOCR

    return PaddleOCR(**MODELS, cpu_threads=2, preset="fast")


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return cv2.imread(str(sorted(PAGE.glob("*.png"))[0]))


def test_fast_preset_detection_parameters(fast):
    from ocrfleet import PaddleOCR
    from ocrfleet.ocr.pipeline import DET_DEFAULTS

    det = fast.text_det_model
    assert fast.text_det_params == {"limit_side_len": 736, "limit_type": "min", "max_side_limit": 1600,
                                    "thresh": det.thresh, "box_thresh": det.box_thresh,
                                    "unclip_ratio": det.unclip_ratio}
    assert (det.thresh, det.box_thresh, det.unclip_ratio) == (0.2, 0.4, 1.4)  # PP-OCRv6 tiny's inference.yml
    explicit = PaddleOCR(**MODELS, cpu_threads=1, preset="fast", text_det_thresh=0.5, text_det_limit_side_len=960)
    assert explicit.text_det_params["thresh"] == 0.5 and explicit.text_det_params["limit_side_len"] == 960
    assert explicit.text_det_params["max_side_limit"] == 1600
    default = PaddleOCR(**MODELS, cpu_threads=1)
    assert default.text_det_params == DET_DEFAULTS  # PaddleOCR's OCR.yaml, untouched
    assert (fast.rec_batch_size, default.rec_batch_size, explicit.rec_batch_size) == (2, 6, 2)
    assert PaddleOCR(**MODELS, cpu_threads=1, preset="fast", text_recognition_batch_size=4).rec_batch_size == 4
    # recognition padding: faster-paddle's 64 px for PP-OCRv6 tiny under the preset, PaddleOCR's 320 without
    widths = [o.text_rec_model.files.input_shape[2] for o in (fast, explicit, default)]
    assert widths == [64, 64, 320] and fast.text_rec_model.files.input_shape[1] == 48
    assert all(r.files.input_shape[2] == 64 for r in fast._recognizer.recognizers)  # every engine alike
    own = PaddleOCR(**MODELS, cpu_threads=1, preset="fast", text_rec_input_shape=[3, 48, 320])
    assert own.text_rec_model.files.input_shape[2] == 320  # an explicit shape wins
    with pytest.raises(ValueError, match="preset"):
        PaddleOCR(**MODELS, preset="fastest")


def test_fast_preset_page_is_its_detection_plus_batch_one_recognition(fast, page):
    """The preset's result = its detector parameters + every crop recognised alone (batch 1)."""
    from ocrfleet.ocr.geometry import crop_line, sort_boxes

    (res,) = fast.predict(page)
    assert max(page.shape[:2]) > 1600 and res["text_det_params"]["max_side_limit"] == 1600
    p = res["text_det_params"]
    polys, _ = fast.text_det_model.detect(page, limit_side_len=p["limit_side_len"], limit_type=p["limit_type"],
                                          thresh=p["thresh"], box_thresh=p["box_thresh"],
                                          unclip_ratio=p["unclip_ratio"], max_side_limit=1600,
                                          trim_margins=fast.trim_margins)
    expected = [q for q in sort_boxes(polys) if crop_line(page, q) is not None]
    assert len(res["dt_polys"]) == len(expected) >= 20
    assert all(np.array_equal(a, b) for a, b in zip(res["dt_polys"], expected))
    oracle = fast._recognizer.recognizers[0]
    alone = [oracle.recognize([crop_line(page, q)], 1)[0] for q in expected]
    assert res["rec_texts"] == [t for t, _ in alone]
    assert np.allclose(res["rec_scores"], [s for _, s in alone], atol=1e-5)


def test_parallel_engines_give_batch_one_text_on_real_lines(fast, page):
    """Two single-threaded engines fed exact batches (widest first) read every real line as one
    engine alone does, in input order (whatever the number of cores of the machine)."""
    from ocrfleet.ocr.geometry import crop_line, sort_boxes
    from ocrfleet.ocr.parallel import ParallelRecognizer

    polys, _ = fast.text_det_model.detect(page)
    crops = [c for c in (crop_line(page, q) for q in sort_boxes(polys)) if c is not None]
    crops += [cv2.resize(c, (c.shape[1] // 3 + 1, c.shape[0])) for c in crops[:10]]  # short lines too
    first = fast._recognizer.recognizers[0]
    parallel = ParallelRecognizer(first, 2)
    assert len(parallel.recognizers) == 2
    assert parallel.recognizers[1].opts.threads == 1
    got = parallel.recognize(crops, 6)
    alone = [first.recognize([c], 1)[0] for c in crops]
    assert [t for t, _ in got] == [t for t, _ in alone]
    assert np.allclose([s for _, s in got], [s for _, s in alone], atol=1e-5)
    assert parallel.recognize([], 6) == []


def test_fast_preset_keeps_every_engine_busy_on_a_short_page(fast, page):
    """Two lines of the same padded width on a two-core preset: batches no larger than the lines
    per engine, so each engine reads one (in one batch of 2, one engine would read both, the other
    idle)."""
    import threading

    from ocrfleet.ocr.geometry import crop_line, sort_boxes

    engines = fast._recognizer.recognizers
    if len(engines) < 2:
        pytest.skip("one core: a single recognition engine")
    polys, _ = fast.text_det_model.detect(page)
    crop = next(c for c in (crop_line(page, q) for q in sort_boxes(polys)) if c is not None)
    short = cv2.resize(crop, (max(8, crop.shape[1] // 4), crop.shape[0]))  # two copies: one padded width
    calls: dict[int, list[int]] = {}
    lock = threading.Lock()
    originals = [r.recognize for r in engines]

    def counting(k, original):
        def recognize(images, *args, **kwargs):
            with lock:
                calls.setdefault(k, []).append(len(images))
            return original(images, *args, **kwargs)
        return recognize

    try:
        for k, r in enumerate(engines):
            r.recognize = counting(k, originals[k])
        got = fast._recognize_lazy([short.shape[:2]] * 2, lambda i: short)
    finally:
        for r in engines:
            del r.recognize
    assert sorted(calls) == [0, 1] and calls == {0: [1], 1: [1]}
    assert got[0] == got[1] == engines[0].recognize([short], 1)[0]


def test_cli_preset(capsys):
    from ocrfleet.cli import main

    page = str(sorted(PAGE.glob("*.png"))[0])
    args = ["ocr", "-i", page, "--text_detection_model_name", "PP-OCRv6_tiny_det", "--text_recognition_model_name",
            "PP-OCRv6_tiny_rec", "--use_textline_orientation", "false", "--cpu_threads", "1"]
    assert main(args + ["--preset", "fast"]) == 0
    out = capsys.readouterr().out
    assert '"max_side_limit": 1600' in out and '"thresh": 0.2' in out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '"max_side_limit": 4000' in out and '"thresh": 0.3' in out


def test_line_shape_is_the_crop_shape(fast, page):
    """The crops' (h, w), known from the quads before any pixel is cut (recognition is planned
    on them), are the shapes crop_line gives; an empty region has none, as crop_line gives None."""
    from ocrfleet.ocr.geometry import crop_line, line_shape, minarea_quad, sort_boxes

    polys, _ = fast.text_det_model.detect(page)
    quads = [minarea_quad(q) for q in sort_boxes(polys)]
    assert len(quads) >= 20
    assert [line_shape(q) for q in quads] == [crop_line(page, q).shape[:2] for q in sort_boxes(polys)]
    tall = np.array([[10, 10], [20, 10], [20, 60], [10, 60]])
    assert line_shape(minarea_quad(tall)) == crop_line(page, tall).shape[:2] == (10, 50)  # turned upright
    flat = np.array([[10, 10], [60, 10], [60, 10], [10, 10]])
    assert line_shape(minarea_quad(flat)) is None and crop_line(page, flat) is None


def test_ahead_keeps_order_errors_and_stops():
    """ahead(): the same items in the same order, the generator's exception at the same point,
    and a consumer that stops early stops the thread (the generator is closed)."""
    import threading

    from ocrfleet.ocr.ahead import ahead

    assert list(ahead(iter(range(5)))) == [0, 1, 2, 3, 4]
    assert list(ahead(iter([]))) == []

    def failing():
        yield 1
        yield 2
        raise KeyError("page 3")

    got = []
    with pytest.raises(KeyError, match="page 3"):
        for v in ahead(failing()):
            got.append(v)
    assert got == [1, 2]

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    it = ahead(endless())
    assert next(it) == 0 and next(it) == 1
    it.close()  # joins the thread
    assert closed.is_set()
    assert not any(t.name == "ocrfleet-ahead" for t in threading.enumerate())


def test_fast_preset_pages_pipelined_as_one_at_a_time(fast):
    """preset="fast" detects the next page while it recognises this one: a list of pages (with a
    bad entry) gives the same results, in the same order and with the same indexes, as the pages
    one call at a time; the bad entry is raised at its place or skipped and recorded."""
    from ocrfleet.errors import OcrFleetError

    pages = [str(p) for p in sorted(PAGE.glob("*.png"))[:3]]
    missing = str(PAGE / "missing.png")  # no such file
    alone = [fast.predict(p)[0] for p in pages]
    got = fast.predict([pages[0], missing, pages[1], pages[2]], on_error="skip")
    assert [r["input_path"] for r in got] == pages
    assert [r._index for r in got] == [0, 2, 3]
    for a, b in zip(alone, got):
        assert a["rec_texts"] == b["rec_texts"] and a["rec_scores"] == b["rec_scores"]
        assert all(np.array_equal(p, q) for p, q in zip(a["dt_polys"], b["dt_polys"]))
    assert isinstance(fast.errors[-1], OcrFleetError) and "missing.png" in str(fast.errors[-1])
    seen = []
    with pytest.raises(OcrFleetError):
        for res in fast.predict_iter([pages[0], missing, pages[1]]):
            seen.append(res["input_path"])
    assert seen == pages[:1]
