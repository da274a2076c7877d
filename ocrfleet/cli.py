"""``ocrfleet`` command line: text_recognition (as ``paddleocr text_recognition``), the other
modules, ocr, models, eval, hpi, and the fleet commands (worker, submit, result, dev-fleet,
webhooks, messages)."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from ocrfleet.errors import OcrFleetError
from ocrfleet.exit_codes import Exit

# modules that add their own sub-commands with register(subparsers); one per line
PLUGINS = (
    "ocrfleet.recognition.models_cli",
    "ocrfleet.recognition.evaluate",
    "ocrfleet.fleet_cli",
    "ocrfleet.dev_fleet",
    "ocrfleet.modules_cli",
    "ocrfleet.ocr.cli",
    "ocrfleet.recognition.hpi_cli",
    "ocrfleet.finetune.cli",
)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _shape(text: str):
    return tuple(int(v) for v in text.replace("(", "").replace(")", "").split(","))


def add_engine_args(p) -> None:
    """PaddleOCR's inference flags, plus ocrfleet's --backend and --on_error: every module's CLI."""
    p.add_argument("--enable_hpi", type=_bool, default=False)
    p.add_argument("--use_tensorrt", type=_bool, default=False)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--enable_mkldnn", type=_bool, default=True)
    p.add_argument("--mkldnn_cache_capacity", type=int, default=10)
    p.add_argument("--cpu_threads", type=int, default=10)
    p.add_argument("--backend", default=None, choices=["paddle", "onnxruntime", "openvino"])
    p.add_argument("--on_error", default="raise", choices=["raise", "skip"])


def add_text_recognition(sub) -> None:
    p = sub.add_parser("text_recognition", help="recognise text-line images (as `paddleocr text_recognition`)")
    p.add_argument("-i", "--input", required=True, help="image, PDF, directory or URL")
    p.add_argument("--model_name", default=None)
    p.add_argument("--model_dir", default=None)
    p.add_argument("--device", default=None, help="cpu, gpu, gpu:0, gpu:0,1")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--save_path", default=None, help="folder for <name>_res.json and <name>_res.png")
    add_engine_args(p)
    p.add_argument("--input_shape", type=_shape, default=None, help="C,H,W")
    p.set_defaults(func=run_text_recognition)


def run_text_recognition(args) -> int:
    from ocrfleet.recognition.api import TextRecognition

    model = TextRecognition(
        model_name=args.model_name, model_dir=args.model_dir, device=args.device,
        enable_hpi=args.enable_hpi, use_tensorrt=args.use_tensorrt, precision=args.precision,
        enable_mkldnn=args.enable_mkldnn, mkldnn_cache_capacity=args.mkldnn_cache_capacity,
        cpu_threads=args.cpu_threads, input_shape=args.input_shape, backend=args.backend,
        on_error=args.on_error)
    for res in model.predict_iter(args.input, batch_size=args.batch_size):
        res.print()
        if args.save_path:
            res.save_to_json(args.save_path)
            res.save_to_img(args.save_path)
    return 1 if model.errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrfleet", description=__doc__,
        epilog="exit statuses: " + ", ".join(f"{e.value} {e.name.lower().replace('_', ' ')}" for e in Exit))
    sub = parser.add_subparsers(dest="command", required=True)
    add_text_recognition(sub)
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the other commands still work; say why these do not
            print(f"ocrfleet: the commands of {name} are unavailable: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        module.register(sub)
    return parser


@contextlib.contextmanager
def log_to_stderr():
    """The library's own log lines (enable_hpi's probe progress, hub downloads, skipped inputs)
    on stderr as plain lines while a command runs; the logger is restored afterwards (a worker
    configures its own logging, structlog)."""
    log = logging.getLogger("ocrfleet")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Paddle configures the root logger when imported: no second copy
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with log_to_stderr():
            return int(args.func(args) or 0)
    except OcrFleetError as exc:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
        return Exit.USAGE


if __name__ == "__main__":
    sys.exit(main())
