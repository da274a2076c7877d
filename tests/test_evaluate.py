"""``ocrfleet eval`` / evaluate(): metrics on the real labelled line sets with real bundled models."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ocrfleet import cli
from ocrfleet.recognition import evaluate as ev

REC = Path(__file__).parent / "data" / "real" / "rec"
TOY = REC / "mmocr_toy" / "labels.tsv"
RECEIPTS = REC / "wildreceipt_lines" / "labels.tsv"
KEYS = {"labels", "model_name", "model_source", "backend", "batch_size", "lines", "accuracy",
        "accuracy_ignore_space", "accuracy_ignore_space_case", "norm_edit_similarity",
        "norm_edit_similarity_case", "cer", "mean_score", "seconds", "lines_per_s", "unreadable", "items"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OCRFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")  # bundled weights only: never a hub


@pytest.fixture(scope="module")
def small():
    return ev.load_recognizer("PP-OCRv6_small_rec", cpu_threads=2)


@pytest.fixture(scope="module")
def tiny():
    return ev.load_recognizer("PP-OCRv6_tiny_rec", cpu_threads=2)


# --------------------------------------------------------------------------- pieces

def test_edit_distance_matches_dp():
    rng = random.Random(0)
    cases = [("", ""), ("", "abc"), ("kitten", "sitting"), ("flaw", "lawn"), ("中文字", "中字")]
    cases += [("".join(rng.choice("abc ") for _ in range(rng.randint(0, 12))),
               "".join(rng.choice("abcd") for _ in range(rng.randint(0, 12)))) for _ in range(200)]
    for a, b in cases:
        assert ev.edit_distance(a, b) == ev._dp_distance(a, b) == ev._dp_distance(b, a)
    assert ev.edit_distance("kitten", "sitting") == 3


def test_normalize():
    assert ev.normalize("THANK YOU FOR\tSHOPPING") == "THANKYOUFORSHOPPING"
    assert ev.normalize("ＡＢＣ　１２３") == "ABC123"  # NFKC: full-width forms, ideographic space
    assert ev.normalize("Straße ", ignore_case=True) == "strasse"


def test_label_file_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("imgs/a.png GRAND\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:1: expected"):
        ev.load_labels(bad)
    (tmp_path / "empty.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no labelled lines"):
        ev.load_labels(tmp_path / "empty.tsv")
    with pytest.raises(FileNotFoundError):
        ev.load_labels(tmp_path / "missing.tsv")
    ok = tmp_path / "ok.tsv"
    ok.write_text("\ufeffa.png\tx\ty\r\n\nb.png\t\n", encoding="utf-8")  # BOM, CRLF, tab in label, empty label
    assert [(s.rel, s.label) for s in ev.load_labels(ok)] == [("a.png", "x\ty"), ("b.png", "")]


# --------------------------------------------------------------------------- real model, real data

def test_receipts_small(small):
    r = ev.evaluate(RECEIPTS, small, batch_size=8, progress=False)
    assert set(r) == KEYS
    assert (r["lines"], r["model_name"], r["backend"], r["batch_size"]) == (82, "PP-OCRv6_small_rec", "onnxruntime", 8)
    assert len(r["items"]) == 82 and r["unreadable"] == []
    # WildReceipt labels have no spaces: strict matching is low, PaddleOCR-style is what counts
    assert 0.35 <= r["accuracy"] <= 0.7
    assert 0.7 <= r["accuracy_ignore_space"] <= 0.95
    assert r["accuracy"] <= r["accuracy_ignore_space"] <= r["accuracy_ignore_space_case"]
    assert 0.93 <= r["norm_edit_similarity"] <= r["norm_edit_similarity_case"] <= 1
    assert 0.0 < r["cer"] < 0.08
    assert 0.9 < r["mean_score"] <= 1 and r["lines_per_s"] > 1
    first = r["items"][0]
    assert (first["image"], first["label"], first["pred"], first["exact"]) == ("imgs/1_000.png", "SAFEWAY", "SAFEWAY", True)
    # the metrics are the means of the per-line flags
    assert r["accuracy_ignore_space"] == sum(it["ignore_space"] for it in r["items"]) / 82
    spaced = next(it for it in r["items"] if it["image"] == "imgs/1_002.png")  # "STORE MGR TOM MILAZZO"
    assert " " in spaced["pred"] and not spaced["exact"]
    assert spaced["edit_distance"] == ev.edit_distance(ev.normalize(spaced["pred"]), spaced["label"])


def test_toy_small(small):
    r = ev.evaluate(TOY, small, batch_size=4, progress=False)
    assert r["lines"] == 10
    # scene-text words, some labels lower-case for upper-case text: case-insensitive counts more
    assert 0.4 <= r["accuracy_ignore_space"] <= 0.9
    assert 0.5 <= r["accuracy_ignore_space_case"] <= 0.95
    assert r["accuracy_ignore_space_case"] > r["accuracy_ignore_space"]
    assert 0.6 <= r["norm_edit_similarity"] <= 0.95


def test_batch_size_one_matches_recognize(tiny):
    """evaluate() returns exactly what the Recognizer says, in label order."""
    import cv2

    r = ev.evaluate(TOY, tiny, batch_size=1, progress=False, warmup=False)
    samples = ev.load_labels(TOY)
    direct = tiny.recognize([cv2.imread(str(s.image)) for s in samples], batch_size=1)
    assert [(it["pred"], it["score"]) for it in r["items"]] == [(t, round(s, 6)) for t, s in direct]


def test_unreadable_images_count_as_wrong(tmp_path, tiny):
    labels = tmp_path / "labels.tsv"
    img = RECEIPTS.parent / "imgs" / "1_000.png"
    (tmp_path / "broken.png").write_bytes(b"not an image")
    labels.write_text(f"{img}\tSAFEWAY\nbroken.png\tX\nmissing.png\tY\n", encoding="utf-8")
    r = ev.evaluate(labels, tiny, batch_size=2, progress=False)
    assert r["unreadable"] == ["broken.png", "missing.png"]
    assert r["accuracy"] == pytest.approx(1 / 3) and [it["pred"] for it in r["items"]][1:] == ["", ""]


def test_text_recognition_api_is_accepted(tiny):
    api = pytest.importorskip("ocrfleet.recognition.api")
    model = api.TextRecognition(model_name="PP-OCRv6_tiny_rec", device="cpu", cpu_threads=2)
    a = ev.evaluate(RECEIPTS, model, batch_size=1, progress=False)
    b = ev.evaluate(RECEIPTS, tiny, batch_size=1, progress=False)
    assert a["model_name"] == "PP-OCRv6_tiny_rec"
    assert [it["pred"] for it in a["items"]] == [it["pred"] for it in b["items"]]
    with pytest.raises(TypeError):
        ev.evaluate(RECEIPTS, object(), batch_size=1)


# --------------------------------------------------------------------------- CLI

def test_cli_json_and_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--labels", str(RECEIPTS), "--model_name", "PP-OCRv6_tiny_rec", "--batch_size", "8",
                  "--cpu_threads", "2", "--json", str(out), "--show_errors", "2", "--no_progress"])
    text = capsys.readouterr().out
    assert rc == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert set(r) == KEYS and r["lines"] == 82 and r["model_name"] == "PP-OCRv6_tiny_rec"
    assert 0.55 <= r["accuracy_ignore_space"] <= 0.9 and r["norm_edit_similarity"] > 0.88
    assert "ignoring spaces (NFKC)" in text and "lines/s" in text
    assert f"{round(r['accuracy_ignore_space'] * 82)}/82" in text
    assert text.count(" -> ") == 2


def test_cli_several_label_sets(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = cli.main(["eval", "--labels", str(TOY), "--labels", str(RECEIPTS), "--model_name", "PP-OCRv6_tiny_rec",
                  "--backend", "onnxruntime", "--cpu_threads", "2", "--json", str(out), "--no_progress"])
    assert rc == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert [x["lines"] for x in r] == [10, 82]


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["eval", "--labels", str(tmp_path / "nope.tsv"), "--model_name", "PP-OCRv6_tiny_rec"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    assert cli.main(["eval", "--labels", str(TOY), "--model_name", "PP-OCRv5_server_rec"]) == 2  # not local, offline
    assert "MODEL_UNAVAILABLE" in capsys.readouterr().err
    assert cli.main(["eval", "--labels", str(TOY), "--model_name", "PP-OCRv6_tiny_rec", "--batch_size", "0"]) == 2


def test_registered_in_main_cli(capsys):
    cli = pytest.importorskip("ocrfleet.cli")
    assert cli.main(["eval", "--labels", str(TOY), "--model_name", "PP-OCRv6_tiny_rec", "--cpu_threads", "2",
                     "--no_progress"]) == 0
    assert "mmocr_toy/labels.tsv: 10 lines, model PP-OCRv6_tiny_rec" in capsys.readouterr().out
