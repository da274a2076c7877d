"""Paddle-format models as ONNX for the backends that need it: converted once with
paddle2onnx and cached beside the other cached models, keyed by the weights' hash."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition.sources import ModelFiles, cache_root


OPSET = 14


def _fix_scalar_concat(path: str) -> None:
    """paddle2onnx 2.1 emits Concat nodes fed by rank-0 tensors (from PIR's scalar shapes),
    which ONNX Runtime rejects; give each such input the rank 1 Concat needs."""
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np

    model = onnx.load(path)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    rank = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in inferred.graph.value_info
            if vi.type.tensor_type.HasField("shape")}
    axes = "ocrfleet_unsqueeze_axes0"
    nodes, changed = [], False
    for node in model.graph.node:
        if node.op_type == "Concat":
            for k, name in enumerate(node.input):
                if rank.get(name) == 0:
                    out = f"{name}__rank1"
                    nodes.append(helper.make_node("Unsqueeze", [name, axes], [out], name=f"{out}_unsq"))
                    node.input[k] = out
                    changed = True
        nodes.append(node)
    if not changed:
        return
    model.graph.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), axes))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, path)


def _digest(files: ModelFiles) -> str:
    from ocrfleet.recognition.hub import file_digest

    return file_digest([files.model_file, files.params_file])[:16]


def onnx_path(files: ModelFiles) -> Path:
    if files.fmt == "onnx":
        return files.model_file
    out = cache_root() / "onnx" / f"{files.name}-{_digest(files)}.onnx"
    if out.is_file():
        return out
    failed = out.with_suffix(".failed")  # a model paddle2onnx cannot convert is not retried
    if failed.is_file():
        raise ModelUnavailableError(failed.read_text(encoding="utf-8", errors="replace"))
    out.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("paddle2onnx") is None:
        raise ModelUnavailableError(
            f"{files.name} is in Paddle format; converting it to ONNX needs paddle2onnx and paddlepaddle, "
            f"the `paddle` extra: pip install 'ocrfleet[paddle]' (or use a bundled ONNX model, `ocrfleet models`)")
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        # in a child process, inside a scratch directory: paddle2onnx drops helper files
        # (sym_shape_infer_temp.onnx, uuid-named blobs) into its working directory, and
        # importing paddle would add ~0.5 GB to this process for good
        with tempfile.TemporaryDirectory(prefix="ocrfleet-convert-") as scratch:
            # never pip-install at run time; paddle2onnx temp models go to the scratch dir too
            env = {**os.environ, "POLYGRAPHY_AUTOINSTALL_DEPS": "0", "TMPDIR": scratch}
            proc = subprocess.run([sys.executable, "-m", "ocrfleet.recognition.backends.convert",
                                   str(files.model_file), str(files.params_file), tmp],
                                  cwd=scratch, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            message = f"converting {files.name} to ONNX failed: {' | '.join(tail)}"
            failed.write_text(message, encoding="utf-8")
            raise ModelUnavailableError(message)
        os.replace(tmp, out)  # atomic: concurrent converters never see a half file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _convert(model_file: str, params_file: str, target: str) -> None:
    import paddle2onnx

    paddle2onnx.export(model_file, params_file, target, opset_version=OPSET,
                       enable_onnx_checker=True, verbose=False, optimize_tool="None")
    _fix_scalar_concat(target)


if __name__ == "__main__":
    _convert(*sys.argv[1:4])
