"""Fast checks without servers: crops, settings, Celery config, CLI wiring."""
from __future__ import annotations

import argparse
import os
import json

import cv2
import numpy as np
import pytest

from ocrfleet.config.celery import celery_config
from ocrfleet.config.settings import load_settings, to_env
from ocrfleet.errors import InvalidInputError
from ocrfleet.recognition import crop

from .conftest import DATA


def test_order_quad_any_vertex_order():
    tl, tr, br, bl = [10, 5], [110, 8], [108, 40], [9, 37]
    want = np.float32([tl, tr, br, bl])
    for quad in ([tl, tr, br, bl], [bl, br, tr, tl], [br, bl, tl, tr], [tr, tl, bl, br]):
        np.testing.assert_array_equal(crop.order_quad(np.float32(quad)), want)


def test_rotate_crop_matches_paddleocr_formula():
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)
    quad = [[20, 30], [220, 40], [218, 80], [18, 70]]
    out = crop.crop_region(img, quad)
    pts = np.float32(quad)
    w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    m = cv2.getPerspectiveTransform(pts, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    ref = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out, ref)
    flat = crop.crop_region(img, [v for p in quad for v in p])
    np.testing.assert_array_equal(flat, ref)


def test_tall_crops_are_rotated_and_boxes_clipped():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :10] = 255
    tall = crop.crop_region(img, [0, 0, 20, 90])  # 20 wide, 90 tall
    assert tall.shape[:2] == (20, 90)
    np.testing.assert_array_equal(tall, np.rot90(img[0:90, 0:20]))
    assert crop.crop_region(img, [-10, -10, 50, 30]).shape[:2] == (30, 50)
    with pytest.raises(InvalidInputError):
        crop.crop_region(img, [200, 200, 300, 300])
    with pytest.raises(InvalidInputError):
        crop.crop_region(img, [[1, 1], [1, 1], [1, 1], [1, 1]])
    with pytest.raises(InvalidInputError):
        crop.crop_region(img, [1, 2, 3])


def test_receipt_quads_give_text_lines():
    ann = json.loads((DATA / "receipts/wildreceipt/annotations.jsonl").read_text().splitlines()[0])
    img = cv2.imread(str(DATA / "receipts/wildreceipt" / ann["file_name"]))
    crops = crop.crop_regions(img, [a["box"] for a in ann["annotations"]])
    assert all(c.shape[1] >= c.shape[0] * 0.6 for c in crops)  # upright, wider than tall mostly
    assert crops[0].shape[:2] == (86, 387)  # SAFEWAY: 937-550 wide, 190-104 tall


def test_settings_env_file_and_secrets(tmp_path):
    cfg = tmp_path / "fleet.toml"
    cfg.write_text('[ocrfleet]\nresults_bucket = "from-file"\nmodel_cache_size = 5\n'
                   'allowed_http_hosts = ["a.example", "b.example"]\n')
    env = {"OCRFLEET_CONFIG": str(cfg), "OCRFLEET_MODEL_CACHE_SIZE": "3",
           "OCRFLEET_WEBHOOK_SECRET": "s3cret", "OCRFLEET_BROKER_URL": "redis://u:pw@h:6379/0",
           "OCRFLEET_WORKER_MODELS": "A,B"}
    s = load_settings(env=env)
    assert s.results_bucket == "from-file" and s.model_cache_size == 3
    assert s.allowed_http_hosts == ["a.example", "b.example"] and s.worker_models == ["A", "B"]
    pub = json.dumps(s.public())
    assert "s3cret" not in pub and "pw@" not in pub
    assert load_settings(env=to_env(s)) == s
    with pytest.raises(ValueError, match="unknown"):
        load_settings(env={}, no_such_setting=1)


def test_celery_config_follows_infra_notes():
    s = load_settings(env={}, visibility_timeout=7200, task_time_limit=1800, queue_prefix="x.")
    c = celery_config(s)
    assert c["task_acks_late"] and c["task_reject_on_worker_lost"]
    assert c["worker_prefetch_multiplier"] == 1 and c["worker_disable_prefetch"]
    assert c["task_time_limit"] < c["broker_transport_options"]["visibility_timeout"]
    assert c["result_backend_transport_options"]["visibility_timeout"] == 7200
    assert c["broker_transport_options"]["unacked_restore_throttle"] == 1
    assert c["accept_content"] == ["json"] and c["worker_proc_alive_timeout"] >= 60
    assert {q.name for q in c["task_queues"]} == {"x.ocr.cpu", "x.ocr.gpu", "x.ocr.any", "x.ocr.webhooks", "x.ocr.finetune"}


def test_worker_command_line(capsys, monkeypatch):
    from ocrfleet import fleet_cli

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    parser = argparse.ArgumentParser()
    fleet_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["worker", "--device", "gpu:1", "--models", "PP-OCRv5_mobile_rec"])
    argv, env = fleet_cli.worker_argv(load_settings(env={}), args)
    assert env == {"OCRFLEET_WORKER_DEVICE": "gpu:0", "OCRFLEET_WORKER_MODELS": "PP-OCRv5_mobile_rec",
                   "CUDA_VISIBLE_DEVICES": "1", "OCRFLEET_TASK_EVENTS": "1"}
    assert argv[argv.index("-Q") + 1] == "ocr.gpu,ocr.any,ocr.webhooks" and "-E" in argv
    # events off (no Flower): no -E, and the app's config agrees through the environment
    argv, env = fleet_cli.worker_argv(load_settings(env={}), parser.parse_args(
        ["worker", "--no-events", "--pool", "threads", "--cpu-threads", "2"]))
    assert "-E" not in argv and env["OCRFLEET_TASK_EVENTS"] == "0" and env["OCRFLEET_CPU_THREADS"] == "2"
    settings = load_settings(env=env)
    assert settings.task_events is False and settings.cpu_threads == 2
    assert celery_config(settings)["worker_send_task_events"] is False
    argv, env = fleet_cli.worker_argv(load_settings(env={}), parser.parse_args(
        ["worker", "--device", "gpu:1", "--models", "PP-OCRv5_mobile_rec"]))
    assert argv[argv.index("-c") + 1] == "1" and "prefork" in argv
    args = parser.parse_args(["worker", "--device", "cpu", "--autoscale", "4,1", "--queues", "ocr.cpu"])
    argv, _ = fleet_cli.worker_argv(load_settings(env={}), args)
    assert argv[argv.index("--autoscale") + 1] == "4,1" and "-c" not in argv
    argv, env = fleet_cli.worker_argv(load_settings(env={}), parser.parse_args(["worker", "--finetune"]))
    assert argv[argv.index("-Q") + 1] == "ocr.finetune,ocr.webhooks" and argv[argv.index("-c") + 1] == "1"
    assert env["OCRFLEET_CPU_THREADS"] == str(len(os.sched_getaffinity(0)))  # training uses every core
    for cmd in (["submit", "s3://b/k.png", "--wait"], ["webhooks", "dead-letter", "list"],
                ["submit-finetune", "--labels", "s3://b/t.tsv", "--output", "s3://m/o"],
                ["submit-finetune", "--labels", "s3://b/t.tsv", "--output", "s3://m/o", "--keep", "s3://b/k.tsv",
                 "--max-forgetting", "0.5", "--backbone-lr-scale", "0", "--augment", "0.5", "--patience", "3",
                 "--width-scale", "1.5"],
                ["webhooks", "dead-letter", "replay", "--all"]):
        assert callable(parser.parse_args(cmd).func)


def test_gpu_workers_build_tensorrt_fp16_engines_by_default():
    """What a GPU worker asks the engine for (no GPU here: the options, not a GPU run)."""
    from ocrfleet import fleet_cli
    from ocrfleet.workers.models import engine_options

    gpu = engine_options(load_settings(env={}, worker_device="gpu:1"))
    assert (gpu.device, gpu.device_id, gpu.use_tensorrt, gpu.precision) == ("gpu", 1, True, "fp16")
    cpu = engine_options(load_settings(env={}, worker_device="cpu", cpu_threads=2))
    assert (cpu.device, cpu.use_tensorrt, cpu.precision, cpu.cpu_threads) == ("cpu", False, "fp32", 2)
    parser = argparse.ArgumentParser()
    fleet_cli.register(parser.add_subparsers(dest="command"))
    _, env = fleet_cli.worker_argv(load_settings(env={}), parser.parse_args(
        ["worker", "--device", "gpu:0", "--no-tensorrt", "--precision", "fp32"]))
    plain = engine_options(load_settings(env=env))
    assert (plain.device, plain.use_tensorrt, plain.precision) == ("gpu", False, "fp32")
    with pytest.raises(ValueError, match="gpu_precision"):
        engine_options(load_settings(env={}, worker_device="gpu:0", gpu_precision="int4"))
