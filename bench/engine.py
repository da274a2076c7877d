#!/usr/bin/env python3
"""ocrfleet vs the official PaddleOCR 3.7 TextRecognition: same model, same images, one machine,
one interleaved run.

    . .venv/bin/activate
    python bench/engine.py                       # defaults below; ~10 min on 2 cores
    python bench/engine.py --rounds 1 --rendered 100 --batch-sizes 8

Model: PP-OCRv4_mobile_rec in the official Paddle format (built from its PyPI wheel like the
tests do). Images: every real labelled line in tests/data/real/rec plus ``--rendered`` synthetic
lines from bench/render_lines.py (seed 0). Every engine is its own worker process
(bench/worker.py) — the official ones under .venv-official (``--official-python``) — loaded
once, then driven in rounds; inside a round every batch size runs on every engine back to back,
in a rotated order, so machine load (other jobs on a shared box) hits all engines alike.
Compare ratios within one run, not absolute numbers across runs.

Measured per engine and batch size: lines/s over all lines, sent as ``predict(slice, batch_size)``
calls of ``--slice`` lines (100), the engines taking turns slice by slice (median over
rounds); per-line latency p50/p99 (``--latency-lines`` lines sent as separate ``predict(chunk)`` calls of batch_size lines: a line's latency is its call's time), model load
time, peak RSS of the worker, the share of lines whose text equals the official default output
at batch size 1 (PaddleOCR's parity oracle) and at the same batch size, and accuracy against
the labels (spaces removed; case-insensitive for mmocr_toy). Image decoding is inside the timed
call for every engine. Prints a table; writes JSON to bench/results/.

Engines: ``official-default`` (PaddleOCR defaults), ``official-tuned`` (``cpu_threads=2``),
``ocrfleet`` (its default backend for this model: Paddle Inference), ``ocrfleet-onnxruntime``,
``ocrfleet-openvino``, ``ocrfleet-hpi`` (``enable_hpi=True``, choosing afresh), ``rapidocr``
(RapidOCR 1.4.4's recogniser, its bundled ONNX of the same PP-OCRv4 weights, ONNX Runtime,
``rec_batch_num`` = the batch size, under .venv-rapidocr: ``--rapidocr-python``). Add more with
``--engine NAME=IMPL:key=val,...`` (keys: backend, cpu_threads, pack, precision, hpi).

Lines vary: the real lines (receipts, words) plus rendered English / digits / Chinese lines of
1-12 tokens in 18-40 px fonts; the JSON and the header give how many distinct padded widths
(model input widths) they make. The parity oracle is the official default at batch size 1,
run once untimed when 1 is not among ``--batch-sizes``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
REC = ROOT / "tests" / "data" / "real" / "rec"

DEFAULT_ENGINES = [
    "official-default=official:",
    "official-tuned=official:cpu_threads=2",
    "ocrfleet=ocrfleet:",
    "ocrfleet-onnxruntime=ocrfleet:backend=onnxruntime",
    "ocrfleet-openvino=ocrfleet:backend=openvino",
    "ocrfleet-hpi=ocrfleet:hpi=1",
    "rapidocr=rapidocr:cpu_threads=2",
]


def parse_engine(spec: str) -> dict:
    name, rest = spec.split("=", 1)
    impl, _, kv = rest.partition(":")
    opts = dict(p.split("=", 1) for p in kv.split(",") if p)
    return {"name": name, "impl": impl, "opts": opts}


def v4_model_dir() -> Path:
    from ocrfleet.recognition import hub

    cache = Path(os.environ.get("OCRFLEET_TEST_CACHE", Path.home() / ".cache" / "ocrfleet-test"))
    return Path(hub.install_from_pypi("PP-OCRv4_mobile_rec", cache))


def load_lines(rendered: int) -> list[dict]:
    lines = []
    for set_name in ("mmocr_toy", "wildreceipt_lines"):
        for row in (REC / set_name / "labels.tsv").read_text(encoding="utf-8").splitlines():
            if row.strip():
                rel, label = row.split("\t", 1)
                lines.append({"set": set_name, "path": str(REC / set_name / rel), "label": label})
    if rendered:
        sys.path.insert(0, str(BENCH))
        import render_lines

        out = render_lines.ensure(RESULTS / f"rendered-{rendered}", rendered, 0).parent
        for row in (out / "labels.tsv").read_text(encoding="utf-8").splitlines():
            rel, label = row.split("\t", 1)
            lines.append({"set": "rendered", "path": str(out / rel), "label": label})
    return lines


def line_variety(paths: list[str]) -> dict:
    """How varied the lines are as model inputs: distinct padded widths (PP-OCRv4's 48 x 320
    input shape), their median, and lines with Chinese (rendered ones, by their label)."""
    import cv2

    from ocrfleet.recognition.preprocess import widths

    padded = []
    for p in paths:
        h, w = cv2.imread(p, cv2.IMREAD_COLOR).shape[:2]
        padded.append(widths(h, w, (3, 48, 320))[1])
    labels = {}
    for tsv in {Path(p).parent.parent / "labels.tsv" for p in paths}:
        for row in tsv.read_text(encoding="utf-8").splitlines():
            if row.strip():
                rel, label = row.split("\t", 1)
                labels[str(tsv.parent / rel)] = label
    return {"distinct_widths": len(set(padded)), "median_width": int(statistics.median(padded)),
            "max_width": max(padded),
            "chinese_lines": sum(any("\u4e00" <= c <= "\u9fff" for c in labels.get(p, "")) for p in paths)}


def correct(text: str, line: dict) -> bool:
    a, b = text.replace(" ", ""), line["label"].replace(" ", "")
    return a.lower() == b.lower() if line["set"] == "mmocr_toy" else a == b


class Worker:
    def __init__(self, eng: dict, model_dir: Path, pythons: dict, env: dict):
        self.eng = eng
        o = eng["opts"]
        py = pythons.get(eng["impl"], sys.executable)
        cmd = [py, str(BENCH / "worker.py"), "--impl", eng["impl"], "--model-dir", str(model_dir)]
        for key, flag in (("cpu_threads", "--cpu-threads"), ("backend", "--backend"), ("pack", "--pack"),
                          ("precision", "--precision")):
            if key in o:
                cmd += [flag, o[key]]
        if o.get("hpi"):
            cmd.append("--hpi")
        wenv = dict(env)
        if eng["impl"] != "ocrfleet":
            wenv.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, encoding="utf-8", env=wenv, cwd=str(ROOT))
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.eng['name']} died (exit {self.proc.wait()})")
        return json.loads(line)

    def run(self, paths: list[str], batch_size: int, mode: str) -> dict:
        self.proc.stdin.write(json.dumps({"op": "run", "paths": paths, "batch_size": batch_size, "mode": mode}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))
    return v[k]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ocrfleet vs official PaddleOCR, interleaved.")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rendered", type=int, default=300, help="synthetic lines added to the 92 real ones")
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--slice", type=int, default=100,
                    help="lines per predict() call in the throughput pass; engines alternate per slice")
    ap.add_argument("--latency-lines", type=int, default=64, help="lines per latency pass (0: skip)")
    ap.add_argument("--engine", action="append", default=None, help="NAME=IMPL:key=val,... (repeatable)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these engine names")
    ap.add_argument("--official-python", default=os.environ.get("OCRFLEET_OFFICIAL_PYTHON",
                                                                 str(ROOT / ".venv-official" / "bin" / "python")))
    ap.add_argument("--rapidocr-python", default=os.environ.get("OCRFLEET_RAPIDOCR_PYTHON",
                                                                 str(ROOT / ".venv-rapidocr" / "bin" / "python")))
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    engines = [parse_engine(s) for s in (a.engine or DEFAULT_ENGINES)]
    if a.only:
        engines = [e for e in engines if e["name"] in a.only]
    if not any(e["name"] == "official-default" for e in engines):
        engines.insert(0, parse_engine(DEFAULT_ENGINES[0]))  # the oracle for "same text"
    if not Path(a.official_python).exists():
        sys.exit(f"no official PaddleOCR interpreter at {a.official_python} (see docs/performance.md)")
    pythons = {"official": a.official_python, "rapidocr": a.rapidocr_python}
    if any(e["impl"] == "rapidocr" for e in engines) and not Path(a.rapidocr_python).exists():
        sys.exit(f"no RapidOCR interpreter at {a.rapidocr_python} (pip install rapidocr-onnxruntime==1.4.4)")

    RESULTS.mkdir(parents=True, exist_ok=True)
    home = RESULTS / "home"  # bench-private OCRFLEET_HOME: cached ONNX conversion, fresh hpi choice
    env = dict(os.environ, OCRFLEET_HOME=str(home), PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True")
    os.environ["OCRFLEET_HOME"] = str(home)
    model_dir = v4_model_dir()
    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.convert import onnx_path

    onnx_path(sources.resolve(None, model_dir))  # convert once, outside every load time
    (home / "hpi-choices.json").unlink(missing_ok=True)

    lines = load_lines(a.rendered)
    paths = [ln["path"] for ln in lines]
    lat_paths = paths[: a.latency_lines]
    variety = line_variety(paths)
    print(f"{len(lines)} lines ({sum(ln['set'] != 'rendered' for ln in lines)} real; {variety['distinct_widths']} "
          f"distinct model input widths, median {variety['median_width']} px, {variety['chinese_lines']} with "
          f"Chinese), engines: "
          f"{', '.join(e['name'] for e in engines)}; batch sizes {a.batch_sizes}; {a.rounds} rounds", flush=True)

    workers = {}
    for e in engines:  # loaded one at a time so load times do not overlap
        t = time.perf_counter()
        workers[e["name"]] = Worker(e, model_dir, pythons, env)
        print(f"  loaded {e['name']}: {workers[e['name']].info['load_s']:.2f} s "
              f"(wall {time.perf_counter() - t:.1f} s) {workers[e['name']].info.get('backend', '')}", flush=True)
    warm = paths[:16]
    for w in workers.values():
        for bs in a.batch_sizes:
            w.run(warm, bs, "list")

    runs: dict = {e["name"]: {bs: {"lps": [], "lat": [], "texts": None, "scores": None} for bs in a.batch_sizes}
                  for e in engines}
    names = [e["name"] for e in engines]
    t_start, load0 = time.perf_counter(), os.getloadavg()
    for r in range(a.rounds):
        for bi, bs in enumerate(a.batch_sizes):
            k = (r * len(a.batch_sizes) + bi) % len(names)
            order = names[k:] + names[:k]  # rotate who goes first
            spent = {name: 0.0 for name in names}
            texts = {name: [] for name in names}
            for j, lo in enumerate(range(0, len(paths), a.slice)):
                # fine-grained interleave: every engine does this slice before anyone does the next,
                # so load changes lasting more than a few seconds hit every engine alike
                for name in order[j % len(order):] + order[:j % len(order)]:
                    rep = workers[name].run(paths[lo:lo + a.slice], bs, "list")
                    spent[name] += rep["elapsed_s"]
                    texts[name].extend(rep["texts"])
            for name in order:
                slot = runs[name][bs]
                slot["lps"].append(len(paths) / spent[name])
                if slot["texts"] is None:
                    slot["texts"] = texts[name]
                if a.latency_lines:
                    lrep = workers[name].run(lat_paths, bs, "chunks")
                    for i, dt in enumerate(lrep["chunk_s"]):
                        n = min(bs, len(lat_paths) - i * bs)
                        slot["lat"].extend([dt] * n)
                print(f"  round {r + 1} bs {bs:>2} {name:<22} {slot['lps'][-1]:7.1f} lines/s", flush=True)
    wall = time.perf_counter() - t_start

    if 1 in a.batch_sizes:
        oracle = runs["official-default"][1]["texts"]
    else:  # the parity oracle, untimed
        oracle = [t for lo in range(0, len(paths), a.slice)
                  for t in workers["official-default"].run(paths[lo:lo + a.slice], 1, "list")["texts"]]
    table = []
    for name in names:
        w = workers[name]
        final = w.run(paths[:1], 1, "list")  # peak RSS after everything
        for bs in a.batch_sizes:
            slot = runs[name][bs]
            same_bs = runs["official-default"][bs]["texts"]
            table.append({
                "engine": name, "backend": w.info.get("backend", "paddle (official)"), "batch_size": bs,
                "lines_per_s": statistics.median(slot["lps"]), "lines_per_s_rounds": slot["lps"],
                "latency_p50_ms": 1000 * pct(slot["lat"], 50), "latency_p99_ms": 1000 * pct(slot["lat"], 99),
                "load_s": w.info["load_s"], "rss_peak_mb": final["rss_peak_mb"],
                "same_text_as_official_bs1": sum(x == y for x, y in zip(slot["texts"], oracle)) / len(paths),
                "same_text_as_official_same_bs": sum(x == y for x, y in zip(slot["texts"], same_bs)) / len(paths),
                "accuracy": sum(correct(t, ln) for t, ln in zip(slot["texts"], lines)) / len(lines),
                "accuracy_real": (sum(correct(t, ln) for t, ln in zip(slot["texts"], lines) if ln["set"] != "rendered")
                                  / max(1, sum(ln["set"] != "rendered" for ln in lines))),
            })
    for w in workers.values():
        w.close()

    base = {(row["engine"], row["batch_size"]): row["lines_per_s"] for row in table}
    for row in table:
        row["x_official_default"] = row["lines_per_s"] / base[("official-default", row["batch_size"])]
        if ("official-tuned", row["batch_size"]) in base:
            row["x_official_tuned"] = row["lines_per_s"] / base[("official-tuned", row["batch_size"])]
        if ("rapidocr", row["batch_size"]) in base:
            row["x_rapidocr"] = row["lines_per_s"] / base[("rapidocr", row["batch_size"])]

    hdr = (f"{'engine':<22} {'backend':<18} {'bs':>3} {'lines/s':>8} {'xdef':>5} {'xtun':>5} {'xrap':>5} {'p50ms':>7} "
           f"{'p99ms':>7} {'load s':>6} {'RSS MB':>7} {'=off1':>6} {'=offbs':>6} {'acc':>5}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for bs in a.batch_sizes:
        for row in (r for r in table if r["batch_size"] == bs):
            print(f"{row['engine']:<22} {row['backend']:<18} {bs:>3} {row['lines_per_s']:8.1f} "
                  f"{row['x_official_default']:5.2f} {row.get('x_official_tuned', float('nan')):5.2f} "
                  f"{row.get('x_rapidocr', float('nan')):5.2f} "
                  f"{row['latency_p50_ms']:7.1f} {row['latency_p99_ms']:7.1f} {row['load_s']:6.2f} "
                  f"{row['rss_peak_mb']:7.0f} {row['same_text_as_official_bs1']:6.1%} "
                  f"{row['same_text_as_official_same_bs']:6.1%} {row['accuracy']:5.1%}")
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": wall,
        "machine": {"node": platform.node(), "cpu": platform.processor() or platform.machine(),
                    "cores": len(os.sched_getaffinity(0)), "load_avg_end": os.getloadavg()},
        "lines": len(lines), "line_variety": variety, "load_avg_start": load0, "real_lines": sum(ln["set"] != "rendered" for ln in lines),
        "rendered_lines": a.rendered, "rounds": a.rounds, "slice": a.slice, "latency_lines": a.latency_lines,
        "engines": engines, "workers": {n: w.info for n, w in workers.items()}, "table": table,
    }
    out = Path(a.out) if a.out else RESULTS / f"engine-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out} (wall {wall:.0f} s, load average at end {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
