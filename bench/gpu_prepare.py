"""Prepare the folder ``bench/gpu_check.sh`` carries to a lent GPU machine (run here, on CPU).

Writes ``--out`` (default bench/gpu_carry/, gitignored):
  ocrfleet-*.whl             the project wheel (installed there with --no-deps: the machine has
                             numpy, opencv, onnx, pyyaml, tqdm and torch, and no network)
  models/<name>/model.onnx   PP-OCRv5_mobile_rec and PP-OCRv6_tiny_rec, exported from the
  models/<name>/model.json   bundled weight packages (too big to carry whole); characters, shape
  lines/<set>/<file>         the shared real line images (../shared/data/real/rec)
  reference/<name>.tsv       the CPU reference: ONNX Runtime's text and score on every line
  manifest.json              what is where, versions, sizes
and refuses to leave a folder over the 64 MiB a device call may carry.

    .venv/bin/python bench/gpu_prepare.py            # then, on the GPU machine: bash bench/gpu_check.sh
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("PP-OCRv5_mobile_rec", "PP-OCRv6_tiny_rec")
LIMIT_BYTES = 64 * 1024 * 1024
DEFAULT_LINES = ROOT.parent / "shared" / "data" / "real" / "rec"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def line_list(src: Path, limit: int | None) -> list[tuple[str, Path]]:
    out = []
    for tsv in sorted(src.glob("*/labels.tsv")):
        for row in tsv.read_text(encoding="utf-8").splitlines():
            if row.strip():
                rel = row.split("\t", 1)[0]
                out.append((f"{tsv.parent.name}/{rel}", tsv.parent / rel))
    return out[:limit] if limit else out


def build_wheel(out: Path) -> Path:
    """The wheel, built from a scratch copy (setuptools leaves build/ and egg-info beside its source)."""
    with tempfile.TemporaryDirectory(prefix="ocrfleet-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copyfile(ROOT / name, src / name)
        shutil.copytree(ROOT / "ocrfleet", src / "ocrfleet", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], check=True, cwd=tmp)
    (wheel,) = out.glob("ocrfleet-*.whl")
    return wheel


def reference(name: str, lines: list[tuple[str, Path]], cpu_threads: int) -> list[tuple[str, str, float]]:
    """ONNX Runtime on the CPU: what the GPU has to reproduce."""
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.recognition.inputs import decode_image_bytes
    from ocrfleet.recognition.sources import resolve

    rec = Recognizer(resolve(name), EngineOptions(cpu_threads=cpu_threads), backend="onnxruntime")
    images = [decode_image_bytes(p.read_bytes(), rel) for rel, p in lines]
    return [(rel, t, s) for (rel, _), (t, s) in zip(lines, rec.recognize(images, batch_size=8))]


def prepare(out: Path, src: Path, models=MODELS, limit: int | None = None, cpu_threads: int = 2) -> dict:
    from ocrfleet.recognition.sources import resolve

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    wheel = build_wheel(out)
    lines = line_list(src, limit)
    if not lines:
        raise SystemExit(f"no labelled lines under {src}")
    for rel, path in lines:
        dst = out / "lines" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
    (out / "lines" / "lines.txt").write_text("\n".join(rel for rel, _ in lines) + "\n", encoding="utf-8")
    manifest = {"wheel": wheel.name, "lines": len(lines), "line_source": str(src), "models": {}}
    for name in models:
        files = resolve(name)
        mdir = out / "models" / name
        mdir.mkdir(parents=True)
        shutil.copyfile(files.model_file, mdir / "model.onnx")
        (mdir / "model.json").write_text(json.dumps({
            "name": name, "characters": files.characters, "input_shape": list(files.input_shape),
            "source": files.source}, ensure_ascii=False), encoding="utf-8")
        ref = reference(name, lines, cpu_threads)
        (out / "reference").mkdir(exist_ok=True)
        (out / "reference" / f"{name}.tsv").write_text(
            "".join(f"{rel}\t{text}\t{score:.6f}\n" for rel, text, score in ref), encoding="utf-8")
        manifest["models"][name] = {"source": files.source, "reference": "onnxruntime CPU, batch 8"}
    manifest["bytes"] = folder_bytes(out)
    manifest["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if manifest["bytes"] >= LIMIT_BYTES:
        raise SystemExit(f"{out} holds {manifest['bytes'] / 2**20:.1f} MiB, over the 64 MiB a device call carries")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "gpu_carry")
    ap.add_argument("--lines", type=Path, default=DEFAULT_LINES, help="folder of <set>/labels.tsv line sets")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--limit", type=int, default=None, help="first N lines only (smoke runs)")
    ap.add_argument("--cpu-threads", type=int, default=2)
    args = ap.parse_args(argv)
    manifest = prepare(args.out, args.lines, tuple(args.models.split(",")), args.limit, args.cpu_threads)
    print(json.dumps({k: v for k, v in manifest.items() if k != "models"}), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
