"""High-performance mode: the measured default unless another backend is clearly faster.

The rule is tested on figures, then on real backends: a probe under load bursts aimed at the
default's turns, and a probe while a CPU-burning process runs, must not lock in a backend
slower than the default (PaddleOCR's one-shot probe, and ocrfleet's before, picked Paddle
Inference under load and kept it: 0.86x the official package)."""
from __future__ import annotations

import json
import multiprocessing
import statistics
import time

import pytest

from ocrfleet.recognition import sources
from ocrfleet.recognition.backends import hpi, select
from ocrfleet.recognition.backends.base import EngineOptions
from ocrfleet.recognition.engine import Recognizer

OPTS = EngineOptions(cpu_threads=2)


def test_rule_keeps_the_default_unless_clearly_and_consistently_faster():
    base = [1.0] * 6
    # 5 % faster every round: inside the margin, the default stays
    assert hpi.decide("openvino", {"openvino": base, "onnxruntime": [0.95] * 6}).backend == "openvino"
    # 30 % faster in every round: chosen, with its figures
    d = hpi.decide("openvino", {"openvino": base, "onnxruntime": [0.7] * 6})
    assert d.backend == "onnxruntime" and d.ratios["onnxruntime"] == 0.7 and d.wins["onnxruntime"] == 1.0
    # much faster in the median but only in 3 of 6 rounds (load bursts): not trusted
    noisy = hpi.decide("openvino", {"openvino": base, "paddle": [0.2, 0.2, 0.2, 1.5, 1.5, 1.5]})
    assert noisy.backend == "openvino" and noisy.wins["paddle"] == 0.5
    # two challengers: the faster one wins
    two = hpi.decide("paddle", {"paddle": base, "onnxruntime": [0.6] * 6, "openvino": [0.4] * 6})
    assert two.backend == "openvino"


def test_choice_is_remembered_with_its_figures_and_keyed_by_machine(isolated_home):
    files = sources.resolve("PP-OCRv5_mobile_rec")
    name, backend = hpi.choose(files, OPTS, rounds=3)
    assert backend.name == name
    saved = json.loads((isolated_home / "hpi-choices.json").read_text())
    (key, entry), = saved.items()
    assert key == hpi.key(files, OPTS) and entry["backend"] == name
    assert entry["default"] == select.default_order(files, OPTS)[0]
    assert set(entry["seconds"]) == set(select.candidates(files, OPTS))
    assert all(len(v) == 3 for v in entry["seconds"].values())
    assert entry["machine"]["cores"] >= 1 and entry["machine"]["versions"]["onnxruntime"]
    again, _ = select.fastest(files, OPTS)  # remembered: not measured again
    assert again == name
    assert Recognizer(files, OPTS, enable_hpi=True).backend_name == name
    assert json.loads((isolated_home / "hpi-choices.json").read_text())[key]["measured_at"] == entry["measured_at"]
    # another thread count is another configuration: its own key
    assert hpi.key(files, EngineOptions(cpu_threads=1)) != key
    assert hpi.clear("PP-OCRv5_mobile_rec") == 1 and hpi.load_all() == {}


def test_old_format_entry_is_probed_again(isolated_home):
    files = sources.resolve("PP-OCRv5_mobile_rec")
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "hpi-choices.json").write_text(json.dumps({hpi.key(files, OPTS): "paddle"}))
    assert hpi.remembered(files, OPTS) is None


class Burst:
    """A real backend whose run() is followed by real CPU work on some probe rounds: load that
    lands exactly on one backend's turns, the worst case for an uninterleaved probe."""

    def __init__(self, backend, rounds_hit: set[int], batches: int):
        self.backend, self.rounds_hit, self.batches, self.calls = backend, rounds_hit, batches, 0
        self.name = backend.name

    def run(self, batch):
        out = self.backend.run(batch)
        rnd = self.calls // self.batches - 1  # the first pass over the batches is the warm-up
        self.calls += 1
        if rnd in self.rounds_hit:
            t_end = time.perf_counter() + 0.5
            while time.perf_counter() < t_end:
                pass
        return out


class Twice:
    """A second engine of the same backend that runs every batch twice: half the default's speed
    by construction, whatever else the machine does."""

    def __init__(self, backend):
        self.backend, self.name = backend, f"{backend.name}-twice"

    def run(self, batch):
        self.backend.run(batch)
        return self.backend.run(batch)


def test_load_bursts_on_the_default_do_not_flip_the_choice(v4_official_dir):
    """The challenger is the default's backend at half speed, so only the bursts could make it
    win: hitting 2 of 5 rounds they must not; hitting 4 of 5 they do (the control: the
    measurement sees them). (An equally fast twin made this a coin toss under load: it won 2 of
    the 3 quiet rounds by > 10 % once in CI-like conditions.)"""
    files = sources.resolve("PP-OCRv4_mobile_rec", v4_official_dir)
    default = select.default_order(files, OPTS)[0]
    batches = hpi.workload(files)
    for hit, expected in (({0, 2}, default), ({0, 1, 2, 4}, "twice")):
        loaded = {default: Burst(select.create(default, files, OPTS), hit, len(batches)),
                  "twice": Twice(select.create(default, files, OPTS))}
        decision = hpi.decide(default, hpi.measure(loaded, batches, rounds=5))
        assert decision.backend == expected, (hit, decision)


def _burn(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@pytest.mark.slow
def test_probe_under_cpu_load_never_locks_in_a_slow_backend(v4_official_dir, isolated_home):
    """A CPU-burning process takes a core during the probe; the backend it picks, measured afterwards
    in the same interleaved way, takes at most 1.1x the default's time."""
    files = sources.resolve("PP-OCRv4_mobile_rec", v4_official_dir)
    default = select.default_order(files, OPTS)[0]
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(1)]
    for p in burners:
        p.start()
    try:
        decision, chosen = hpi.probe(files, OPTS, rounds=3)
    finally:
        stop.set()
        for p in burners:
            p.join(10)
    if decision.backend == default:
        return  # the default is never slower than itself
    quiet = hpi.measure({default: select.create(default, files, OPTS), decision.backend: chosen},
                        hpi.workload(files), rounds=3, fresh=hpi.fresh_workload(files, 3, seed=2))
    ratio = statistics.median(c / d for c, d in zip(quiet[decision.backend], quiet[default]))
    assert ratio <= 1.10, (decision, quiet)


class _Counting:
    def __init__(self):
        self.shapes: list[tuple] = []

    def run(self, batch):
        self.shapes.append(batch.shape)


def test_each_round_adds_recognition_widths_no_backend_has_run_before(v4_official_dir):
    """Real lines come in hundreds of widths: a backend's first-call cost per shape must count."""
    files = sources.resolve("PP-OCRv4_mobile_rec", v4_official_dir)
    fixed = hpi.workload(files)
    fresh = hpi.fresh_workload(files, 4)
    widths = [b.shape[3] for r in fresh for b in r]
    assert len(widths) == 4 * hpi.FRESH_PER_ROUND and len(set(widths)) == len(widths)
    assert not {w for w in widths} & {b.shape[3] for b in fixed}
    assert all(w % 8 == 0 and w > fixed[0].shape[3] for w in widths)  # wider than the model: no padding
    assert [[b.shape[0] for b in r] for r in fresh] == [list(hpi.FRESH_SIZES)] * 4  # mostly lone lines
    a, b = _Counting(), _Counting()
    hpi.measure({"a": a, "b": b}, fixed, rounds=4, fresh=fresh)
    for backend in (a, b):  # warm-up on the fixed batches only, then every round's fresh ones once
        warm, timed = backend.shapes[:len(fixed)], backend.shapes[len(fixed):]
        assert [s[3] for s in timed if s[3] not in {x.shape[3] for x in fixed}] == widths
        assert len(warm) == len(fixed) and len(timed) == 4 * (len(fixed) + hpi.FRESH_PER_ROUND)
    assert hpi.fresh_workload(sources.resolve("PP-OCRv5_mobile_det", None, None, task="det"), 2) == [[], []]


def test_cpu_default_order_follows_the_measured_table_per_vendor(v4_official_dir, monkeypatch):
    """The prior: ONNX Runtime first for Paddle-format models on AMD (and unknown) CPUs, OpenVINO
    first on Intel, as measured (docs/performance.md); ONNX models on ONNX Runtime everywhere."""
    from ocrfleet.recognition import devices

    paddle_files = sources.resolve("PP-OCRv4_mobile_rec", v4_official_dir)
    onnx_files = sources.resolve("PP-OCRv5_mobile_rec")
    for vendor, first in (("AuthenticAMD", "onnxruntime"), ("", "onnxruntime"), ("GenuineIntel", "openvino")):
        monkeypatch.setattr(devices, "cpu_vendor", lambda v=vendor: v)
        assert select.default_order(paddle_files, OPTS)[0] == first, vendor
        assert select.default_order(onnx_files, OPTS)[0] == "onnxruntime", vendor
    monkeypatch.undo()
    assert devices.cpu_vendor() in ("AuthenticAMD", "GenuineIntel", "")  # read from /proc/cpuinfo
