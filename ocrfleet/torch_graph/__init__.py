"""Run an ONNX graph with PyTorch: ``OnnxModule(model)`` is an ``nn.Module`` that executes the
graph node by node with torch ops (eager: any input shape the graph allows), differentiable,
with the weights as parameters, and writes them back into the ONNX model (``export_onnx``).

Every float initializer becomes an ``nn.Parameter``, except the running mean / variance of
BatchNormalization and the scales / ROI of Resize, which are buffers, as are integer tensors
and the values of Constant nodes. Names are sanitised for torch (``onnx_name`` maps back).
BatchNormalization always uses its running statistics (inference semantics); its scale and
bias train. Operators: ``ocrfleet.torch_graph.ops``.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ocrfleet.torch_graph.ops import OPS, Ctx

__all__ = ["OnnxModule", "unsupported_ops"]

# inputs that are statistics, not trainable weights (buffers): (op_type, input index)
_STATS = {("BatchNormalization", 3), ("BatchNormalization", 4)}
# inputs that are settings read as Python numbers: kept on the CPU, like integer tensors, so
# reading them never waits for the GPU (and CUDA graph capture works)
_SETTINGS = {("Resize", 1), ("Resize", 2), ("Upsample", 1), ("Clip", 1), ("Clip", 2), ("Pad", 2)}


def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    return onnx.load(str(Path(model)))


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)


def unsupported_ops(model) -> list[str]:
    """Operator types of ``model`` this module cannot run (empty: it runs)."""
    model = _load(model)
    return sorted({n.op_type for n in model.graph.node
                   if n.op_type != "Constant" and (n.domain not in ("", "ai.onnx") or n.op_type not in OPS)})


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = torch.from_numpy(numpy_helper.to_array(v).copy())
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


class OnnxModule(torch.nn.Module):
    """An ONNX graph as a torch module. ``forward(x)`` returns the first graph output,
    ``forward_all(*inputs)`` all of them (a tuple in graph order)."""

    def __init__(self, model: onnx.ModelProto | str | Path):
        super().__init__()
        model = _load(model)
        missing = unsupported_ops(model)
        if missing:
            raise NotImplementedError(f"ONNX operators not supported by ocrfleet.torch_graph: {', '.join(missing)}")
        graph = model.graph
        self._opset = _opset(model)
        self._torch_names: dict[str, str] = {}  # onnx name -> attribute name
        self._onnx_names: dict[str, str] = {}
        self._host: dict[str, torch.Tensor] = {}  # integer constants kept on CPU (shape arithmetic)
        uses = [(node.op_type, i, name) for node in graph.node for i, name in enumerate(node.input)]
        self._settings = {name for op_type, i, name in uses if (op_type, i) in _SETTINGS}
        frozen = self._settings | {name for op_type, i, name in uses if (op_type, i) in _STATS}
        for init in graph.initializer:
            value = torch.from_numpy(numpy_helper.to_array(init).copy())
            self._register(init.name, value, trainable=value.is_floating_point() and init.name not in frozen)
        self._nodes = []
        for node in graph.node:
            attrs = _attrs(node)
            if node.op_type == "Constant":
                value = attrs.get("value")
                if value is None:  # value_float / value_ints / ...
                    key, raw = next(iter(attrs.items()))
                    value = torch.tensor(raw, dtype=torch.int64 if "int" in key else torch.float32)
                self._register(node.output[0], value, trainable=False)
                continue
            self._nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        init_names = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        self.output_names = [o.name for o in graph.output]
        # values no later node reads are dropped as soon as their last reader ran: without
        # this every intermediate tensor lives until the forward returns
        last: dict[str, int] = {}
        for i, (_, ins, _, _) in enumerate(self._nodes):
            for name in ins:
                last[name] = i
        self._free_after = [[] for _ in self._nodes]
        for name, i in last.items():
            if name not in self.output_names:
                self._free_after[i].append(name)

    def _register(self, onnx_name: str, value: torch.Tensor, trainable: bool) -> None:
        name = re.sub(r"\W", "_", onnx_name)
        if not name or name[0].isdigit():
            name = f"t_{name}"
        while hasattr(self, name) or name in self._onnx_names:
            name += "_"
        self._torch_names[onnx_name] = name
        self._onnx_names[name] = onnx_name
        if trainable:
            self.register_parameter(name, torch.nn.Parameter(value))
        else:
            self.register_buffer(name, value)
            if not value.is_floating_point() or onnx_name in self._settings:
                self._host[onnx_name] = value

    def onnx_name(self, param_name: str) -> str:
        """The ONNX initializer (or Constant output) behind a parameter / buffer name."""
        return self._onnx_names[param_name.rsplit(".", 1)[-1]]  # "graph.w" (inside a parent module) -> "w"

    def _value(self, onnx_name: str) -> torch.Tensor:
        if onnx_name in self._host:
            return self._host[onnx_name]
        return getattr(self, self._torch_names[onnx_name])

    def forward_all(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the graph takes {len(self.input_names)} inputs ({self.input_names}), got {len(inputs)}")
        ctx = Ctx(self._opset)
        floats = [x.dtype for x in inputs if x.is_floating_point()]
        if floats:
            ctx.float_dtype = floats[0]
        env: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs))
        for (op_type, ins, outs, attrs), done in zip(self._nodes, self._free_after):
            args = [None if not n else (env[n] if n in env else self._value(n)) for n in ins]
            ctx.op_type, ctx.n_outputs = op_type, len(outs)
            result = OPS[op_type](ctx, attrs, *args)
            del args
            if isinstance(result, tuple):
                env.update(zip(outs, result))
            else:
                env[outs[0]] = result
            for name in done:
                env.pop(name, None)
        return tuple(env[n] if n in env else self._value(n) for n in self.output_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def export_onnx(self, base: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of ``base`` (the model this module was built from) with every initializer
        set to this module's current value, in the initializer's own dtype."""
        out = copy.deepcopy(base)
        for init in out.graph.initializer:
            if init.name not in self._torch_names:
                raise KeyError(f"initializer {init.name!r} is not in this module (another model?)")
            old = numpy_helper.to_array(init)
            new = self._value(init.name).detach().cpu()
            new = (new.float() if new.is_floating_point() else new).numpy()
            if new.shape != old.shape:
                raise ValueError(f"initializer {init.name!r}: shape {new.shape} != {old.shape}")
            init.CopyFrom(numpy_helper.from_array(np.array(new, dtype=old.dtype, order="C"), init.name))
        return out
