#!/usr/bin/env python3
"""Render text lines in one handwriting font: a "writing style" for the fine-tuning benchmark.

    python bench/render_style.py OUT_DIR --font /usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf \
        [--count 800] [--seed 11] [--exclude OTHER_DIR/labels.tsv]

Writes OUT_DIR/imgs/NNNNN.png and OUT_DIR/labels.tsv (``imgs/NNNNN.png<TAB>text``), like
bench/render_lines.py. The text is made here from the French and English vocabulary below, with
dates, amounts and reference numbers (the kind of lines a register or a form holds); it never
comes from an evaluation set. ``--exclude``: texts that appear in another label file are not
rendered (a test split never shares a line's text with its training split). Each line: the font
at 30-44 px, dark ink of varying colour on light paper with a little noise, a slight slant
(+-1.5 degrees) and, on some lines, a light blur. Deterministic for a seed, font file and Pillow
version. Handwriting fonts come from Debian: ``apt-get install fonts-ecolier-court
fonts-dancingscript fonts-dkg-handwriting fonts-femkeklaver``.
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FRENCH = ("le la les un une des du de et en dans pour par avec sur sous chez mon ma mes son sa ses "
          "notre votre leur nous vous ils elles il elle je tu est sont était avait fait dit reçu "
          "lettre mère père frère sœur enfant famille maison jardin village ville rue place église "
          "école mairie notaire acte vente achat terrain champ prix somme francs centimes payé "
          "monsieur madame mademoiselle témoin signé présent domicilié demeurant né décédé mariage "
          "jour nuit matin soir semaine mois année hier demain aujourd'hui toujours jamais encore "
          "bien bon bonne grand grande petit petite vieux nouvelle premier dernier cher chère "
          "santé nouvelles attendons espère pense embrasse souvenir courage guerre front soldat "
          "régiment compagnie permission train gare route pluie neige froid chaud beau temps "
          "pain vin lait beurre blé bois charbon cheval vache moulin ferme travail ouvrier").split()
ENGLISH = ("the and of to in for with from on at by this that was were have has had will would "
           "letter mother father brother sister child family house garden village town street "
           "church school office deed sale purchase land field price sum paid received signed "
           "witness present resident born died married day night morning evening week month year "
           "today tomorrow always never good great small old new first last dear health news hope "
           "love remember regards soon train station road rain snow cold warm bread milk wood "
           "horse farm work order invoice total amount balance account number date").split()
MONTHS = ("janvier février mars avril mai juin juillet août septembre octobre novembre décembre "
          "January February March April May June July August September October November December").split()


def make_text(rng: random.Random) -> str:
    kind = rng.choices(["fr", "en", "date", "amount", "ref"], weights=[5, 3, 1, 1, 1])[0]
    if kind == "date":
        return f"{rng.choice(['le ', 'Le ', '', 'du '])}{rng.randint(1, 31)} {rng.choice(MONTHS)} {rng.randint(1850, 2025)}"
    if kind == "amount":
        words = " ".join(rng.choice(FRENCH + ENGLISH) for _ in range(rng.randint(1, 3)))
        return f"{words} {rng.randint(1, 9999):,}".replace(",", " ") + rng.choice([",00 F", " F", ".50", " fr", ""])
    if kind == "ref":
        return f"{rng.choice(['N°', 'No.', 'Ref', 'Acte'])} {rng.randint(1, 999)}{rng.choice(['', '/', '-'])}{rng.randint(10, 99)}"
    vocab = FRENCH if kind == "fr" else ENGLISH
    words = [rng.choice(vocab) for _ in range(rng.randint(2, 7))]
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    text = " ".join(words)
    return text + rng.choice(["", "", "", ".", ",", " !", ";"])


def render(text: str, font_path: str, rng: random.Random) -> Image.Image:
    font = ImageFont.truetype(font_path, rng.randint(30, 44))
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = rng.randint(6, 16), rng.randint(5, 12)
    w, h = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    paper = rng.randint(218, 250)
    img = Image.new("L", (w, h), paper)
    ink = rng.randint(0, 70)
    ImageDraw.Draw(img).text((pad_x - left, pad_y - top), text, font=font, fill=ink)
    img = img.rotate(rng.uniform(-1.5, 1.5), resample=Image.BICUBIC, expand=True, fillcolor=paper)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    arr = np.asarray(img, dtype=np.float32)
    arr += np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), arr.shape)
    tint = np.array([rng.uniform(0.9, 1.0), rng.uniform(0.9, 1.0), 1.0], dtype=np.float32)  # bluish ink / paper
    rgb = np.clip(arr[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--font", required=True, nargs="+", help="one font, or several: each line picks one")
    ap.add_argument("--count", type=int, default=800)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--exclude", type=Path, nargs="*", default=[])
    args = ap.parse_args(argv)
    for font in args.font:
        if not Path(font).is_file():
            raise SystemExit(f"font not found: {font} (Debian: apt-get install fonts-ecolier-court ...)")
    taken = set()
    for path in args.exclude:
        taken |= {ln.split("\t", 1)[1] for ln in path.read_text(encoding="utf-8").splitlines() if "\t" in ln}
    rng = random.Random(args.seed)
    (args.out / "imgs").mkdir(parents=True, exist_ok=True)
    rows = []
    while len(rows) < args.count:
        text = make_text(rng)
        if text in taken:
            continue
        taken.add(text)
        name = f"imgs/{len(rows):05d}.png"
        font = args.font[0] if len(args.font) == 1 else rng.choice(args.font)  # one font: the seeds' old lines
        render(text, font, rng).save(args.out / name)
        rows.append(f"{name}\t{text}\n")
    (args.out / "labels.tsv").write_text("".join(rows), encoding="utf-8")
    print(f"wrote {len(rows)} lines in {', '.join(Path(f).name for f in args.font)} to {args.out}")


if __name__ == "__main__":
    main()
