"""``ocrfleet finetune`` / ``ocrfleet.finetune()``: a tiny real fine-tune of the bundled
PP-OCRv5_mobile_rec (a few steps on receipt lines, CPU), the exported directory loaded by
TextRecognition, ``ocrfleet eval`` and ONNX Runtime, and the bad-input paths."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrfleet import cli
from ocrfleet.errors import InputNotFoundError, InvalidInputError, ModelUnavailableError
from ocrfleet.finetune import augment as aug
from ocrfleet.finetune import data
from ocrfleet.recognition import sources
from ocrfleet.recognition.evaluate import read_image

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("OCRFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OCRFLEET_OFFLINE", "1")  # bundled weights only: never a hub

REC = Path(__file__).parent / "data" / "real" / "rec" / "wildreceipt_lines"
MODEL = "PP-OCRv5_mobile_rec"


def _rows(start: int, n: int) -> list[str]:
    rows = (REC / "labels.tsv").read_text(encoding="utf-8").splitlines()
    return [r for r in rows if r.strip()][start:start + n]


def _labels(path: Path, rows: list[str]) -> Path:
    """A label file in ``path``'s folder pointing at the receipt images (absolute paths)."""
    out = []
    for r in rows:
        rel, tab, label = r.partition("\t")
        out.append(f"{REC / rel}{tab}{label}\n" if tab else r + "\n")
    path.write_text("".join(out), encoding="utf-8")
    return path


def _ctc_loss_onnx(model_file: Path, label_file: Path, characters) -> float:
    """Mean CTC loss of an ONNX model (its softmax output) on labelled lines, one line per run."""
    import onnxruntime as ort

    from ocrfleet.recognition.preprocess import make_batch

    sess = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    lines, _ = data.read_label_file(label_file)
    losses = []
    for ln in lines:
        probs = sess.run(None, {sess.get_inputs()[0].name: make_batch([read_image(ln.image_path)], (3, 48, 320))})[0]
        cs = data.Charset(characters, probs.shape[2])
        lp = torch.log(torch.from_numpy(probs).clamp_min(1e-9)).permute(1, 0, 2)
        tgt = torch.tensor([cs.encode(ln.label)])
        losses.append(float(torch.nn.functional.ctc_loss(lp, tgt, torch.tensor([lp.shape[0]]),
                                                         torch.tensor([tgt.shape[1]]), zero_infinity=True)))
    return float(np.mean(losses))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tiny run: 10 training lines, no validation (the last epoch is exported), 2 epochs, no
    augmentation, 3 keep lines with ``max_forgetting=100`` (so the tuned weights go out as they
    are), ``width_scale=1`` (the loss below is measured on the lines as they are). (4 other lines are written to val.tsv for the checks below.)"""
    import ocrfleet

    d = tmp_path_factory.mktemp("ft")
    train = _labels(d / "train.tsv", _rows(0, 10))
    val = _labels(d / "val.tsv", _rows(40, 4))
    out = d / "model"
    keep = _labels(d / "keep.tsv", _rows(50, 3))
    report = ocrfleet.finetune(str(train), str(out), model_name=MODEL, val_fraction=0.0, epochs=2, batch_size=5,
                               lr=1e-3, augment=0.0, warmup_steps=0, keep_checkpoints=True, progress=False,
                               threads=2, keep=str(keep), max_forgetting=100, width_scale=1.0)
    yield {"dir": d, "train": train, "val": val, "out": out, "report": report}
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- the tiny run

def test_tiny_finetune_lowers_training_loss(tuned):
    stock = sources.resolve(MODEL)
    before = _ctc_loss_onnx(stock.model_file, tuned["train"], stock.characters)
    after = _ctc_loss_onnx(tuned["out"] / "inference.onnx", tuned["train"], stock.characters)
    assert after < 0.8 * before, (before, after)
    r = tuned["report"]
    assert r["train_lines"] == 10 and r["val_lines"] == 0 and r["epochs_run"] == 2
    assert r["stopped_by"] == "epochs" and r["best_epoch"] == 2
    assert r["parity"]["same_text"] == r["parity"]["lines"] == 10  # checked on the training lines
    losses = [h["loss"] for h in r["history"]]
    assert losses[-1] < losses[0] and r["peak_rss_mb"] > 0
    assert r["keep_lines"] == 3 and r["blend"]["alpha"] == 1.0 and len(r["blend"]["tried"]) == 1


def test_output_dir_loads_everywhere(tuned, capsys):
    from ocrfleet import TextRecognition

    out = tuned["out"]
    assert {p.name for p in out.iterdir()} >= {"inference.onnx", "inference.yml", "finetune.json", "checkpoints"}
    files = sources.resolve(None, out)
    assert files.name == MODEL and files.fmt == "onnx"
    assert files.characters == sources.resolve(MODEL).characters
    model = TextRecognition(model_name=MODEL, model_dir=str(out), cpu_threads=2)
    img = str(REC / _rows(0, 1)[0].split("\t")[0])
    res = model.predict(img)[0].json["res"]
    assert isinstance(res["rec_text"], str) and res["rec_text"]
    assert cli.main(["eval", "--labels", str(tuned["val"]), "--model_dir", str(out), "--no_progress"]) == 0
    assert "exact match" in capsys.readouterr().out


def test_worker_resolution_serves_the_directory(tuned, tmp_path, monkeypatch):
    """Workers resolve a model by name (``sources.resolve(name)``: cache first): the directory
    copied to ``$OCRFLEET_HOME/models/<name>`` is what a worker of that host loads."""
    from ocrfleet.workers.models import ModelCache
    from ocrfleet.config import settings as settings_mod

    home = tmp_path / "home"
    shutil.copytree(tuned["out"], home / "models" / MODEL, ignore=shutil.ignore_patterns("checkpoints"))
    monkeypatch.setenv("OCRFLEET_HOME", str(home))
    files = sources.resolve(MODEL)
    assert files.source.startswith("cache:") and files.model_file == home / "models" / MODEL / "inference.onnx"
    rec = ModelCache(settings_mod.Settings(worker_device="cpu")).get(MODEL)
    img = read_image(REC / _rows(0, 1)[0].split("\t")[0])
    assert rec.files.model_file == files.model_file and rec.recognize([img])[0][0]


def test_resume_continues_from_last_checkpoint(tuned):
    import ocrfleet

    copy = tuned["dir"] / "resumed"
    shutil.copytree(tuned["out"], copy)
    started = tuned["report"]["width_scale"]
    with pytest.raises(InvalidInputError, match=f"started at width scale {started:g}, not 2.5"):
        ocrfleet.finetune(str(tuned["train"]), str(copy), model_name=MODEL, resume=True, width_scale=2.5,
                          progress=False)
    r = ocrfleet.finetune(str(tuned["train"]), str(copy), model_name=MODEL, val_fraction=0.0, epochs=3,
                          batch_size=5, lr=1e-3, augment=0.0, warmup_steps=0, resume=True, progress=False,
                          patience=10, threads=2)
    assert r["epochs_run"] == 3
    assert [h["epoch"] for h in r["history"]] == [1, 2, 3]
    assert not (copy / "checkpoints").exists()  # removed after the export unless keep_checkpoints


def test_export_matches_torch_and_check_can_fail(tuned):
    from ocrfleet.finetune import export

    imgs = [read_image(Path(r.split("\t")[0])) for r in tuned["val"].read_text(encoding="utf-8").splitlines()]
    files = sources.resolve(MODEL, tuned["out"])
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer

    texts = [t for t, _ in Recognizer(files, EngineOptions(cpu_threads=2), backend="onnxruntime").recognize(imgs)]
    assert export.check_parity(tuned["out"], MODEL, imgs, texts)["same_text"] == len(imgs)
    with pytest.raises(export.ExportMismatchError, match="reads 1 of 4 lines differently"):
        export.check_parity(tuned["out"], MODEL, imgs, texts[:3] + [texts[3] + "x"])


def test_torch_and_onnx_probabilities_agree(tuned):
    """The trained graph in torch (logits -> softmax) and the exported ONNX give the same numbers."""
    import onnxruntime as ort

    from ocrfleet.finetune import graph
    from ocrfleet.recognition.preprocess import make_batch

    files = sources.resolve(MODEL, tuned["out"])
    tg = graph.load(files)
    imgs = [read_image(Path(r.split("\t")[0])) for r in tuned["val"].read_text(encoding="utf-8").splitlines()]
    batch = make_batch(imgs[:2], (3, 48, 320))
    with torch.no_grad():
        mine = torch.softmax(tg.module(torch.from_numpy(batch)), dim=2).numpy()
    sess = ort.InferenceSession(str(tuned["out"] / "inference.onnx"), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {"x": batch})[0]
    assert tg.softmax_cut and mine.shape == theirs.shape
    assert np.abs(mine - theirs).max() < 1e-4


@pytest.mark.parametrize("low_memory", [False, True])
def test_max_minutes_exports_best_and_says_so(tmp_path, capsys, monkeypatch, low_memory):
    """Also: glibc's mmap threshold (fewer resident fragments, ~3x the time per step) is set only
    with ``low_memory``."""
    import ocrfleet
    from ocrfleet import glibc

    calls = []
    monkeypatch.setattr(glibc, "mmap_threshold", lambda n: calls.append(n) or True)
    train = _labels(tmp_path / "train.tsv", _rows(0, 8))
    r = ocrfleet.finetune(str(train), str(tmp_path / "m"), model_name=MODEL, epochs=50, batch_size=3,
                          max_minutes=0.002, val_fraction=0.5, progress=False, threads=2, low_memory=low_memory)
    assert calls == ([1 << 20] if low_memory else [])
    assert r["stopped_by"] == "max_minutes" and r["epochs_run"] < 50
    assert (tmp_path / "m" / "inference.onnx").is_file()
    assert r["before"]["lines"] == r["val_lines"] > 0 and r["best"]["cer"] <= r["before"]["cer"]
    err = capsys.readouterr().err
    assert "time limit of 0.002 min reached" in err and "exporting the best checkpoint" in err


def test_frozen_backbone_trains_only_the_head(tmp_path):
    """``backbone_lr_scale=0``: the exported model's backbone weights are the stock model's, bit
    for bit, while the head's changed (and no backward pass runs through the backbone)."""
    import onnx
    from onnx import numpy_helper

    import ocrfleet
    from ocrfleet.finetune import graph

    train = _labels(tmp_path / "train.tsv", _rows(0, 6))
    ocrfleet.finetune(str(train), str(tmp_path / "m"), model_name=MODEL, epochs=1, batch_size=3, lr=1e-3,
                      val_fraction=0.0, augment=0.0, warmup_steps=0, backbone_lr_scale=0.0, progress=False, threads=2)
    stock = sources.resolve(MODEL)
    tg = graph.load(stock)
    backbone = {tg.module.onnx_name(n) for n, p in tg.module.named_parameters() if any(p is q for q in tg.backbone)}
    head = {tg.module.onnx_name(n) for n, p in tg.module.named_parameters() if any(p is q for q in tg.head)}
    before = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(stock.model_file)).graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "m" / "inference.onnx")).graph.initializer}
    assert backbone and head
    assert all(np.array_equal(before[n], after[n]) for n in backbone)
    assert sum(not np.array_equal(before[n], after[n]) for n in head) > len(head) // 2


def _exact(model_dir, label_file) -> float:
    from ocrfleet.recognition.evaluate import evaluate, load_recognizer

    rec = load_recognizer(MODEL, str(model_dir) if model_dir else None, backend="onnxruntime", cpu_threads=2)
    return evaluate(label_file, rec, batch_size=8, progress=False)["accuracy"]


def test_keep_lines_blend_back_until_nothing_is_forgotten(tmp_path, capsys):
    """A run at a learning rate that wrecks the model, with keep lines and ``max_forgetting=0``:
    the exported weights are blended back towards the stock ones (WiSE-FT) until the keep lines
    read as well as with the stock model, measured again on the exported ONNX directory."""
    import ocrfleet

    train = _labels(tmp_path / "train.tsv", _rows(0, 6))
    keep = _labels(tmp_path / "keep.tsv", _rows(20, 12))
    r = ocrfleet.finetune(str(train), str(tmp_path / "m"), model_name=MODEL, epochs=1, batch_size=3, lr=0.5,
                          val_fraction=0.0, augment=0.0, warmup_steps=0, progress=False, threads=2,
                          keep=[str(keep)], max_forgetting=0.0)
    b = r["blend"]
    stock = _exact(None, keep)
    assert b["keep_before"]["accuracy"] == pytest.approx(stock) and stock > 0.3
    assert b["tried"][0]["alpha"] == 1.0 and b["tried"][0]["points_lost"] > 0  # the wrecked weights forgot
    assert b["alpha"] < 1.0 and r["keep_lines"] == 12 and len(b["tried"]) <= 5
    assert _exact(tmp_path / "m", keep) >= stock  # the exported blend forgets nothing
    assert "keep lines:" in capsys.readouterr().err


def test_blend_bisects_for_the_largest_alpha_within_the_limit():
    """The alpha search on a stand-in trainer whose keep accuracy falls 0.5 per unit of alpha
    (the real runs are the tests above and below): the largest alpha of 1.0, 0.9 .. 0.1 within
    the limit, in at most 5 readings, with the chosen weights left loaded."""
    from ocrfleet.finetune import blend

    class Stand:
        def __init__(self):
            self.module, self.reads = self, 0

        def load_state_dict(self, w):
            self.w = float(w["w"])

        def evaluate(self, lines):
            self.reads += 1
            return {"accuracy": 0.9 - 0.5 * self.w, "cer": self.w}

    stock, tuned = {"w": torch.tensor(0.0)}, {"w": torch.tensor(1.0)}
    before = {"lines": 4, "accuracy": 0.9, "cer": 0.0}
    for limit, want in ((100, 1.0), (22, 0.4), (47, 0.9), (6, 0.1), (1, 0.0)):
        t = Stand()
        r = blend.choose(t, stock, tuned, ["line"], before, limit, [], lambda msg: None)
        assert r["alpha"] == want and t.w == pytest.approx(want) and t.reads <= 5, (limit, r)
        assert r["tried"][0]["alpha"] == 1.0


def test_width_scale_auto_only_takes_scales_the_keep_lines_allow():
    """``scale.choose`` on a stand-in reader (a line is read right when stretched at least its
    threshold, or, for the keep line, at most 1.25x): the validation lines alone pick 2.0; with
    the keep line and ``max_forgetting=0`` only 1.0 and 1.25 are allowed, so 1.25."""
    from ocrfleet.finetune import scale

    def line(h, label):
        return data.Line(Path(f"{h}.png"), f"{h}.png", label, f"t:{h}", np.zeros((h, 100, 3), np.uint8),
                         np.zeros((h, 100, 3), np.uint8))

    rule = {10: lambda w: w >= 125, 11: lambda w: w >= 200, 12: lambda w: w <= 125}

    class Reader:
        def predict(self, images):
            return [{10: "AB", 11: "CD", 12: "EF"}[im.shape[0]] if rule[im.shape[0]](im.shape[1]) else "x"
                    for im in images]

    val, keep = [line(10, "AB"), line(11, "CD")], [line(12, "EF")]
    said = []
    assert scale.choose(Reader(), val, "auto", said.append)[0] == 2.0
    before = {"lines": 1, "accuracy": 1.0, "cer": 0.0}
    chosen, tried = scale.choose(Reader(), val, "auto", said.append, keep, before, 0.0, 1.0)
    assert chosen == 1.25 and [t["allowed"] for t in tried] == [True, True, False, False]
    assert "not allowed" in said[-1] and said[-1].endswith("training at 1.25")
    assert scale.choose(Reader(), val, 1.5, said.append, keep, before, 0.0, 1.0) == (1.5, [])


def _squeezed(path: Path, rows: list[str], factor: float = 0.55) -> Path:
    """A label file of receipt lines squeezed to ``factor`` of their width (narrow "handwriting")."""
    import cv2

    out = []
    for r in rows:
        rel, _, label = r.partition("\t")
        img = read_image(REC / rel)
        dest = path.parent / f"sq-{Path(rel).name}"
        cv2.imwrite(str(dest), cv2.resize(img, (max(1, round(img.shape[1] * factor)), img.shape[0])))
        out.append(f"{dest}\t{label}\n")
    path.write_text("".join(out), encoding="utf-8")
    return path


def test_width_scale_auto_is_chosen_trained_exported_and_served(tmp_path, capsys):
    """Lines squeezed to 55 % of their width: ``width_scale="auto"`` scores the stock model at
    1, 1.25, 1.5 and 2 on the validation lines and trains at the best, which must be a stretch;
    the exported ``inference.yml`` carries it, and every reader of the directory stretches the
    lines as training did (served text == the same graph without the scale reading pre-stretched
    lines), so the export reads the squeezed lines better than the stock model."""
    import yaml

    import ocrfleet
    from ocrfleet.finetune.train import better
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer
    from ocrfleet.recognition.preprocess import stretch

    train = _squeezed(tmp_path / "train.tsv", _rows(0, 6))
    val = _squeezed(tmp_path / "val.tsv", _rows(20, 12))
    out = tmp_path / "m"
    r = ocrfleet.finetune(str(train), str(out), model_name=MODEL, val=str(val), epochs=1, batch_size=3, lr=1e-5,
                          augment=0.0, warmup_steps=0, backbone_lr_scale=0.0, progress=False, threads=2)
    tried = r["width_scales_tried"]
    assert [t["width_scale"] for t in tried] == [1.0, 1.25, 1.5, 2.0]
    best = tried[0]
    for t in tried[1:]:
        best = t if better(t, best) else best
    assert r["width_scale"] == best["width_scale"] > 1.0, tried
    assert r["before"]["accuracy"] == tried[0]["accuracy"]  # "before": the stock model as served (1.0)
    assert "width scale auto" in capsys.readouterr().err
    yml = yaml.safe_load((out / "inference.yml").read_text(encoding="utf-8"))
    resize = [op["RecResizeImg"] for op in yml["PreProcess"]["transform_ops"] if "RecResizeImg" in op][0]
    assert resize["width_scale"] == r["width_scale"] == yml["Finetune"]["width_scale"]
    assert r["parity"]["same_text"] == r["parity"]["lines"] == 12

    served = sources.resolve(None, out)
    assert served.width_scale == r["width_scale"]
    plain = sources.resolve(None, out)
    plain.width_scale = 1.0  # the same graph, reading whatever it is given
    opts = EngineOptions(device="cpu", cpu_threads=2)
    images = [read_image(ln.image_path) for ln in data.read_label_file(val)[0]]
    a = Recognizer(served, opts, backend="onnxruntime").recognize(images)
    b = Recognizer(plain, opts, backend="onnxruntime").recognize([stretch(im, r["width_scale"]) for im in images])
    assert a == b
    assert _exact(out, val) > _exact(None, val)


def test_bad_width_scale_in_a_model_dir_is_refused(tmp_path):
    stock = sources.resolve(MODEL)
    for bad in (9, "wide", True):
        d = tmp_path / f"m{bad}"
        d.mkdir()
        shutil.copy(stock.model_file, d / "inference.onnx")
        yml = {"Global": {"model_name": MODEL}, "PostProcess": {"character_dict": stock.characters},
               "PreProcess": {"transform_ops": [{"RecResizeImg": {"image_shape": [3, 48, 320], "width_scale": bad}}]}}
        import yaml

        (d / "inference.yml").write_text(yaml.safe_dump(yml, allow_unicode=True), encoding="utf-8")
        with pytest.raises(ModelUnavailableError, match="width_scale must be a number"):
            sources.resolve(None, d)


# --------------------------------------------------------------------------- bad input

def test_bad_lines_get_one_message_each(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"not an image")
    good = _rows(0, 3)
    rows = good + ["missing.png\tHELLO", f"{tmp_path / 'corrupt.png'}\tHELLO", f"{REC / good[0].split(chr(9))[0]}\t  ",
                   "no tab here", f"{REC / good[1].split(chr(9))[0]}\tTOTAL\u0153\U0001D400"]
    lf = _labels(tmp_path / "l.tsv", rows)
    lines, problems = data.read_label_file(lf)
    assert len(problems) == 2
    assert "empty label" in problems[0] and "expected 'image_path<TAB>label'" in problems[1]
    stock = sources.resolve(MODEL)
    cs = data.Charset(stock.characters, 18385)
    usable, refused, missing = data.check_lines(lines, cs, stock.input_shape)
    assert len(usable) == 3
    assert len(refused) == 3
    assert "missing.png' not found" in refused[0] and "not a readable image" in refused[1]
    lack = cs.missing("TOTAL\u0153\U0001D400")
    assert lack and "missing from the model's dictionary" in refused[2] and missing == {c: 1 for c in lack}
    for msg in problems + refused:
        assert msg.startswith(str(lf) + ":")


def test_many_missing_characters_are_summarised_not_listed(tmp_path, capsys):
    """A label file in a script the model lacks (35 Hangul syllables here) gets one summary line
    naming the 30 most frequent characters and the count of the rest; the report lists them all.
    A training line that is also a keep line is left out of training, with a message."""
    import ocrfleet

    good = _rows(0, 3)
    image = REC / good[0].split("\t")[0]
    rows = good + [f"{image}\tTOTAL {chr(0xAC00 + i)}" for i in range(35)]
    keep = _labels(tmp_path / "keep.tsv", good[:1] + _rows(20, 1))  # also a keep line: not trained on
    r = ocrfleet.finetune(str(_labels(tmp_path / "l.tsv", rows)), str(tmp_path / "m"), model_name=MODEL, epochs=1,
                          batch_size=3, val_fraction=0.0, augment=0.0, min_usable=0.0, progress=False, threads=2,
                          keep=str(keep), max_forgetting=100)
    err = capsys.readouterr().err
    summary = [ln for ln in err.splitlines() if "missing from the model's dictionary (their lines were refused)" in ln]
    assert len(summary) == 1 and summary[0].startswith("finetune: 35 characters missing")
    assert "and 5 more (all in the report's missing_characters)" in summary[0]
    assert len(r["missing_characters"]) == 35 and r["refused_lines"] == 35
    assert r["train_lines"] == 2 and "is also in the keep labels" in err


def test_run_refused_below_usable_threshold(tmp_path, capsys):
    import ocrfleet

    rows = _rows(0, 2) + [f"gone{i}.png\tX" for i in range(5)]
    lf = _labels(tmp_path / "l.tsv", rows)
    with pytest.raises(InvalidInputError, match="only 2 of 7 labelled lines are usable"):
        ocrfleet.finetune(str(lf), str(tmp_path / "m"), model_name=MODEL, progress=False)
    assert capsys.readouterr().err.count("not found") == 5


def test_output_dir_refused_unless_force(tmp_path):
    import ocrfleet

    (tmp_path / "m").mkdir()
    lf = _labels(tmp_path / "l.tsv", _rows(0, 2))
    with pytest.raises(InvalidInputError, match="already exists; give --force"):
        ocrfleet.finetune(str(lf), str(tmp_path / "m"), model_name=MODEL)
    with pytest.raises(InvalidInputError, match="nothing to resume"):
        ocrfleet.finetune(str(lf), str(tmp_path / "m"), model_name=MODEL, resume=True)
    with pytest.raises(InputNotFoundError):
        ocrfleet.finetune(str(tmp_path / "nope.tsv"), str(tmp_path / "m2"), model_name=MODEL)


def test_model_without_dictionary_refused(tmp_path):
    import ocrfleet

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(sources.resolve(MODEL).model_file, bare / "model.onnx")
    lf = _labels(tmp_path / "l.tsv", _rows(0, 2))
    with pytest.raises(ModelUnavailableError, match="no character dictionary"):
        ocrfleet.finetune(str(lf), str(tmp_path / "m"), model_dir=str(bare))


@pytest.mark.parametrize("kw, msg", [({"epochs": 0}, "epochs must be"), ({"lr": -1}, "lr must be"),
                                     ({"batch_size": "8"}, "batch_size must be"),
                                     ({"max_minutes": 0}, "max_minutes must be"),
                                     ({"resume": True, "force": True}, "not both"),
                                     ({"device": "tpu"}, "unsupported device"),
                                     ({"max_forgetting": -1}, "max_forgetting must be"),
                                     ({"width_scale": 9}, "width_scale must be"),
                                     ({"width_scale": "wide"}, "width_scale must be")])
def test_bad_options(tmp_path, kw, msg):
    import ocrfleet
    from ocrfleet.errors import OcrFleetError

    lf = _labels(tmp_path / "l.tsv", _rows(0, 2))
    with pytest.raises(OcrFleetError, match=msg):
        ocrfleet.finetune(str(lf), str(tmp_path / "m"), model_name=MODEL, **kw)
    assert not (tmp_path / "m").exists()


def test_cli_reports_errors_with_code(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    lf = _labels(tmp_path / "l.tsv", _rows(0, 2))
    assert cli.main(["finetune", "--labels", str(lf), "--output", str(tmp_path / "m"), "--model_name", MODEL]) == 2
    assert "error [INVALID_INPUT]" in capsys.readouterr().err


# --------------------------------------------------------------------------- pieces

def test_split_is_deterministic_and_salted():
    rels = [f"imgs/{i:04d}.png" for i in range(2000)]
    a = [data.held_out(r, 0.3) for r in rels]
    assert a == [data.held_out(r, 0.3) for r in rels]
    assert 0.25 < sum(a) / len(a) < 0.35
    lines = [data.Line(Path(r), r, "x", f"l:{i}") for i, r in enumerate(rels)]
    train, val = data.split([ln for ln, t in zip(lines, a) if not t], 0.1)
    assert 0.07 < len(val) / (len(val) + len(train)) < 0.13  # salted: not empty on an unsalted train share


def test_augmentations_keep_lines_readable():
    img = read_image(REC / _rows(0, 1)[0].split("\t")[0])
    rng = np.random.default_rng(0)
    for fn, _ in aug.PIPELINE:
        out = fn(img.copy(), rng)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert 0.7 * img.shape[0] < out.shape[0] < 1.3 * img.shape[0] and out.shape[1] > 0.8 * img.shape[1]
    a = aug.augment(img, np.random.default_rng(5))
    assert np.array_equal(a, aug.augment(img, np.random.default_rng(5)))
    assert np.array_equal(aug.augment(img, rng, strength=0.0), img)


def test_charset_encodes_with_the_model_dictionary():
    stock = sources.resolve(MODEL)
    cs = data.Charset(stock.characters, 18385)
    ids = cs.encode("TOTAL 12")
    assert 0 not in ids and cs.decode(ids) == "TOTAL 12"
    assert cs.decode([ids[0], ids[0], 0, ids[0]]) == "TT"  # CTC: repeats merge unless a blank separates
    assert cs.missing("sœur") == ["\u0153"]


def test_a_run_leaves_no_torch_cache_in_the_temp_dir(tmp_path):
    """torch's inductor cache goes under ocrfleet's cache (``$OCRFLEET_HOME/torchinductor``), not
    ``$TMPDIR/torchinductor_<user>`` (a fresh process, as a user's CLI run)."""
    import os

    tmp, home = tmp_path / "tmp", tmp_path / "home"
    tmp.mkdir()
    lf = _labels(tmp_path / "l.tsv", _rows(0, 3))
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env.update(TMPDIR=str(tmp), OCRFLEET_HOME=str(home), OCRFLEET_OFFLINE="1")
    code = (f"import ocrfleet; ocrfleet.finetune({str(lf)!r}, {str(tmp_path / 'm')!r}, model_name={MODEL!r}, "
            "epochs=1, batch_size=3, val_fraction=0.0, progress=False, threads=2, width_scale=1.0)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    assert (tmp_path / "m" / "inference.onnx").is_file()
    assert [p.name for p in tmp.iterdir() if "torch" in p.name] == []


def test_import_ocrfleet_does_not_import_torch():
    code = "import sys, ocrfleet; f = ocrfleet.finetune; assert callable(f); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trainable_weights_and_logits_cut():
    import onnx

    from ocrfleet.finetune import graph

    base = onnx.load(str(sources.resolve(MODEL).model_file))
    cut, was_cut = graph.logits_graph(base)
    assert was_cut and cut.graph.node[-1].op_type != "Softmax" and base.graph.node[-1].op_type == "Softmax"
    names = graph.trainable(cut.graph)
    uses = {}
    for node in cut.graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, set()).add((node.op_type, i))
    conv_w = {n for n, u in uses.items() if ("Conv", 1) in u}
    assert conv_w and conv_w <= names
    assert not any(("Pow", 1) in uses[n] or ("BatchNormalization", 3) in uses[n] for n in names)
    sizes = {t.name: int(np.prod(t.dims)) for t in cut.graph.initializer}
    assert all(sizes[n] > 1 for n in names)


# --------------------------------------------------------------------------- training memory

def test_hard_sigmoid_backward_keeps_only_its_input_and_matches_autograd():
    from ocrfleet.torch_graph.ops import OPS

    at = {"alpha": 1 / 6, "beta": 0.5}
    x = (torch.randn(4, 300, dtype=torch.float64) * 6).requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = OPS["HardSigmoid"](None, at, x)
    assert len(saved) == 1 and saved[0] is x  # not alpha * x + beta as well
    ref = torch.clamp(x * at["alpha"] + at["beta"], 0.0, 1.0)
    assert torch.equal(y, ref)
    g = torch.randn_like(x)
    (got,) = torch.autograd.grad(y, x, g)
    (want,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(got, want)
    with torch.no_grad():
        assert torch.equal(OPS["HardSigmoid"](None, at, x), ref)


def test_forward_drops_intermediates_after_their_last_reader():
    """OnnxModule frees each value once no later node reads it: replaying the schedule, only
    the graph outputs (and values nothing reads) are left at the end."""
    from ocrfleet.finetune import graph

    mod = graph.load(sources.resolve(MODEL)).module
    read = {n for _, ins, _, _ in mod._nodes for n in ins}
    alive = set(mod.input_names)
    for (_, ins, outs, _), done in zip(mod._nodes, mod._free_after):
        assert set(ins) & alive >= set(done) & alive  # nothing freed before its reader ran
        alive = (alive | set(outs)) - set(done)
    assert alive == set(mod.output_names) | ((alive - read) - set(mod.input_names))
    assert not alive & read - set(mod.output_names)


def test_batches_respect_max_columns():
    import random

    shape = (3, 48, 320)
    lines = [data.Line(Path(f"{i}.png"), f"{i}.png", "x", "t", np.zeros((48, 48 * (2 + i % 20), 3), np.uint8))
             for i in range(200)]
    plan = data.batches(lines, 8, random.Random(0), shape, max_columns=1600)
    assert sorted(id(ln) for b in plan for ln in b) == sorted(id(ln) for ln in lines)
    for b in plan:
        cols = len(b) * max(data.widths(48, ln.image.shape[1], shape)[1] for ln in b)
        assert len(b) <= 8 and (cols <= 1600 or len(b) == 1)
    with pytest.raises(InvalidInputError, match="max_columns"):
        from ocrfleet.finetune.options import Options
        Options(labels=["a"], output="b", max_columns=10)


def test_should_stop_ends_the_run_without_exporting(tmp_path):
    """A fleet job's cancel: ``should_stop`` is asked every few steps; once it says yes the run
    raises CANCELLED and writes no model."""
    import ocrfleet
    from ocrfleet.finetune.train import FinetuneCancelled

    asked = []
    train = _labels(tmp_path / "train.tsv", _rows(0, 6))
    with pytest.raises(FinetuneCancelled, match="stopped on request") as err:
        ocrfleet.finetune(str(train), str(tmp_path / "m"), model_name=MODEL, epochs=15, batch_size=3, val_fraction=0.0,
                          augment=0.0, progress=False, threads=2, should_stop=lambda: asked.append(1) or len(asked) > 1)
    assert err.value.code == "CANCELLED" and len(asked) == 2
    assert not (tmp_path / "m" / "inference.onnx").exists()
