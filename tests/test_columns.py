"""``reading_order="columns"``: multi-column pages read column by column (ocrfleet.ocr.columns).

Synthetic boxes for the ordering rules; a real two-column page rendered here (PIL, the bundled
font) through the real pipeline (PP-OCRv6 tiny det + rec) for the end-to-end order.
"""
from __future__ import annotations

import numpy as np
import pytest

from ocrfleet.ocr.columns import column_order, gutters
from ocrfleet.ocr.geometry import sort_boxes


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.int16)


def two_columns():
    title = box(100, 20, 900, 50)
    left = [box(100, 100 + 40 * i, 480, 125 + 40 * i) for i in range(5)]
    right = [box(520, 101 + 40 * i, 900, 126 + 40 * i) for i in range(5)]
    footer = box(100, 400, 900, 425)
    return title, left, right, footer


def names(order, title, left, right, footer):
    ref = {"T": title, "F": footer, **{f"L{i}": b for i, b in enumerate(left)},
           **{f"R{i}": b for i, b in enumerate(right)}}
    return [next(k for k, v in ref.items() if np.array_equal(v, b)) for b in order]


def test_two_columns_between_a_title_and_a_footer():
    title, left, right, footer = two_columns()
    paddle = sort_boxes([footer, *right, title, *left])
    args = (title, left, right, footer)
    assert names(paddle, *args)[:5] == ["T", "L0", "R0", "L1", "R1"]  # PaddleOCR's: lines interleave
    assert names(column_order(paddle), *args) == ["T", *[f"L{i}" for i in range(5)],
                                                  *[f"R{i}" for i in range(5)], "F"]
    (cut,) = gutters(np.array(paddle, float))
    assert 480 < cut < 520  # inside the 480-520 gap


def test_a_title_between_two_column_bands_splits_them():
    _, left, right, _ = two_columns()
    middle = box(100, 300, 900, 330)  # a heading across both columns after line 4
    below_l, below_r = box(100, 350, 480, 375), box(520, 350, 900, 375)
    page = sort_boxes([*left, *right, middle, below_l, below_r])
    got = column_order(page)
    order = [next(i for i, b in enumerate([*left, *right, middle, below_l, below_r]) if np.array_equal(b, g))
             for g in got]
    # left lines 0-4 reach y 285; the heading at 300 closes the band above it
    assert order == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]


@pytest.mark.parametrize("page", [
    [box(100, 100 + 40 * i, 900, 125 + 40 * i) for i in range(8)],                         # one column
    [box(100, 100 + 40 * i, 300 + 50 * (i % 3), 125 + 40 * i) for i in range(8)],           # ragged lines
    [box(100, 100, 480, 125), box(520, 100, 900, 125), box(100, 140, 480, 165)],          # too few lines
])
def test_pages_without_a_gutter_keep_paddleocr_order(page):
    paddle = sort_boxes(page)
    assert all(np.array_equal(a, b) for a, b in zip(column_order(paddle), paddle))
    assert len(column_order(paddle)) == len(paddle)


MODELS = dict(text_detection_model_name="PP-OCRv6_tiny_det", text_recognition_model_name="PP-OCRv6_tiny_rec")


@pytest.fixture
def two_column_page(tmp_path):
    import cv2

    from ocrfleet.testing.pages import two_column_page as render

    path = tmp_path / "two_columns.png"
    cv2.imwrite(str(path), render())
    return path


def test_real_two_column_page_reads_left_column_first(two_column_page):
    from ocrfleet import PaddleOCR

    path = two_column_page
    kw = dict(MODELS, use_textline_orientation=False, cpu_threads=2)
    (res,) = PaddleOCR(**kw, reading_order="columns").predict(str(path))
    texts = [t.replace(" ", "") for t in res["rec_texts"]]
    sides = [t[:4] for t in texts if t.startswith(("LEFT", "RIGH"))]
    assert sides == ["LEFT"] * 6 + ["RIGH"] * 6, texts
    assert "REPORT" in texts[0]
    (plain,) = PaddleOCR(**kw).predict(str(path))  # PaddleOCR's order interleaves the columns
    assert sorted(plain["rec_texts"]) == sorted(res["rec_texts"])
    assert [t.replace(" ", "")[:4] for t in plain["rec_texts"]][1:3] == ["LEFT", "RIGH"]
    with pytest.raises(ValueError, match="reading_order"):
        PaddleOCR(**kw, reading_order="rows")


def test_cli_reading_order(two_column_page, capsys):
    from ocrfleet.cli import main

    args = ["ocr", "-i", str(two_column_page), "--text_detection_model_name", MODELS["text_detection_model_name"],
            "--text_recognition_model_name", MODELS["text_recognition_model_name"],
            "--use_textline_orientation", "false", "--cpu_threads", "1", "--text"]
    assert main(args + ["--reading_order", "columns"]) == 0
    lines = [t.replace(" ", "")[:4] for t in capsys.readouterr().out.splitlines()]
    assert [t for t in lines if t in ("LEFT", "RIGH")] == ["LEFT"] * 6 + ["RIGH"] * 6
