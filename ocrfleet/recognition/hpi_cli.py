"""``ocrfleet hpi``: what high-performance mode chose on this machine, and why.

    ocrfleet hpi show [--json]                       remembered choices with their figures
    ocrfleet hpi reprobe --model_name M [--model_dir D] [--cpu_threads N] [--precision P]
    ocrfleet hpi clear [--model_name M]              forget (all, or one model's)
"""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("hpi", help="show, re-measure or forget enable_hpi's backend choices",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="hpi_command", metavar="{show,reprobe,clear}", required=True)
    sp = sub.add_parser("show", help="remembered choices and the figures behind them")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=run_show)
    rp = sub.add_parser("reprobe", help="measure the backends for one model again and remember the result")
    rp.add_argument("--model_name", default=None)
    rp.add_argument("--model_dir", default=None)
    rp.add_argument("--device", default="cpu")
    rp.add_argument("--cpu_threads", type=int, default=10)
    rp.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    rp.add_argument("--rounds", type=int, default=5)
    rp.set_defaults(func=run_reprobe)
    cp = sub.add_parser("clear", help="forget remembered choices")
    cp.add_argument("--model_name", default=None, help="only this model's (default: all)")
    cp.set_defaults(func=run_clear)
    return p


def _describe(entry: dict) -> str:
    ratios = ", ".join(f"{k} {v:.2f}x" for k, v in (entry.get("ratios") or {}).items())
    return (f"{entry.get('model')} on {entry.get('device')} ({entry.get('precision')}, "
            f"{entry.get('threads')} threads): {entry.get('backend')} (default {entry.get('default')})"
            f"\n    {entry.get('reason')}" + (f"\n    time vs default: {ratios}" if ratios else ""))


def run_show(args) -> int:
    from ocrfleet.recognition.backends import hpi

    data = hpi.load_all()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if not data:
        print(f"no remembered choices ({hpi.choices_file()})")
        return 0
    print(f"{hpi.choices_file()}:")
    for entry in data.values():
        if isinstance(entry, dict):
            print("  " + _describe(entry))
    return 0


def run_reprobe(args) -> int:
    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends import hpi
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.devices import parse_device

    files = sources.resolve(args.model_name, args.model_dir)
    kind, dev_id = parse_device(args.device)[0]
    opts = EngineOptions(device=kind, device_id=dev_id, cpu_threads=args.cpu_threads, precision=args.precision)

    def progress(done: int, total: int) -> None:
        print(f"\rprobing {files.name}: round {done}/{total}", end="", file=sys.stderr, flush=True)

    decision, _ = hpi.probe(files, opts, rounds=args.rounds, progress=progress)
    print(file=sys.stderr)
    hpi.remember(files, opts, decision)
    entry = hpi.load_all()[hpi.key(files, opts)]
    print(_describe(entry))
    return 0


def run_clear(args) -> int:
    from ocrfleet.recognition.backends import hpi

    n = hpi.clear(args.model_name)
    print(f"forgot {n} choice(s)")
    return 0
