"""Page jobs (docs/fleet.md "Page jobs"): inputs without regions are pages whose every line is
detected and recognised by a real worker subprocess (real Redis, real SeaweedFS), and the
result equals the in-process ``ocrfleet.PaddleOCR`` with the same models on the same page.

The suite has its own worker (its own queues and keys) so it can set ``max_page_lines`` and
load the detector at start: PP-OCRv6 tiny det + rec, the fastest pair, to keep it short.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zlib
import struct

import cv2
import numpy as np
import pytest

from ocrfleet.config.settings import to_env
from .conftest import DATA
from ocrfleet.testing.servers import REPO, Worker

DET, REC = "PP-OCRv6_tiny_det", "PP-OCRv6_tiny_rec"
MAX_LINES = 300


@pytest.fixture(scope="module")
def page_settings(settings):
    run = uuid.uuid4().hex[:6]
    return settings.replace(queue_prefix=f"p{run}.", key_prefix=f"pages-{run}", results_prefix=f"pages-{run}",
                            default_model=REC, default_det_model=DET, worker_models=[REC, DET],
                            max_page_lines=MAX_LINES)


@pytest.fixture(scope="module")
def page_producer(page_settings):
    from ocrfleet.producer import Producer

    return Producer(page_settings)


@pytest.fixture(scope="module")
def page_worker(page_settings, page_producer):
    w = Worker(to_env(page_settings), name=f"pw{uuid.uuid4().hex[:6]}", concurrency=1,
               models=f"{REC},{DET}").start(page_producer.app)
    yield w
    w.stop()


def _put(s3_server, key: str, data: bytes) -> str:
    s3_server.client().put_object(Bucket="inputs", Key=key, Body=data)
    return f"s3://inputs/{key}"


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _run(producer, refs, **kw) -> tuple[dict, dict]:
    job = producer.submit(refs, **kw)
    record = job.result(timeout=120)
    return record, (job.fetch_result() if record.get("result_uri") else {})


def test_pages_match_the_in_process_pipeline(page_producer, page_worker, inputs, s3_server):
    from ocrfleet import PaddleOCR

    refs = ["s3://inputs/receipts/1.jpeg", "s3://inputs/pdf/text.pdf"]
    record, result = _run(page_producer, refs, visualize=True)  # mode auto: both are pages
    assert record["status"] == "succeeded", record
    ocr = PaddleOCR(text_detection_model_name=DET, text_recognition_model_name=REC,
                    use_textline_orientation=False, cpu_threads=1)
    expected = ocr.predict(str(DATA / "receipts/wildreceipt/1.jpeg")) + ocr.predict(str(DATA / "pdf/text.pdf"))
    assert [(p["input_index"], p["page_index"]) for p in result["pages"]] == [(0, None), (1, 0), (1, 1)]
    for n, (page, res) in enumerate(zip(result["pages"], expected)):
        lines = [e for e in result["items"] if (e["input_index"], e["page_index"]) == (page["input_index"], page["page_index"])]
        assert len(lines) == page["lines"] == len(res["rec_texts"]) > 3
        assert [e["line_index"] for e in lines] == list(range(len(lines)))
        assert [e["poly"] for e in lines] == [np.asarray(p).tolist() for p in res["rec_polys"]]
        assert [e["rec_text"] for e in lines] == list(res["rec_texts"])
        assert [e["rec_score"] for e in lines] == pytest.approx(list(res["rec_scores"]), abs=1e-4)
        assert page["text"] == res.text and (page["width"], page["height"]) == res["doc_preprocessor_res"]["output_img"].shape[1::-1]
        body = s3_server.client().get_object(Bucket="ocr-results", Key=page["vis_uri"].split("/", 3)[3])["Body"].read()
        drawn = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)  # page | text, side by side
        assert drawn.shape[:2] == (page["height"], 2 * page["width"])
    assert "kde.org" in result["pages"][2]["text"]
    # every crop of the three pages went to the recogniser in one call
    assert result["summary"]["recognize_calls"] == 1 and result["summary"]["lines"] == len(result["items"])


def test_auto_tells_lines_from_pages_on_real_data():
    from ocrfleet.config.settings import Settings
    from ocrfleet.recognition.inputs import render_pdf_bytes
    from ocrfleet.tasks.pages import is_page

    s = Settings()
    lines = [p for p in (DATA / "rec").rglob("*") if p.suffix in (".png", ".jpg", ".jpeg")]
    pages = [cv2.imread(str(p)) for p in (DATA / "receipts/wildreceipt").glob("*.jpeg")]
    pages += [img for _, img in render_pdf_bytes((DATA / "pdf/text.pdf").read_bytes())]
    assert len(lines) > 50 and len(pages) >= 3
    assert not any(is_page("auto", cv2.imread(str(p)), s) for p in lines)
    assert all(is_page("auto", img, s) for img in pages)
    assert is_page("page", cv2.imread(str(lines[0])), s) and not is_page("line", pages[0], s)
    assert not is_page("auto", np.zeros((100_000, 1, 3), np.uint8), s)  # no page: refused as a line


def test_auto_line_image_is_one_line_and_mode_page_detects_it(page_producer, page_worker, inputs):
    ref = sorted(r for r in inputs["lines"] if "wildreceipt_lines" in r and len(inputs["labels"][r]) > 8)[0]
    record, result = _run(page_producer, [ref, {"ref": ref, "mode": "page"}])
    assert record["status"] == "succeeded", record
    line, *detected = result["items"]
    assert line["input_index"] == 0 and "poly" not in line and line["region_index"] is None and line["rec_text"]
    assert [(p["input_index"], p["lines"]) for p in result["pages"]] == [(1, len(detected))]
    assert all(e["input_index"] == 1 and "poly" in e for e in detected)


def _huge_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side white pixels (kilobytes compressed)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = (b"\x00" + b"\xff" * ((side + 7) // 8)) * side
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _big_box_pdf() -> bytes:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(14400, 14400)  # the largest page box PDF allows (200 inches)
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _tiny_marks() -> np.ndarray:
    """1,500 separate small "88" marks on a 1200 px page: each one a detected box (checked on
    PP-OCRv6_tiny_det: 1,500 boxes), far over the suite's max_page_lines."""
    img = np.full((1200, 1200, 3), 255, np.uint8)
    for y in range(20, 1200, 24):
        for x in range(4, 1170, 40):
            cv2.putText(img, "88", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return img


def test_bad_pages_give_their_documented_result_and_the_worker_stays_up(page_producer, page_worker, s3_server):
    blank = _put(s3_server, "pages/blank.png", _png(np.full((600, 800, 3), 255, np.uint8)))
    black = _put(s3_server, "pages/black.png", _png(np.zeros((600, 800, 3), np.uint8)))
    thin = _put(s3_server, "pages/thin.png", _png(np.full((1, 3000, 3), 255, np.uint8)))
    record, result = _run(page_producer, [blank, black, {"ref": thin, "mode": "page"}], mode="page")
    assert record["status"] == "succeeded", record
    assert result["items"] == [] and [p["lines"] for p in result["pages"]] == [0, 0, 0]
    assert [p["text"] for p in result["pages"]] == ["", "", ""]

    bad = {_put(s3_server, "pages/huge.png", _huge_png(20000)): "400000000 pixels",
           _put(s3_server, "pages/bigbox.pdf", _big_box_pdf()): "decoded pixels",
           _put(s3_server, "pages/tiny.png", _png(_tiny_marks())): "max_page_lines"}
    for ref, why in bad.items():
        record, _ = _run(page_producer, [ref], mode="page")
        assert record["status"] == "failed" and record["error"]["code"] == "TOO_LARGE", record
        assert ref in record["error"]["message"] and why in record["error"]["message"]
    assert page_worker.proc.poll() is None and page_worker.children()
    record, result = _run(page_producer, [blank])  # still serving
    assert record["status"] == "succeeded" and result["pages"][0]["lines"] == 0


def test_submit_cli_prints_the_page_text(page_settings, page_worker, inputs):
    env = dict(to_env(page_settings), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "ocrfleet.fleet_cli", "submit", "s3://inputs/pdf/text.pdf",
                          "--pages", "1", "--mode", "page", "--wait", "--json", "--timeout", "120"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.splitlines()[1])
    assert record["summary"]["pages"] == 1
    assert "text.pdf page 1 (4 lines)" in out.stdout and "https://kde.org/" in out.stdout


def test_spec_fields_of_page_jobs(page_producer):
    from ocrfleet.producer import SpecError

    spec = page_producer.build_spec([{"ref": "s3://in/a.png", "mode": "line"}], mode="page",
                                    det_model_name="PP-OCRv6_tiny_det", use_textline_orientation=True)
    assert (spec["mode"], spec["inputs"][0]["mode"], spec["det_model_name"], spec["use_textline_orientation"]) == \
        ("page", "line", "PP-OCRv6_tiny_det", True)
    assert "mode" not in page_producer.build_spec("s3://in/a.png")  # only sent when set
    assert page_producer.build_spec("s3://in/a.png", reading_order="columns")["reading_order"] == "columns"
    assert "reading_order" not in page_producer.build_spec("s3://in/a.png")
    from ocrfleet import cli

    args = cli.build_parser().parse_args(["submit", "s3://in/a.png", "--reading-order", "columns"])
    assert args.reading_order == "columns"
    for bad in (dict(mode="pages"), dict(det_model_name="../x"), dict(use_textline_orientation="yes"),
                dict(reading_order="rows")):
        with pytest.raises(SpecError):
            page_producer.build_spec("s3://in/a.png", **bad)


def test_textline_orientation_as_in_process(page_producer, page_worker, inputs):
    from ocrfleet import PaddleOCR

    record, result = _run(page_producer, ["s3://inputs/receipts/2.jpeg"], use_textline_orientation=True)
    assert record["status"] == "succeeded", record
    res = PaddleOCR(text_detection_model_name=DET, text_recognition_model_name=REC, use_textline_orientation=True,
                    cpu_threads=1).predict(str(DATA / "receipts/wildreceipt/2.jpeg"))[0]
    assert [e["rec_text"] for e in result["items"]] == list(res["rec_texts"]) and len(res["rec_texts"]) > 5
    assert result["timings"]["classify_s"] > 0


def test_reading_order_columns_as_in_process(page_producer, page_worker, s3_server):
    """``"reading_order": "columns"``: a two-column page's lines come column by column, as the
    in-process pipeline with ``reading_order="columns"`` gives them; without it, PaddleOCR's order
    (the columns interleave). A value other than "columns" is refused before enqueue."""
    from ocrfleet import PaddleOCR
    from ocrfleet.producer import SpecError
    from ocrfleet.testing.pages import two_column_page

    page = two_column_page()
    ref = _put(s3_server, f"pages/columns-{uuid.uuid4().hex[:6]}.png", _png(page))
    record, result = _run(page_producer, [ref], mode="page", reading_order="columns")
    assert record["status"] == "succeeded", record
    res = PaddleOCR(text_detection_model_name=DET, text_recognition_model_name=REC, use_textline_orientation=False,
                    cpu_threads=1, reading_order="columns").predict(page)[0]
    texts = [e["rec_text"] for e in result["items"]]
    assert texts == list(res["rec_texts"]) and result["pages"][0]["text"] == res.text
    assert [e["poly"] for e in result["items"]] == [np.asarray(p).tolist() for p in res["rec_polys"]]
    sides = [t.replace(" ", "")[:4] for t in texts if t.replace(" ", "").startswith(("LEFT", "RIGH"))]
    assert sides == ["LEFT"] * 6 + ["RIGH"] * 6, texts
    _, plain = _run(page_producer, [ref], mode="page")  # PaddleOCR's order: left, right, left, ...
    assert sorted(e["rec_text"] for e in plain["items"]) == sorted(texts) != [e["rec_text"] for e in plain["items"]]
    for bad in ("rows", "", None, 1):
        spec = page_producer.build_spec(ref)
        spec["reading_order"] = bad
        with pytest.raises(SpecError):
            page_producer.check(spec)


def test_worker_detection_settings_are_honoured():
    """page_det_max_side caps the detector's input (worker memory), crops still come from the
    page; page_preset "fast" takes PaddleOCR(preset="fast")'s parameters and margin trimming; a bad
    preset is refused."""
    from types import SimpleNamespace

    from ocrfleet.config.settings import Settings
    from ocrfleet.detection import TextDetection
    from ocrfleet.ocr.geometry import crop_line, sort_boxes
    from ocrfleet.ocr.pipeline import DET_DEFAULTS
    from ocrfleet.tasks.pages import PageReader, det_params

    det = TextDetection(model_name=DET, cpu_threads=1)
    seen = []
    run = det.backend_impl.run
    det.backend_impl.run = lambda batch: seen.append(batch.shape) or run(batch)  # observe, don't change
    page = cv2.imread(str(sorted((DATA.parent / "rendered" / "pages").glob("*.png"))[0]))
    assert max(page.shape[:2]) > 1024
    entry = {"input_index": 0, "input_path": "page.png", "page_index": None}

    def read(s):
        seen.clear()
        reader = PageReader(s, {}, lambda name: det, SimpleNamespace(extra={}))
        return reader.read(dict(entry), page), seen[-1]

    default, shape = read(Settings())
    assert max(shape[2:]) >= max(page.shape[:2]) - 32  # PaddleOCR's defaults: the page's own size
    capped, shape = read(Settings(page_det_max_side=1024))
    assert max(shape[2:]) <= 1024
    polys, _ = det.detect(page, **dict(DET_DEFAULTS, max_side_limit=1024))
    expected = [q.tolist() for q in sort_boxes(polys) if crop_line(page, q) is not None]
    assert [e["poly"] for e, _ in capped] == expected and len(expected) > 20
    assert expected != [e["poly"] for e, _ in default]
    assert all(c.shape[0] >= 10 for _, c in capped)  # cut from the full-size page
    fast = det_params(Settings(page_preset="fast", page_det_max_side=1200), det)
    assert fast == {"limit_side_len": 736, "limit_type": "min", "max_side_limit": 1200, "thresh": 0.2,
                    "box_thresh": 0.4, "unclip_ratio": 1.4, "trim_margins": True}
    assert det_params(Settings(), det) == dict(DET_DEFAULTS, trim_margins=False)
    # page_preset "fast" trims a page's blank margins as PaddleOCR(preset="fast") does
    from ocrfleet.testing.pages import sparse_page

    page = sparse_page()
    lines, shape = read(Settings(page_preset="fast"))
    assert shape[2] * shape[3] < 0.15 * 1600 * 1120
    polys, _ = det.detect(page, **det_params(Settings(page_preset="fast"), det))
    assert [e["poly"] for e, _ in lines] == [q.tolist() for q in sort_boxes(polys)] and len(lines) == 3
    with pytest.raises(ValueError, match="page_preset"):
        det_params(Settings(page_preset="turbo"), det)
