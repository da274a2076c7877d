"""Parsing PaddleOCR device strings: "cpu", "gpu", "gpu:0", "gpu:0,1"; None = GPU 0 if present."""
from __future__ import annotations

import functools
import glob
import importlib.util

from ocrfleet.errors import BackendUnavailableError


def gpu_count() -> int:
    if not glob.glob("/dev/nvidia[0-9]*"):
        return 0
    if importlib.util.find_spec("paddle") is not None:
        import paddle

        if paddle.device.is_compiled_with_cuda():
            return paddle.device.cuda.device_count()
    try:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return len(glob.glob("/dev/nvidia[0-9]*"))
    except ImportError:
        pass
    if importlib.util.find_spec("torch") is not None:  # the torch backend ([torch] extra)
        import torch

        return torch.cuda.device_count()
    return 0


def parse_device(device: str | None) -> list[tuple[str, int]]:
    """[(kind, id), ...] with kind "cpu" or "gpu"."""
    if device is None:
        return [("gpu", 0)] if gpu_count() > 0 else [("cpu", 0)]
    text = str(device).strip().lower()
    kind, _, ids = text.partition(":")
    if kind == "cpu":
        return [("cpu", 0)]
    if kind != "gpu":
        raise BackendUnavailableError(f"unsupported device {device!r}; use 'cpu', 'gpu', 'gpu:0' or 'gpu:0,1'")
    try:
        id_list = [int(i) for i in ids.split(",")] if ids else [0]
    except ValueError as exc:
        raise BackendUnavailableError(f"bad device string {device!r}") from exc
    return [("gpu", i) for i in id_list]


def single_device(device: str | None) -> tuple[str, int]:
    """The one (kind, id) of a device string that must name one device (a worker, ``eval``)."""
    devices = parse_device(device)
    if len(devices) != 1:
        raise BackendUnavailableError(f"{device!r} names {len(devices)} devices; one is needed here "
                                      "(e.g. 'gpu:1'; start one worker per GPU)")
    return devices[0]


@functools.lru_cache(maxsize=None)
def cpuinfo(field: str) -> str:
    """A field of the first processor in /proc/cpuinfo ("model name", "vendor_id"...; "" if
    unknown). Read once per field: every model load asks (backend order, hpi's machine key)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_vendor() -> str:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD", ...; "" if unknown)."""
    return cpuinfo("vendor_id")
