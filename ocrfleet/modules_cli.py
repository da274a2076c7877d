"""``ocrfleet text_detection`` and ``ocrfleet textline_orientation_classification``: the
PaddleOCR CLI sub-commands of the same names, with the same flags (plus ``--backend``,
``--batch_size`` and ``--on_error`` as for ``text_recognition``)."""
from __future__ import annotations

from ocrfleet.cli import add_engine_args


def _common(p) -> None:
    p.add_argument("-i", "--input", required=True, help="image, PDF, directory or URL")
    p.add_argument("--save_path", default=None, help="folder for <name>_res.json and <name>_res.png")
    p.add_argument("--model_name", default=None)
    p.add_argument("--model_dir", default=None)
    p.add_argument("--device", default=None, help="cpu, gpu, gpu:0")
    add_engine_args(p)
    p.add_argument("--batch_size", type=int, default=1)


def register(sub) -> None:
    p = sub.add_parser("text_detection", help="detect text lines on pages (as `paddleocr text_detection`)")
    _common(p)
    p.add_argument("--limit_side_len", type=int, default=None)
    p.add_argument("--limit_type", default=None, choices=["max", "min", "resize_long"])
    p.add_argument("--thresh", type=float, default=None)
    p.add_argument("--box_thresh", type=float, default=None)
    p.add_argument("--unclip_ratio", type=float, default=None)
    p.add_argument("--input_shape", nargs=3, type=int, metavar=("C", "H", "W"), default=None)
    p.set_defaults(func=run_text_detection)

    p = sub.add_parser("textline_orientation_classification",
                       help="0 / 180 degree text-line orientation (as `paddleocr textline_orientation_classification`)")
    _common(p)
    p.add_argument("--topk", type=int, default=None)
    p.set_defaults(func=run_textline_orientation)


def _engine_args(args) -> dict:
    return dict(model_name=args.model_name, model_dir=args.model_dir, device=args.device,
                enable_hpi=args.enable_hpi, use_tensorrt=args.use_tensorrt, precision=args.precision,
                enable_mkldnn=args.enable_mkldnn, mkldnn_cache_capacity=args.mkldnn_cache_capacity,
                cpu_threads=args.cpu_threads, backend=args.backend, on_error=args.on_error)


def _emit(model, results, save_path) -> int:
    for res in results:
        res.print()
        if save_path:
            res.save_to_json(save_path)
            res.save_to_img(save_path)
    return 1 if model.errors else 0


def run_text_detection(args) -> int:
    from ocrfleet.detection.api import TextDetection

    model = TextDetection(**_engine_args(args), input_shape=args.input_shape, limit_side_len=args.limit_side_len,
                          limit_type=args.limit_type, thresh=args.thresh, box_thresh=args.box_thresh,
                          unclip_ratio=args.unclip_ratio)
    return _emit(model, model.predict_iter(args.input, batch_size=args.batch_size), args.save_path)


def run_textline_orientation(args) -> int:
    from ocrfleet.textline_orientation.api import TextLineOrientationClassification

    model = TextLineOrientationClassification(**_engine_args(args), topk=args.topk)
    return _emit(model, model.predict_iter(args.input, batch_size=args.batch_size), args.save_path)
