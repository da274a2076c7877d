"""Writing the fine-tuned model directory and checking it against the torch model.

The directory holds ``inference.onnx`` (the served graph, new weights) and a PaddleX-style
``inference.yml`` (``Global.model_name``, ``PreProcess`` with the input shape and, when it is not 1,
the ``width_scale`` the lines were trained at,
``PostProcess.character_dict``), which is what ``TextRecognition(model_dir=...)``,
``ocrfleet eval --model_dir`` and the workers read, plus ``finetune.json`` (the run's report).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import yaml

from ocrfleet.errors import OcrFleetError

MODEL_FILE = "inference.onnx"


class ExportMismatchError(OcrFleetError):
    """The exported ONNX model does not read the lines as the trained torch model does."""

    code = "EXPORT_MISMATCH"


def inference_yml(model_name: str, characters: list[str], shape, provenance: dict, width_scale: float = 1.0
                  ) -> dict:
    resize = {"image_shape": [int(v) for v in shape]}
    if width_scale != 1:  # ocrfleet's extension: lines are stretched this much first (finetune/scale.py)
        resize["width_scale"] = float(width_scale)
    return {
        "Global": {"model_name": model_name},
        "PreProcess": {"transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
            {"RecResizeImg": resize},
            {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
        ]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": list(characters)},
        "Finetune": provenance,
    }


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_model_dir(out: Path, model: onnx.ModelProto, model_name: str, characters: list[str], shape,
                    provenance: dict, width_scale: float = 1.0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / MODEL_FILE, model.SerializeToString())
    yml = yaml.safe_dump(inference_yml(model_name, characters, shape, provenance, width_scale), allow_unicode=True,
                         sort_keys=False)
    _atomic_write(out / "inference.yml", yml.encode("utf-8"))
    return out / MODEL_FILE


def write_report(out: Path, report: dict) -> None:
    _atomic_write(out / "finetune.json", json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))


def check_parity(out: Path, model_name: str, images, torch_texts: list[str]) -> dict:
    """Load ``out`` as any user would (ONNX Runtime) and compare its text with the torch model's."""
    from ocrfleet.recognition import sources
    from ocrfleet.recognition.backends.base import EngineOptions
    from ocrfleet.recognition.engine import Recognizer

    files = sources.resolve(model_name, out)
    rec = Recognizer(files, EngineOptions(device="cpu", cpu_threads=len(os.sched_getaffinity(0))),
                     backend="onnxruntime")
    got = [t for t, _ in rec.recognize(list(images), batch_size=16, pack="exact")]
    diff = [i for i, (a, b) in enumerate(zip(got, torch_texts)) if a != b]
    result = {"lines": len(got), "same_text": len(got) - len(diff), "backend": rec.backend_name}
    if diff:
        examples = "; ".join(f"torch {torch_texts[i]!r} vs onnxruntime {got[i]!r}" for i in diff[:3])
        raise ExportMismatchError(
            f"the exported model {str(out / MODEL_FILE)!r} reads {len(diff)} of {len(got)} lines differently "
            f"from the trained torch model ({examples})")
    return result
