"""One fine-tuning run, from label files to a served model directory (``ocrfleet.finetune()``)."""
from __future__ import annotations

import os
import random
import resource
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from ocrfleet.errors import BackendUnavailableError, InvalidInputError, ModelUnavailableError
from ocrfleet.finetune import scale
from ocrfleet.finetune.data import Charset, batches, check_lines, read_label_file, split
from ocrfleet.finetune.options import Options
from ocrfleet.recognition.preprocess import stretch

CHECKPOINTS = "checkpoints"
MISSING_SHOWN = 30  # missing characters named in the message (the report lists all)


def _say(opts: Options):
    def say(msg: str) -> None:
        if opts.progress:
            from tqdm import tqdm

            tqdm.write(f"finetune: {msg}", file=sys.stderr)
        else:
            print(f"finetune: {msg}", file=sys.stderr)
    return say


def _check_output(opts: Options) -> Path:
    out = Path(opts.output)
    if opts.resume:
        if not (out / CHECKPOINTS / "last.pt").is_file():
            raise InvalidInputError(f"nothing to resume: {str(out / CHECKPOINTS / 'last.pt')!r} does not exist")
    elif out.exists() and not opts.force:
        raise InvalidInputError(f"output directory {str(out)!r} already exists; give --force to replace "
                                "it or --resume to continue its run")
    elif out.exists() and not out.is_dir():
        raise InvalidInputError(f"output {str(out)!r} exists and is not a directory")
    return out


def _prepare_output(opts: Options, out: Path) -> None:
    if not opts.resume and out.exists():
        shutil.rmtree(out)
    (out / CHECKPOINTS).mkdir(parents=True, exist_ok=True)


MMAP_THRESHOLD = 1 << 20


def _bound_heap() -> bool:
    """``low_memory``: serve allocations of 1 MiB and more (activations) with mmap, returned to the
    system when freed. glibc's default threshold rises to 32 MiB after the first large free, so
    activations of every batch width land in the heap, which fragments: measured, 3.8-4.0 GB peak
    RSS for four steps on the widest batches instead of 1.9 GB. The price is a page fault per
    4 KB of every activation: 90 s of PP-OCRv5_mobile_rec training on 2 cores did 28 steps with it
    (1.2 GB peak, 111 s system time) against 83 without (2.8 GB peak, 6 s system time); a fixed
    8 MiB threshold kept the speed (79 steps) and the memory (2.6 GB). No-op without glibc."""
    from ocrfleet import glibc

    return glibc.mmap_threshold(MMAP_THRESHOLD)


def _device(name: str):
    import torch

    kind, _, idx = (name or "cpu").strip().lower().partition(":")
    if kind == "cpu" and not idx:
        return torch.device("cpu")
    if kind in ("gpu", "cuda") and (not idx or idx.isdigit()):
        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {name!r}: this PyTorch has no usable CUDA GPU")
        return torch.device(f"cuda:{int(idx or 0)}")
    raise BackendUnavailableError(f"unsupported device {name!r}; use 'cpu', 'gpu' or 'gpu:N'")


def _load_lines(read: list, charset: Charset, shape, say, what: str, min_usable: float, width_scale: float):
    lines, problems, total, missing = [], [], 0, Counter()
    for got, bad in read:
        total += len(got) + len(bad)
        usable, refused, lack = check_lines(got, charset, shape, width_scale)
        lines += usable
        problems += bad + refused
        missing.update(lack)
    for msg in problems:
        say(f"skipped {msg}")
    if not lines or len(lines) < min_usable * total:
        raise InvalidInputError(f"{what}: only {len(lines)} of {total} labelled lines are usable "
                                f"(need {min_usable:.0%}); see the messages above")
    return lines, problems, total, missing


def _without(train: list, other: list, what: str, say) -> list:
    """``train`` less the lines whose image is also in ``other`` (each skip said)."""
    seen = {ln.image_path.resolve() for ln in other}
    for ln in train:
        if ln.image_path.resolve() in seen:
            say(f"skipped {ln.where}: image {ln.rel!r} is also in the {what} labels")
    return [ln for ln in train if ln.image_path.resolve() not in seen]


def finetune(labels, output, should_stop=None, **kwargs) -> dict:
    """Fine-tune a recognition model on labelled lines; write a model directory to ``output``.

    ``labels``: one label file or a list (``image_path<TAB>text``, the ``ocrfleet eval`` format).
    Keyword arguments are the fields of ``ocrfleet.finetune.options.Options`` (``model_name``,
    ``model_dir``, ``val``, ``epochs``, ``max_minutes``, ``batch_size``, ``lr``, ``device``,
    ``resume``, ``force``, ...). Returns the run's report (also written to ``output/finetune.json``).
    ``should_stop``: a callable asked every few steps (a fleet job's cancel flag); when it answers
    true the run ends with ``FinetuneCancelled`` and nothing is exported.
    """
    opts = Options(labels=labels, output=output, **kwargs)
    say = _say(opts)
    t_start = time.monotonic()
    from ocrfleet.recognition import sources

    # torch otherwise leaves /tmp/torchinductor_<user> behind: keep its cache with ocrfleet's
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(sources.cache_root() / "torchinductor"))
    try:
        import torch
    except ImportError as exc:
        raise ModelUnavailableError(f"fine-tuning needs PyTorch: pip install 'ocrfleet[torch]' ({exc})") from exc
    from ocrfleet.finetune import export, graph
    from ocrfleet.finetune.train import Trainer, better

    read_train = [read_label_file(p) for p in opts.labels]  # a missing file fails before any work
    read_val = [read_label_file(p) for p in opts.val]
    read_keep = [read_label_file(p) for p in opts.keep]
    out = _check_output(opts)
    device = _device(opts.device)
    files = sources.resolve(opts.model_name, opts.model_dir)
    if not files.characters:
        raise ModelUnavailableError(f"model {files.name!r} has no character dictionary; cannot fine-tune it")
    if device.type == "cpu" and opts.low_memory:
        _bound_heap()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(min(opts.threads or cores, cores))
    torch.manual_seed(opts.seed)

    tg = graph.load(files)
    shape = files.input_shape
    with torch.no_grad():
        probe = tg.module(torch.zeros((1, *shape)))
    charset = Charset(files.characters, int(probe.shape[2]))

    widest = max(scale.candidates(opts.width_scale))  # a line that fits at no scale tried is refused now
    train, problems, total, missing = _load_lines(read_train, charset, shape, say, "training labels",
                                                  opts.min_usable, widest)
    if opts.val:
        val, vproblems, _, vmissing = _load_lines(read_val, charset, shape, say, "validation labels",
                                                  opts.min_usable, widest)
        problems += vproblems
        missing.update(vmissing)
        train = _without(train, val, "validation", say)
    else:
        train, val = split(train, opts.val_fraction)
        say(f"no validation labels given: holding out {len(val)} of {len(train) + len(val)} lines "
            f"(val_fraction {opts.val_fraction}, chosen by a hash of the image path)"
            + ("; without validation lines the last epoch is exported" if not val else ""))
    keep = []
    if opts.keep:
        keep, kproblems, _, kmissing = _load_lines(read_keep, charset, shape, say, "keep labels", opts.min_usable,
                                                   widest)
        problems += kproblems
        missing.update(kmissing)
        train = _without(train, keep, "keep", say)
    if not train:
        raise InvalidInputError("no training lines left after holding out the validation and keep lines")
    _prepare_output(opts, out)
    if missing:
        ranked = sorted(missing.items(), key=lambda kv: -kv[1])
        say(f"{len(ranked)} characters missing from the model's dictionary (their lines were refused): "
            + ", ".join(f"{ch!r} x{n}" for ch, n in ranked[:MISSING_SHOWN])
            + (f", and {len(ranked) - MISSING_SHOWN} more (all in the report's missing_characters)"
               if len(ranked) > MISSING_SHOWN else ""))

    trainer = Trainer(tg, charset, shape, opts, device, should_stop)
    base = files.width_scale  # the stock model as the user serves it reads lines stretched this much
    stock = keep_before = None
    if keep:  # the stock model, before any resumed weights are loaded
        stock, kb = trainer.weights(), scale.score_at(trainer, keep, base)
        keep_before = {k: kb[k] for k in ("lines", "accuracy", "cer")}
        say(f"stock model on {len(keep)} keep lines: exact {kb['accuracy']:.1%}, CER {kb['cer']:.2%}")
    last_pt = out / CHECKPOINTS / "last.pt"
    ck = torch.load(last_pt, map_location=device, weights_only=False) if opts.resume else None
    if ck:  # the scale the run started with (1.0 for a checkpoint from before width scales)
        width_scale, scales_tried = ck.get("width_scale", 1.0), []
        if opts.width_scale != "auto" and float(opts.width_scale) != width_scale:
            raise InvalidInputError(
                f"finetune: the run in {str(out)!r} was started at width scale {width_scale:g}, not "
                f"{float(opts.width_scale):g}: resume with width_scale {width_scale:g} (or auto), or start "
                "again with force")
        say(f"resuming at the run's width scale {width_scale:g}")
    else:
        width_scale, scales_tried = scale.choose(trainer, val or train[:256], opts.width_scale, say, keep,
                                                 keep_before, opts.max_forgetting, base)
    for lines in (train, val, keep):
        kept, refused = scale.apply(lines, width_scale, charset, shape)
        for msg in refused:
            say(f"skipped {msg}")
        problems += refused
        lines[:] = kept
    if not train:
        raise InvalidInputError(f"no training line fits the model at width scale {width_scale:g}")
    steps_per_epoch = len(batches(train, opts.batch_size, random.Random(0), shape, opts.max_columns))
    trainer.plan(steps_per_epoch)
    state = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "stale": 0}
    if ck:
        trainer.module.load_state_dict(ck["model"])
        trainer.optimizer.load_state_dict(ck["optimizer"])
        trainer.step, trainer.seconds_before = ck["step"], ck["seconds"]
        state = ck["state"]
        best_weights = torch.load(out / CHECKPOINTS / "best.pt", map_location="cpu", weights_only=False)
        say(f"resumed from {last_pt} after epoch {state['epoch']} (step {trainer.step})")
    else:
        best_weights = trainer.weights()
        torch.save(best_weights, out / CHECKPOINTS / "best.pt")
        if val:  # "before": the stock model as served; "best" to beat: the stock weights at the chosen scale
            before = scale.score_at(trainer, val, base)
            start = before if width_scale == base else trainer.evaluate(val)
            state["before"] = {k: before[k] for k in ("lines", "accuracy", "cer")}
            state["best"] = {k: start[k] for k in ("lines", "accuracy", "cer")}
            say(f"stock model on {len(val)} val lines: exact {before['accuracy']:.1%}, CER {before['cer']:.2%}"
                + (f" (at width scale {width_scale:g}: {start['accuracy']:.1%}, {start['cer']:.2%})"
                   if width_scale != base else ""))
    say(f"training on {len(train)} lines, {steps_per_epoch} steps/epoch, up to {opts.epochs} epochs"
        + (f" or {opts.max_minutes} min" if opts.max_minutes else "") + f", device {device}, "
        f"{torch.get_num_threads()} threads")

    stop = "epochs"
    while state["epoch"] < opts.epochs:
        if trainer.out_of_time():
            stop = "max_minutes"
            break
        epoch = state["epoch"] + 1
        loss, cut = trainer.epoch(train, epoch)
        rec = {"epoch": epoch, "loss": loss, "step": trainer.step, "seconds": round(trainer.elapsed(), 1),
               "partial": cut}
        if val:
            m = trainer.evaluate(val)
            rec.update(val_accuracy=m["accuracy"], val_cer=m["cer"])
            improved = better(m, state["best"])
        else:
            improved = True
        if improved:
            state.update(best={"lines": len(val), "accuracy": rec.get("val_accuracy"), "cer": rec.get("val_cer")},
                         best_epoch=epoch, stale=0)
            best_weights = trainer.weights()
            torch.save(best_weights, out / CHECKPOINTS / "best.pt")
        else:
            state["stale"] += 1
        state["history"].append(rec)
        state["epoch"] = epoch
        val_text = (f", val exact {rec['val_accuracy']:.1%} CER {rec['val_cer']:.2%}" if val else "")
        say(f"epoch {epoch}: loss {loss:.3f}{val_text}{' (best)' if improved else ''}")
        torch.save({"model": trainer.module.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                    "step": trainer.step, "seconds": trainer.elapsed(), "state": state, "width_scale": width_scale,
                    "options": opts.to_dict()}, last_pt.with_suffix(".tmp"))
        os.replace(last_pt.with_suffix(".tmp"), last_pt)
        if cut:
            stop = "max_minutes"
            break
        if val and state["stale"] >= opts.patience:
            stop = "early_stopping"
            say(f"no better val score for {opts.patience} epochs: stopping early")
            break
    if stop == "max_minutes":
        say(f"time limit of {opts.max_minutes} min reached after {state['epoch']} epochs: exporting the best "
            f"checkpoint (epoch {state['best_epoch']})")

    if val and state["best_epoch"] == 0:
        say("no epoch beat the stock model on the validation lines: exporting the stock weights")
    trainer.module.load_state_dict(best_weights)
    blended = None
    if keep:
        from ocrfleet.finetune import blend

        blended = blend.choose(trainer, stock, best_weights, keep, keep_before, opts.max_forgetting, val, say)
    if blended and blended["alpha"] == 0:  # the stock weights: served as the stock model is
        width_scale = base
        if state.get("before"):
            blended["val_after"] = {k: state["before"][k] for k in ("accuracy", "cer")}
    provenance = {"base_model": files.name, "base_source": files.source, "best_epoch": state["best_epoch"],
                  "train_lines": len(train), "val_lines": len(val), "width_scale": width_scale,
                  **({"blend_alpha": blended["alpha"]} if blended else {})}
    export.write_model_dir(out, graph.export(tg), files.name, files.characters, shape, provenance, width_scale)
    check_on = val or train[:64]  # the export stretches the source images itself
    parity = export.check_parity(out, files.name, [ln.source for ln in check_on],
                                 trainer.predict([stretch(ln.source, width_scale) for ln in check_on]))
    say(f"exported {out / export.MODEL_FILE}: ONNX Runtime reads all {parity['lines']} check lines as the "
        "torch model does")
    if not opts.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    report = {
        "output": str(out), "model_name": files.name, "base_source": files.source,
        "labelled_lines": total, "train_lines": len(train), "val_lines": len(val),
        "refused_lines": len(problems), "problems": problems, "missing_characters": dict(missing),
        "before": state.get("before"), "best": state["best"], "best_epoch": state["best_epoch"],
        "keep_lines": len(keep), "blend": blended, "width_scale": width_scale, "width_scales_tried": scales_tried,
        "epochs_run": state["epoch"], "stopped_by": stop, "history": state["history"],
        "parity": parity, "wall_seconds": round(time.monotonic() - t_start, 1),
        "train_seconds": round(trainer.elapsed(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "options": opts.to_dict(),
    }
    export.write_report(out, report)
    return report
