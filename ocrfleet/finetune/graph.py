"""The served ONNX graph as a trainable torch module (``ocrfleet.torch_graph.OnnxModule``).

Inference graphs end in a Softmax over the classes; CTC training wants the logits, so the
trained module is the same graph cut just before that final Softmax (when there is one).
Exporting puts the trained weights back into the *uncut* graph: the served model is the
original graph with new initializer values.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import onnx

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles


@dataclass
class TrainGraph:
    base: onnx.ModelProto          # the served graph (with its final Softmax)
    module: object                 # OnnxModule over the logits graph
    softmax_cut: bool              # True: the module returns logits; False: probabilities
    backbone: list                 # parameters used before the first MatMul (the neck/head)
    head: list


def logits_graph(base: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """A copy of ``base`` whose output is the input of its final Softmax, if it ends in one."""
    out = base.graph.output[0].name
    last = [n for n in base.graph.node if out in n.output]
    if not last or last[0].op_type != "Softmax":
        return base, False
    cut = onnx.ModelProto()
    cut.CopyFrom(base)
    node = [n for n in cut.graph.node if out in n.output][0]
    logits = node.input[0]
    cut.graph.node.remove(node)
    del cut.graph.output[:]
    cut.graph.output.append(onnx.helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
    return cut, True


WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "MatMul": (0, 1), "Gemm": (0, 1, 2),
                 "BatchNormalization": (1, 2), "Add": (0, 1), "Mul": (0, 1)}


def trainable(graph: onnx.GraphProto) -> set[str]:
    """Initializers that are weights: conv / linear weights and biases, BN scale and shift, and
    tensors added or multiplied in (biases, LayerNorm gains). Scalars (epsilons, exponents,
    the backbone's learnable-affine scalars) stay fixed: training an epsilon or an exponent
    gives NaN gradients."""
    sizes = {t.name: 1 for t in graph.initializer}
    for t in graph.initializer:
        for d in t.dims:
            sizes[t.name] *= d
    floats = {t.name for t in graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    ok, bad = set(), set()
    for node in graph.node:
        slots = WEIGHT_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            if name in floats:
                (ok if i in slots and sizes[name] > 1 else bad).add(name)
    return ok - bad


def _first_use(graph: onnx.GraphProto) -> dict[str, int]:
    """Initializer name -> index of the first node that reads it."""
    inits = {t.name for t in graph.initializer}
    seen: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name in inits and name not in seen:
                seen[name] = i
    return seen


def load(files: ModelFiles) -> TrainGraph:
    """The model of ``files`` (ONNX, or Paddle converted once to ONNX) as a TrainGraph."""
    if importlib.util.find_spec("torch") is None:
        raise ModelUnavailableError("fine-tuning needs PyTorch: pip install 'ocrfleet[torch]'")
    from ocrfleet.torch_graph import OnnxModule
    base = onnx.load(str(onnx_path(files)))
    cut, softmax_cut = logits_graph(base)
    module = OnnxModule(cut)
    first = _first_use(cut.graph)
    matmuls = [i for i, n in enumerate(cut.graph.node) if n.op_type in ("MatMul", "Gemm")]
    split_at = matmuls[0] if matmuls else int(0.75 * len(cut.graph.node))
    weights = trainable(cut.graph)
    backbone, head = [], []
    for name, p in module.named_parameters():
        onnx_name = module.onnx_name(name)
        if onnx_name not in weights:
            p.requires_grad_(False)
            continue
        (backbone if first.get(onnx_name, 0) < split_at else head).append(p)
    return TrainGraph(base, module, softmax_cut, backbone, head)


def export(tg: TrainGraph) -> onnx.ModelProto:
    """The served graph with the module's current weights."""
    return tg.module.export_onnx(tg.base)
