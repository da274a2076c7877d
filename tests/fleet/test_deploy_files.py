"""docker/ cannot be built here (no Docker engine): check what can be checked."""
from __future__ import annotations

import re

import redis
import yaml

from ocrfleet.testing.servers import REPO

DOCKER = REPO / "docker"


def test_compose_parses_and_has_the_fleet():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert {"redis", "s3", "worker-cpu", "worker-gpu", "flower"} <= set(compose["services"])
    for name in ("worker-cpu", "worker-gpu"):
        svc = compose["services"][name]
        assert svc["environment"]["OCRFLEET_BROKER_URL"].startswith("redis://redis")
        assert (REPO / svc["build"]["dockerfile"]).exists()
    gpu = compose["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "noeviction" in compose["services"]["redis"]["command"]
    flower = compose["services"]["flower"]  # the fleet's app and settings, not a bare broker URL
    assert flower["environment"]["OCRFLEET_RESULT_BACKEND"] == compose["services"]["worker-cpu"]["environment"][
        "OCRFLEET_RESULT_BACKEND"] and flower["entrypoint"][:3] == ["celery", "-A", "ocrfleet.workers.app"]


def test_dockerfiles_run_the_fleet_cli():
    for name in ("Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.gpu-torch"):
        text = (DOCKER / name).read_text()
        assert re.search(r'ENTRYPOINT \["python", "-m", "ocrfleet.fleet_cli", "worker"\]', text)
        assert "REMAP_SIGTERM=SIGQUIT" in text and "USER ocr" in text
    assert "onnxruntime-gpu" in (DOCKER / "Dockerfile.gpu").read_text()


def test_torch_gpu_dockerfile_matches_the_torch_pin():
    """The PyTorch CUDA image: its base carries exactly the torch the [torch] extra pins (pip must
    not swap it for another build), and the worker is a threads pool (cross-job batching)."""
    import tomllib

    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = pins["torch"]
    version = pin.split("==")[1]
    text = (DOCKER / "Dockerfile.gpu-torch").read_text()
    base = re.search(r"ARG PYTORCH_IMAGE=pytorch/pytorch:(\S+)", text).group(1)
    assert base.startswith(f"{version}-cuda") and base.endswith("-runtime"), base
    assert f"!= '{version}'" in text  # the build fails on a base with another torch
    assert '".[weights,torch]"' in text and "pip install \"onnxruntime-gpu" not in text
    cmd = re.search(r"^CMD (.+)$", text, re.M).group(1)
    assert '"--pool", "threads"' in cmd and '"--device", "gpu:0"' in cmd


def test_keda_triggers_match_kombu_priority_lists(producer, settings, inputs):
    obj = yaml.safe_load((DOCKER / "k8s/keda-scaledobject.yaml").read_text())
    names = {t["metadata"]["listName"] for t in obj["spec"]["triggers"]}
    assert {"ocr.cpu", "ocr.cpu:3", "ocr.cpu:6", "ocr.cpu:9"} <= names
    # the real list names kombu writes for each priority (gpu queue: no worker consumes it here)
    r = redis.Redis.from_url(settings.broker_url)
    for prio, suffix in ((0, ""), ("normal", ":3"), (6, ":6"), ("bulk", ":9")):
        producer.submit([inputs["lines"][0]], device="gpu", priority=prio)
        assert r.llen(settings.queue("gpu") + suffix) >= 1, (prio, r.keys("*ocr.gpu*"))
