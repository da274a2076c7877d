"""``ocrfleet finetune``: the command line of ``ocrfleet.finetune()``."""
from __future__ import annotations

import argparse

from ocrfleet.finetune.options import Options

HELP = """Fine-tune a text recognition model on your labelled lines and write a model directory
(inference.onnx + inference.yml with the dictionary + finetune.json) that TextRecognition(model_dir=DIR),
`ocrfleet eval --model_dir DIR` and the workers load. Labels: the `ocrfleet eval` format
(image_path<TAB>text per line). Needs PyTorch: pip install 'ocrfleet[torch]'."""


def register(subparsers) -> argparse.ArgumentParser:
    d = Options(labels=["-"], output="-")
    p = subparsers.add_parser("finetune", help="fine-tune a recognition model on labelled lines",
                              description=HELP)
    p.add_argument("--labels", action="append", required=True, help="training label file; repeatable")
    p.add_argument("--output", required=True, help="the model directory to write (refused if it exists)")
    p.add_argument("--model_name", default=None, help="base model (default PP-OCRv5_server_rec)")
    p.add_argument("--model_dir", default=None, help="base model directory")
    p.add_argument("--val", action="append", default=[],
                   help="validation label file; repeatable. Without it, --val_fraction of the lines is held out")
    p.add_argument("--val_fraction", type=float, default=d.val_fraction)
    p.add_argument("--keep", action="append", default=[],
                   help="label file of lines the model must keep reading (e.g. your printed documents); "
                        "repeatable. The run then blends the fine-tuned weights back towards the stock "
                        "ones until these lines lose at most --max_forgetting points of exact match")
    p.add_argument("--max_forgetting", type=float, default=d.max_forgetting,
                   help="points of exact match the --keep lines may lose (default 1)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--max_minutes", type=float, default=None,
                   help="stop training after this many minutes and export the best checkpoint")
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--max_columns", type=int, default=d.max_columns,
                   help="padded input columns per batch at most: wide lines come in smaller batches "
                        "(training memory grows with it)")
    p.add_argument("--low_memory", action="store_true",
                   help="CPU: serve activations of 1 MiB and more with mmap, so the heap does not fragment: "
                        "about half the peak RSS, about 3x the time per step (system time)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of the neck and head")
    p.add_argument("--backbone_lr_scale", type=float, default=d.backbone_lr_scale,
                   help="the backbone's learning rate is lr times this; 0 freezes it (about 3x faster steps)")
    p.add_argument("--weight_decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup_steps", type=int, default=d.warmup_steps)
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation score")
    p.add_argument("--augment", type=float, default=d.augment,
                   help="scale of the augmentation probabilities (0: none)")
    p.add_argument("--width_scale", type=_width_scale, default=d.width_scale,
                   help="stretch every line this much horizontally, in training and in the exported model "
                        "(more CTC steps per character for narrow handwriting); 'auto' (default) picks the "
                        "best of 1, 1.25, 1.5 and 2 for the stock model on the validation lines")
    p.add_argument("--min_usable", type=float, default=d.min_usable,
                   help="refuse the run if a smaller share of the labelled lines is usable")
    p.add_argument("--device", default=d.device, help="cpu (default), gpu or gpu:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the cores available)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing --output directory")
    p.add_argument("--keep_checkpoints", action="store_true", help="keep DIR/checkpoints/ after the export")
    p.add_argument("--no_progress", dest="progress", action="store_false")
    p.set_defaults(func=run)
    return p


def _width_scale(text: str):
    return "auto" if text == "auto" else float(text)


def run(args) -> int:
    from ocrfleet.finetune.run import finetune

    keys = [k for k in Options.__dataclass_fields__ if k not in ("labels", "output")]
    report = finetune(args.labels, args.output, **{k: getattr(args, k) for k in keys})
    best, before = report["best"] or {}, report["before"] or {}
    line = f"wrote {report['output']} (stopped by {report['stopped_by']}, best epoch {report['best_epoch']})"
    if before:
        line += (f"; val exact {before['accuracy']:.1%} -> {best['accuracy']:.1%}, "
                 f"CER {before['cer']:.2%} -> {best['cer']:.2%} on {best['lines']} lines")
    if report.get("blend"):
        b = report["blend"]
        line += (f"; keep lines exact {b['keep_before']['accuracy']:.1%} -> {b['keep_after']['accuracy']:.1%} "
                 f"(blend alpha {b['alpha']:.1f})")
    if report.get("width_scale", 1) != 1:
        line += f"; lines stretched {report['width_scale']:g}x"
    print(line)
    return 0
