"""ocrfleet.torch_graph: every bundled ONNX model (and the Paddle-format PP-OCRv4 rec model as
paddle2onnx converts it) gives ONNX Runtime's output when run by OnnxModule; the module trains
(gradients reach the weights), and export_onnx writes the trained weights back exactly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ocrfleet.recognition import catalog, sources  # noqa: E402
from ocrfleet.torch_graph import OnnxModule, unsupported_ops  # noqa: E402

ATOL = 1e-4


def bundled() -> list:
    out = []
    for pw in catalog.PACKAGED:
        if pw.fmt != "onnx":
            continue
        files = sources.from_package(pw)
        out.append(pytest.param(files, id=f"{pw.model}@{pw.distribution}",
                                marks=[] if files else pytest.mark.skip(f"{pw.distribution} is not installed")))
    return out


def inputs_for(files) -> list[np.ndarray]:
    """Two random inputs of different shapes (the graph's dynamic dims really vary)."""
    rng = np.random.default_rng(0)
    if files.task == "det":
        shapes = [(1, 3, 96, 128), (2, 3, 64, 160)]
    elif files.task == "rec":
        shapes = [(2, 3, 48, 160), (1, 3, 48, 97)]
    else:
        c, h, w = files.input_shape
        shapes = [(2, c, h, w)]
    return [rng.random(s, dtype=np.float32) for s in shapes]


def ort_run(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def check_parity(model_file) -> None:
    module = OnnxModule(model_file).eval()
    files = check_parity.files
    for x in inputs_for(files):
        want = ort_run(model_file, x)
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("files", bundled())
def test_bundled_model_matches_onnxruntime(files):
    check_parity.files = files
    check_parity(files.model_file)


@pytest.mark.slow
def test_converted_paddle_model_matches_onnxruntime(v4_official_dir, monkeypatch):
    from ocrfleet.recognition.backends.convert import onnx_path

    monkeypatch.setenv("OCRFLEET_HOME", str(Path(v4_official_dir).parent / "ocrfleet-home"))
    files = sources.resolve("PP-OCRv4_mobile_rec", v4_official_dir)
    check_parity.files = files
    check_parity(onnx_path(files))


@pytest.fixture(scope="module")
def tiny():
    files = sources.resolve("PP-OCRv6_tiny_rec")
    return files, onnx.load(str(files.model_file))


def test_parameters_buffers_and_names(tiny):
    files, model = tiny
    module = OnnxModule(model)
    params = dict(module.named_parameters())
    buffers = dict(module.named_buffers())
    inits = {i.name: i for i in model.graph.initializer}
    # every initializer is exactly one parameter or buffer, and maps back to its ONNX name
    assert len(params) + sum(1 for n in buffers if module.onnx_name(n) in inits) == len(inits)
    assert {module.onnx_name(n) for n in params} <= set(inits)
    bn_stats = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    assert bn_stats, "the model has BatchNormalization"
    assert not bn_stats & {module.onnx_name(n) for n in params}  # running stats never train
    assert all(p.is_floating_point() for p in params.values())
    assert len(params) > 50


def test_training_step_moves_weights_and_export_round_trips(tiny, tmp_path):
    files, model = tiny
    module = OnnxModule(model)
    x = torch.from_numpy(inputs_for(files)[0])
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    stats = {n: b.clone() for n, b in module.named_buffers() if b.is_floating_point()}
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)
    probs = module(x)  # (N, T, classes) softmax output
    loss = -torch.log(probs[..., 0] + 1e-6).mean()  # push every step towards the CTC blank
    loss.backward()
    grads = [p.grad for p in module.parameters()]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)
    opt.step()
    with torch.no_grad():
        after = module(x)
    assert after[..., 0].mean() > probs[..., 0].mean().detach()  # the step did what the loss asked
    changed = sum(not torch.equal(before[n], p) for n, p in module.named_parameters())
    assert changed > 0.9 * len(before)
    assert all(torch.equal(stats[n], b) for n, b in module.named_buffers() if n in stats)

    exported = module.export_onnx(model)
    assert [n.name for n in exported.graph.node] == [n.name for n in model.graph.node]
    assert exported.graph.initializer[0].data_type == model.graph.initializer[0].data_type
    path = tmp_path / "finetuned.onnx"
    onnx.save(exported, str(path))
    np.testing.assert_allclose(ort_run(str(path), x.numpy()), after.numpy(), atol=ATOL, rtol=0)
    assert not np.allclose(ort_run(model, x.numpy()), after.numpy(), atol=ATOL)  # really different weights
    # and a module built from the exported model holds the trained weights
    again = OnnxModule(exported)
    for n, p in module.named_parameters():
        assert torch.equal(dict(again.named_parameters())[n], p.detach())


def test_export_refuses_another_model(tiny):
    files, model = tiny
    other = onnx.load(str(sources.resolve("PP-OCRv5_mobile_rec").model_file))
    with pytest.raises((KeyError, ValueError), match="initializer"):
        OnnxModule(model).export_onnx(other)


def test_unsupported_operator_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("NonMaxSuppression", ["x", "s"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4]),
                                            helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 3])])
    model = helper.make_model(graph)
    assert unsupported_ops(model) == ["NonMaxSuppression"]
    with pytest.raises(NotImplementedError, match="NonMaxSuppression"):
        OnnxModule(model)


def test_small_ops_match_onnxruntime():
    """Operators the bundled models do not use, or use in one setting only: asymmetric / SAME
    padding, ceil-mode pooling, negative-step Slice, Gather with negative indices, Resize linear."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    idx = numpy_helper.from_array(np.array([-1, 0, 2], dtype=np.int64), "idx")
    sl = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
          for n, v in (("st", [-1]), ("en", [-1000]), ("ax", [3]), ("sp", [-2]))]
    scales = numpy_helper.from_array(np.array([1, 1, 1.5, 2], dtype=np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], pads=[0, 1, 2, 1], strides=[2, 1]),
        helper.make_node("Conv", ["x", "w"], ["c2"], auto_pad="SAME_LOWER", strides=[2, 2]),
        helper.make_node("AveragePool", ["c1"], ["p1"], kernel_shape=[3, 3], pads=[1, 0, 1, 2], ceil_mode=1),
        helper.make_node("MaxPool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
        helper.make_node("Gather", ["s", "idx"], ["g"], axis=3),
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("ReduceMean", ["r"], ["rm"], axes=[2, 3], keepdims=1),
        helper.make_node("Flatten", ["p1"], ["f1"]), helper.make_node("Flatten", ["p2"], ["f2"]),
        helper.make_node("Flatten", ["g"], ["f3"]), helper.make_node("Flatten", ["rm"], ["f4"]),
        helper.make_node("Concat", ["f1", "f2", "f3", "f4"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 9, 11])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [w, idx, scales, *sl])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    with torch.no_grad():
        got = OnnxModule(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ort_run(model, x), atol=ATOL, rtol=0)
