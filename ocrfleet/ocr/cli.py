"""``ocrfleet ocr -i INPUT``: the OCR pipeline on pages, with ``paddleocr ocr``'s flags."""
from __future__ import annotations

import argparse

from ocrfleet.cli import _bool, add_engine_args


# (flag, type) of every pipeline argument `paddleocr ocr` accepts
PIPELINE_FLAGS = [
    ("doc_orientation_classify_model_name", str), ("doc_orientation_classify_model_dir", str),
    ("doc_unwarping_model_name", str), ("doc_unwarping_model_dir", str),
    ("text_detection_model_name", str), ("text_detection_model_dir", str),
    ("textline_orientation_model_name", str), ("textline_orientation_model_dir", str),
    ("textline_orientation_batch_size", int),
    ("text_recognition_model_name", str), ("text_recognition_model_dir", str),
    ("text_recognition_batch_size", int),
    ("use_doc_orientation_classify", _bool), ("use_doc_unwarping", _bool), ("use_textline_orientation", _bool),
    ("text_det_limit_side_len", int), ("text_det_limit_type", str), ("text_det_thresh", float),
    ("text_det_box_thresh", float), ("text_det_unclip_ratio", float),
    ("text_rec_score_thresh", float), ("return_word_box", _bool), ("lang", str),
]
# PaddleOCR 2.x names that `paddleocr ocr` still accepts
DEPRECATED = {"det_model_dir": "text_detection_model_dir", "det_limit_side_len": "text_det_limit_side_len",
              "det_limit_type": "text_det_limit_type", "det_db_thresh": "text_det_thresh",
              "det_db_box_thresh": "text_det_box_thresh", "det_db_unclip_ratio": "text_det_unclip_ratio",
              "rec_model_dir": "text_recognition_model_dir", "rec_batch_num": "text_recognition_batch_size",
              "use_angle_cls": "use_textline_orientation", "cls_model_dir": "textline_orientation_model_dir",
              "cls_batch_num": "textline_orientation_batch_size"}


def register(sub) -> argparse.ArgumentParser:
    types = dict(PIPELINE_FLAGS)
    p = sub.add_parser("ocr", help="detect and recognise every text line of pages (as `paddleocr ocr`)")
    p.add_argument("-i", "--input", required=True, help="image, PDF, directory or URL")
    p.add_argument("--save_path", default=None, help="folder for <name>_res.json and <name>_ocr_res_img.<ext>")
    for name, kind in PIPELINE_FLAGS:
        p.add_argument(f"--{name}", type=kind, default=None)
    p.add_argument("--text_det_input_shape", nargs=3, type=int, metavar=("C", "H", "W"), default=None)
    p.add_argument("--text_rec_input_shape", nargs=3, type=int, metavar=("C", "H", "W"), default=None)
    p.add_argument("--ocr_version", default=None, choices=["PP-OCRv3", "PP-OCRv4", "PP-OCRv5", "PP-OCRv6"])
    for old, new in DEPRECATED.items():
        p.add_argument(f"--{old}", dest=new, type=types[new], default=None, help=f"deprecated: --{new}")
    p.add_argument("--device", default=None, help="cpu, gpu, gpu:0")
    add_engine_args(p)
    p.add_argument("--preset", default=None, choices=["fast"],
                   help="fast: faster-paddle's detector size, DB thresholds and (PP-OCRv6 tiny / small) recognition "
                        "padding, one rec engine per core (docs/pages.md)")
    p.add_argument("--trim_margins", type=_bool, default=None,
                   help="true / false: detect on the page without its blank margins (default: true with "
                        "--preset fast on a CPU)")
    p.add_argument("--reading_order", default=None, choices=["columns"],
                   help="columns: read multi-column pages column by column (default: PaddleOCR's order)")
    p.add_argument("--text", action="store_true", help="print each page's text instead of its result")
    p.set_defaults(func=run_ocr)
    return p


def run_ocr(args) -> int:
    from ocrfleet.ocr.pipeline import PaddleOCR

    kwargs = {name: getattr(args, name) for name, _ in PIPELINE_FLAGS}
    for name in ("text_det_input_shape", "text_rec_input_shape"):
        kwargs[name] = tuple(getattr(args, name)) if getattr(args, name) else None
    ocr = PaddleOCR(**kwargs, ocr_version=args.ocr_version, device=args.device, enable_hpi=args.enable_hpi,
                    use_tensorrt=args.use_tensorrt, precision=args.precision, enable_mkldnn=args.enable_mkldnn,
                    mkldnn_cache_capacity=args.mkldnn_cache_capacity, cpu_threads=args.cpu_threads,
                    backend=args.backend, on_error=args.on_error, preset=args.preset,
                    reading_order=args.reading_order, trim_margins=args.trim_margins)
    for res in ocr.predict_iter(args.input):
        if args.text:
            print(res.text)
        else:
            res.print(json_format=True)
        if args.save_path:
            res.save_to_json(args.save_path)
            res.save_to_img(args.save_path)
    return 1 if ocr.errors else 0
