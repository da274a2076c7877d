#!/usr/bin/env python3
"""Fine-tune PP-OCRv5_mobile_rec on the shared handwriting sets and measure before / after.

    PYTHONPATH=$PWD .venv/bin/python bench/finetune.py [--data /work/shared/data/real/rec]
        [--max_minutes 20] [--epochs 60] [--out bench/results/finetune] [--mix-rendered N] [--splits-only]
        [--stock-only]   (score the stock model only: OUT/stock.json, for a later --before OUT/stock.json)
        [--style-font FONT [--style-train 800] [--style-test 200]]   (a rendered writing style instead)

1. Splits (committed in bench/finetune_splits/<set>/{train,test}.tsv, the set's own relative
   paths): each line of htr_fr_poilus_handwriting, htr_fr_lectaurep_handwriting and
   kraken_es_handwriting goes to *test* when ``held_out(image_path, 0.3)`` (a SHA-256 of the path,
   ``ocrfleet.finetune.data``), else to *train*. Test lines are never trained on and never used to
   pick a checkpoint: ``ocrfleet finetune`` holds out its own validation share of the *train* lines
   (a differently salted hash) for early stopping and the best checkpoint.
2. The stock model is evaluated (ONNX Runtime) on every test split and on the printed "forgetting"
   sets; ``ocrfleet finetune`` runs in a child process (``/usr/bin/time``-style peak RSS via
   ``resource.RUSAGE_CHILDREN``); the exported directory is evaluated on the same sets.
3. Prints a Markdown table and writes ``OUT/results.json``. Record ``uptime`` with the figures: the
   machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocrfleet.finetune.data import held_out  # noqa: E402

HANDWRITING = ("htr_fr_poilus_handwriting", "htr_fr_lectaurep_handwriting", "kraken_es_handwriting")
PRINTED = ("tesseract_testing_lines", "wildreceipt_lines", "paddleocr_doc_words", "htr_fr_tapuscorpus_typewritten",
           "tesseract_lstmf_synth", "mmocr_toy")
SPLITS = ROOT / "bench" / "finetune_splits"
TEST_FRACTION = 0.3
MODEL = "PP-OCRv5_mobile_rec"
# printed fonts for --mix-print / --keep-print (Debian: fonts-freefont-ttf fonts-liberation fonts-dejavu-core)
PRINT_FONTS = [f"/usr/share/fonts/truetype/{f}" for f in (
    "freefont/FreeMono.ttf", "freefont/FreeSerif.ttf", "freefont/FreeSans.ttf",
    "liberation/LiberationSerif-Regular.ttf", "liberation/LiberationMono-Regular.ttf",
    "liberation/LiberationSans-Regular.ttf", "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSans.ttf")]


def write_splits(data: Path) -> None:
    for name in HANDWRITING:
        rows = [ln for ln in (data / name / "labels.tsv").read_text(encoding="utf-8").splitlines() if ln.strip()]
        test = [r for r in rows if held_out(r.split("\t", 1)[0], TEST_FRACTION)]
        train = [r for r in rows if r not in test]
        (SPLITS / name).mkdir(parents=True, exist_ok=True)
        (SPLITS / name / "train.tsv").write_text("".join(r + "\n" for r in train), encoding="utf-8")
        (SPLITS / name / "test.tsv").write_text("".join(r + "\n" for r in test), encoding="utf-8")
        print(f"{name}: {len(train)} train, {len(test)} test", file=sys.stderr)


def label_file(split: Path, data_dir: Path, dest: Path) -> Path:
    """The split as a label file in ``dest.parent``, which gets a link named after the set to its
    data: image paths stay ``<set>/imgs/...`` wherever the data lives (so the hash-chosen
    validation share inside ``ocrfleet finetune`` is the same on every machine)."""
    link = dest.parent / data_dir.name
    if not link.exists():
        link.symlink_to(data_dir.resolve(), target_is_directory=True)
    rows = []
    for row in split.read_text(encoding="utf-8").splitlines():
        rel, _, label = row.partition("\t")
        rows.append(f"{data_dir.name}/{rel}\t{label}\n")
    dest.write_text("".join(rows), encoding="utf-8")
    return dest


def split_printed(sets: dict, fraction: float, dest: Path) -> Path:
    """Move ``fraction`` of each printed set of >= 50 lines into one keep file (absolute image
    paths); the set is then reported on the rest only."""
    keep_rows = []
    for name in [n for n in PRINTED if n in sets]:
        path = sets[name]
        rows = [r.split("\t", 1) for r in path.read_text(encoding="utf-8").splitlines() if "\t" in r]
        if len(rows) < 50:
            continue
        rest_rows = []
        for rel, text in rows:
            row = f"{(path.parent / rel).resolve()}\t{text}\n"
            (keep_rows if held_out(rel, fraction, salt="keep") else rest_rows).append(row)
        rest = dest / f"{name}.rest.tsv"
        rest.write_text("".join(rest_rows), encoding="utf-8")
        del sets[name]
        sets[f"{name} (rest)"] = rest
    out = dest / "keep-printed.tsv"
    out.write_text("".join(keep_rows), encoding="utf-8")
    return out


def evaluate_sets(label_files: dict[str, Path], model_dir: str | None) -> dict:
    from ocrfleet.recognition.evaluate import evaluate, load_recognizer

    rec = load_recognizer(MODEL, model_dir, backend="onnxruntime", cpu_threads=2)
    out = {}
    for name, path in label_files.items():
        r = evaluate(path, rec, batch_size=8, progress=False)
        out[name] = {"lines": r["lines"], "accuracy": r["accuracy"], "cer": r["cer"],
                     "accuracy_ignore_space": r["accuracy_ignore_space"]}
        print(f"  {name}: exact {r['accuracy']:.1%} CER {r['cer']:.2%} ({r['lines']} lines)", file=sys.stderr)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/real/rec"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "finetune")
    ap.add_argument("--max_minutes", type=float, default=20)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--mix-rendered", type=int, default=0, metavar="N",
                    help="also train on N generic printed lines rendered by bench/render_lines.py (seed 7; "
                         "never an evaluation set), against forgetting")
    ap.add_argument("--mix-print", type=int, default=0, metavar="N",
                    help="also train on N lines of the style's vocabulary rendered in printed fonts (PRINT_FONTS, "
                         "seed 9, no text of the test lines), against forgetting")
    ap.add_argument("--keep-print", type=int, default=0, metavar="N",
                    help="N more printed lines (seed 13, no text of the test or training lines) given to "
                         "ocrfleet finetune as --keep: the run blends back towards the stock weights until "
                         "they lose at most --max_forgetting points")
    ap.add_argument("--keep-printed", type=float, default=0.0, metavar="FRACTION",
                    help="this share of each printed set of >= 50 lines (chosen by a salted hash of the image "
                         "path) is given to ocrfleet finetune as --keep lines, the rest reported as '<set> (rest)': "
                         "the printed documents a user keeps reading, never trained on, never reported")
    ap.add_argument("--max_forgetting", type=float, default=1.0)
    ap.add_argument("--style-font", default=None, metavar="FONT",
                    help="instead of the handwriting sets: a writing style, lines rendered in FONT by "
                         "bench/render_style.py (--style-train lines, seed 11, to train on; --style-test lines, "
                         "seed 12, held out; no text in both)")
    ap.add_argument("--style-train", type=int, default=800)
    ap.add_argument("--style-test", type=int, default=200)
    ap.add_argument("--backbone_lr_scale", type=float, default=None)
    ap.add_argument("--width_scale", default=None, help="ocrfleet finetune's --width_scale (default: its own, auto)")
    ap.add_argument("--before", type=Path, default=None,
                    help="reuse the stock model's scores from an earlier results.json (same sets)")
    ap.add_argument("--stock-only", action="store_true",
                    help="only score the stock model; writes OUT/stock.json for a later --before")
    ap.add_argument("--splits-only", action="store_true", help="only (re)write bench/finetune_splits")
    args = ap.parse_args(argv)
    if args.splits_only:
        write_splits(args.data)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    labels = args.out / "labels"
    labels.mkdir(exist_ok=True)
    if args.style_font:
        sys.path.insert(0, str(ROOT / "bench"))
        import render_style

        style = args.out / "style"
        render_style.main([str(style / "test"), "--font", args.style_font, "--count", str(args.style_test),
                           "--seed", "12"])
        render_style.main([str(style / "train"), "--font", args.style_font, "--count", str(args.style_train),
                           "--seed", "11", "--exclude", str(style / "test" / "labels.tsv")])
        train = [style / "train" / "labels.tsv"]
        sets = {f"{Path(args.style_font).stem} (test)": style / "test" / "labels.tsv"}
    else:
        train = [label_file(SPLITS / n / "train.tsv", args.data / n, labels / f"{n}.train.tsv") for n in HANDWRITING]
        sets = {f"{n} (test)": label_file(SPLITS / n / "test.tsv", args.data / n, labels / f"{n}.test.tsv")
                for n in HANDWRITING}
    if args.mix_rendered:
        sys.path.insert(0, str(ROOT / "bench"))
        import render_lines

        render_lines.main([str(args.out / "rendered"), "--count", str(args.mix_rendered), "--seed", "7"])
        train.append(args.out / "rendered" / "labels.tsv")
    keep = []
    if args.mix_print or args.keep_print:
        sys.path.insert(0, str(ROOT / "bench"))
        import render_style

        fonts = [f for f in PRINT_FONTS if Path(f).is_file()]
        tests = [p for p in sets.values()]
        if args.mix_print:
            render_style.main([str(args.out / "print-train"), "--font", *fonts, "--count", str(args.mix_print),
                               "--seed", "9", "--exclude", *map(str, tests)])
            train.append(args.out / "print-train" / "labels.tsv")
        if args.keep_print:
            render_style.main([str(args.out / "print-keep"), "--font", *fonts, "--count", str(args.keep_print),
                               "--seed", "13", "--exclude", *map(str, tests + train)])
            keep.append(args.out / "print-keep" / "labels.tsv")
    sets.update({n: args.data / n / "labels.tsv" for n in PRINTED if (args.data / n / "labels.tsv").is_file()})
    if args.keep_printed:
        keep.append(split_printed(sets, args.keep_printed, labels))
    load = {"start": os.getloadavg()}

    if args.before:
        before = json.loads(args.before.read_text(encoding="utf-8"))["before"]
    else:
        print("stock model:", file=sys.stderr)
        before = evaluate_sets(sets, None)
    if args.stock_only:
        (args.out / "stock.json").write_text(json.dumps({"before": before, "loadavg": load, "end": os.getloadavg()},
                                                        indent=2), encoding="utf-8")
        return
    model_dir = args.out / "model"
    cmd = [sys.executable, "-m", "ocrfleet", "finetune", "--model_name", MODEL, "--output", str(model_dir),
           "--force", "--max_minutes", str(args.max_minutes), "--epochs", str(args.epochs),
           "--batch_size", str(args.batch_size), "--no_progress", "--keep_checkpoints"]
    for t in train:
        cmd += ["--labels", str(t)]
    for k in keep:
        cmd += ["--keep", str(k)]
    if keep:
        cmd += ["--max_forgetting", str(args.max_forgetting)]
    if args.lr:
        cmd += ["--lr", str(args.lr)]
    if args.backbone_lr_scale is not None:
        cmd += ["--backbone_lr_scale", str(args.backbone_lr_scale)]
    if args.width_scale is not None:
        cmd += ["--width_scale", args.width_scale]
    print(" ".join(cmd), file=sys.stderr)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    wall = time.monotonic() - t0
    load["after_training"] = os.getloadavg()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads((model_dir / "finetune.json").read_text(encoding="utf-8"))
    print("fine-tuned model:", file=sys.stderr)
    after = evaluate_sets(sets, str(model_dir))
    load["end"] = os.getloadavg()
    result = {"before": before, "after": after, "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_mb),
              "train_lines": report["train_lines"], "val_lines": report["val_lines"],
              "refused_lines": report["refused_lines"], "epochs_run": report["epochs_run"],
              "best_epoch": report["best_epoch"], "stopped_by": report["stopped_by"], "blend": report.get("blend"),
              "width_scale": report.get("width_scale"), "width_scales_tried": report.get("width_scales_tried"),
              "train_seconds": report["train_seconds"], "options": report["options"], "loadavg": load,
              "cpus": len(os.sched_getaffinity(0))}
    (args.out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\n{report['train_lines']} training lines ({report['val_lines']} held out for early stopping), "
          f"{report['epochs_run']} epochs (best {report['best_epoch']}, stopped by {report['stopped_by']}), "
          f"width scale {report.get('width_scale')}, wall {wall / 60:.1f} min, peak RSS {peak_mb:.0f} MB, "
          f"load {load}\n")
    if report.get("blend"):
        print(f"blend: {json.dumps(report['blend'])}\n")
    print("| set | lines | exact before | exact after | no-space exact before | after | CER before | CER after |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sets:
        b, a = before[name], after[name]
        print(f"| {name} | {b['lines']} | {b['accuracy']:.1%} | {a['accuracy']:.1%} | "
              f"{b['accuracy_ignore_space']:.1%} | {a['accuracy_ignore_space']:.1%} | {b['cer']:.2%} | {a['cer']:.2%} |")


if __name__ == "__main__":
    main()
