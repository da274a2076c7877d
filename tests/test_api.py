"""TextRecognition: PaddleOCR-compatible API on real bundled weights and real line images."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import PDF, REC, read_labels
from ocrfleet import TextRecognition
from ocrfleet.errors import InputNotFoundError, InvalidInputError, ModelUnavailableError


def _norm(s: str) -> str:
    return s.replace(" ", "").lower()


def test_predict_real_lines_matches_labels(v5_mobile):
    items = read_labels("wildreceipt_lines")
    results = v5_mobile.predict([str(p) for p, _ in items], batch_size=8)
    assert len(results) == len(items)
    assert [r["input_path"] for r in results] == [str(p) for p, _ in items]  # input order kept
    correct = sum(_norm(r["rec_text"]) == _norm(label) for r, (_, label) in zip(results, items))
    assert correct / len(items) > 0.75, correct
    for r in results:
        assert set(r.json["res"]) == {"input_path", "page_index", "rec_text", "rec_score"}
        # PaddleOCR's own result dict also holds the line image and the drawing font
        assert set(r) == {"input_path", "page_index", "input_img", "rec_text", "rec_score", "vis_font"}
        assert r["input_img"].ndim == 3 and r["vis_font"].path
        assert r["page_index"] is None and 0.0 <= r["rec_score"] <= 1.0


def test_batch_size_does_not_change_text(v5_mobile):
    paths = [str(p) for p, _ in read_labels("wildreceipt_lines")]
    a = [(r["rec_text"], r["rec_score"]) for r in v5_mobile.predict(paths, batch_size=1)]
    b = [(r["rec_text"], r["rec_score"]) for r in v5_mobile.predict(paths, batch_size=32)]
    assert a == b


def test_ndarray_color_modes_give_same_text(v5_mobile):
    img = cv2.imread(str(REC / "wildreceipt_lines/imgs/1_002.png"))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    deep = img.astype(np.uint16) * 257
    out = v5_mobile.predict([img, bgra, deep], batch_size=1)
    assert out[0]["input_path"] is None
    assert out[0]["rec_text"] == out[1]["rec_text"] == out[2]["rec_text"]
    assert _norm(out[0]["rec_text"]) == "storemgrtommilazzo"
    assert v5_mobile.predict(gray)[0]["rec_text"]  # gray works too


def test_directory_input_is_sorted_images(v5_mobile):
    res = v5_mobile.predict(str(REC / "mmocr_toy" / "imgs"))
    paths = [r["input_path"] for r in res]
    assert len(paths) == 10 and paths == sorted(paths)


def test_directory_with_pdf_is_rejected(v5_mobile, tmp_path):
    (tmp_path / "a.png").write_bytes((REC / "wildreceipt_lines/imgs/1_000.png").read_bytes())
    (tmp_path / "b.pdf").write_bytes((PDF / "render.pdf").read_bytes())
    with pytest.raises(InvalidInputError, match="PDF"):
        v5_mobile.predict(str(tmp_path))


def test_pdf_pages_become_inputs_with_page_index(v5_mobile):
    res = v5_mobile.predict(str(PDF / "multipage.pdf"))
    assert [r["page_index"] for r in res] == [0, 1, 2]
    assert all(r["input_path"].endswith("multipage.pdf") for r in res)


def test_url_input_from_local_server(v5_mobile, http_server):
    url = http_server("line.png", (REC / "wildreceipt_lines/imgs/1_000.png").read_bytes())
    res = v5_mobile.predict(url)
    assert res[0]["input_path"] == url and res[0]["rec_text"] == "SAFEWAY"
    pdf_url = http_server("doc.pdf", (PDF / "multipage.pdf").read_bytes())
    assert [r["page_index"] for r in v5_mobile.predict(pdf_url)] == [0, 1, 2]


@pytest.mark.parametrize("make, exc", [
    (lambda p: np.zeros((0, 0, 3), np.uint8), InvalidInputError),
    (lambda p: np.array([], np.uint8), InvalidInputError),
    (lambda p: np.zeros((1, 50000, 3), np.uint8), InvalidInputError),
    (lambda p: np.zeros((10, 10, 5), np.uint8), InvalidInputError),
    (lambda p: _write(p / "corrupt.png", (REC / "wildreceipt_lines/imgs/1_000.png").read_bytes()[:60]),
     InvalidInputError),
    (lambda p: _write(p / "text.png", b"this is not an image\n" * 10), InvalidInputError),
    (lambda p: _write(p / "zero.jpg", b""), InvalidInputError),
    (lambda p: str(p / "missing.png"), InputNotFoundError),
    (lambda p: str(PDF / "encrypted.pdf"), InvalidInputError),
    (lambda p: _write(p / "bad.pdf", b"%PDF-1.4\n garbage \n%%EOF"), InvalidInputError),
    (lambda p: "http://127.0.0.1:9/none.png", InputNotFoundError),
    (lambda p: 42, InvalidInputError),
])
def test_bad_input_raises_documented_error(v5_mobile, tmp_path, make, exc):
    bad = make(tmp_path)
    with pytest.raises(exc) as info:
        v5_mobile.predict(bad)
    assert info.value.code in ("INVALID_INPUT", "NOT_FOUND")
    if isinstance(bad, str):
        assert bad in str(info.value)  # the message names the input


def test_on_error_skip_keeps_going(v5_mobile, tmp_path):
    good = str(REC / "wildreceipt_lines/imgs/1_000.png")
    bad = _write(tmp_path / "bad.png", b"nope")
    res = v5_mobile.predict([good, bad, str(tmp_path / "missing.png"), good], on_error="skip")
    assert [r["rec_text"] for r in res] == ["SAFEWAY", "SAFEWAY"]
    assert len(v5_mobile.errors) >= 2
    v5_mobile.errors.clear()


def test_result_print_save_json_img(v5_mobile, tmp_path, capsys):
    res = v5_mobile.predict(str(REC / "wildreceipt_lines/imgs/1_002.png"))[0]
    res.print()
    printed = json.loads(capsys.readouterr().out)
    assert printed == res.json
    res.print(format_json=False)
    assert capsys.readouterr().out.startswith("{'res': {'input_path'")
    out = res.save_to_json(tmp_path / "out")
    assert out.name == "1_002_res.json" and json.loads(out.read_text()) == res.json
    explicit = res.save_to_json(tmp_path / "x" / "r.json")
    assert explicit.exists()
    img_path = res.save_to_img(tmp_path / "out")
    vis = cv2.imread(str(img_path))
    src = cv2.imread(str(REC / "wildreceipt_lines/imgs/1_002.png"))
    assert vis.shape[0] >= src.shape[0] and vis.shape[1] > src.shape[1]  # text drawn beside the line
    assert set(res.img) == {"res"}


def test_cjk_text_is_drawn(v5_mobile):
    from ocrfleet.recognition.visualize import draw_result

    img = draw_result(np.full((48, 100, 3), 255, np.uint8), "绿洲仕格维花园公寓", 0.98)
    right = np.asarray(img)[:, 110:]
    assert (right < 128).any()  # glyphs, not an empty area


def test_default_model_unavailable_lists_local_models(monkeypatch, isolated_home):
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as info:
        TextRecognition()
    msg = str(info.value)
    assert "PP-OCRv5_server_rec" in msg and "PP-OCRv5_mobile_rec" in msg


def test_unknown_model_name():
    with pytest.raises(ModelUnavailableError, match="unknown model"):
        TextRecognition(model_name="no_such_rec")


def test_bad_model_dir(tmp_path):
    with pytest.raises(ModelUnavailableError, match="holds no model"):
        TextRecognition(model_dir=str(tmp_path))


def test_unsupported_devices():
    from ocrfleet.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError):
        TextRecognition(model_name="PP-OCRv6_tiny_rec", device="npu")
    # No GPU on this machine: a GPU request fails clearly instead of silently using the CPU.
    with pytest.raises(BackendUnavailableError):
        TextRecognition(model_name="PP-OCRv6_tiny_rec", device="gpu:0", backend="onnxruntime")


def test_cli_text_recognition(tmp_path):
    line = str(REC / "wildreceipt_lines/imgs/1_000.png")
    proc = subprocess.run([sys.executable, "-m", "ocrfleet", "text_recognition", "-i", line,
                           "--model_name", "PP-OCRv6_tiny_rec", "--save_path", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["res"]["rec_text"] == "SAFEWAY"
    assert (tmp_path / "1_000_res.json").exists() and (tmp_path / "1_000_res.png").exists()
    bad = subprocess.run([sys.executable, "-m", "ocrfleet", "text_recognition", "-i", "/nope.png",
                          "--model_name", "PP-OCRv6_tiny_rec"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "NOT_FOUND" in bad.stderr


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_several_devices_split_and_merge_in_order():
    """gpu:0,1 runs one recognizer per device in parallel. No GPU here, so two real CPU
    recognizers stand in for the two devices (same split/merge code path)."""
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.devices import parse_device
    from ocrfleet.recognition.engine import Recognizer

    assert parse_device("gpu:0,1") == [("gpu", 0), ("gpu", 1)]
    model = TextRecognition(model_name="PP-OCRv6_tiny_rec", device="cpu", cpu_threads=1)
    single = model.predict([str(p) for p, _ in read_labels("wildreceipt_lines")], batch_size=4)
    model.recognizers.append(Recognizer(model.files, EngineOptions(cpu_threads=1)))
    double = model.predict([str(p) for p, _ in read_labels("wildreceipt_lines")], batch_size=4)
    assert [r.json for r in double] == [r.json for r in single]


def test_decompression_bomb_header_is_too_large(tmp_path):
    """A PNG whose header claims 50000x50000 pixels is refused before any pixel is decoded."""
    import struct
    import zlib

    from ocrfleet.errors import InputTooLargeError
    from ocrfleet.recognition.inputs import decode_image_bytes

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(InputTooLargeError, match="bomb.png"):
        decode_image_bytes(png, "bomb.png")
