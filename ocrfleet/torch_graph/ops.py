"""ONNX operators as torch functions: ``OPS[op_type](ctx, node_attrs, *inputs) -> output(s)``.

Inputs are torch tensors (``None`` for an omitted optional input). Shape arithmetic (Shape,
Gather on shapes, Concat of sizes...) stays on CPU int64 tensors, so reading a shape as Python
ints never waits for the accelerator and CUDA graph capture works. Float maths runs on the
device and dtype of the data (fp32 or fp16), and is differentiable.

Half precision (a module ``.half()``): ``Pow`` computes in fp32 (squares of activations over 256
overflow fp16; the LayerNorm pattern of exported graphs squares them), so what follows it runs in
fp32 until the next weighted op (Conv, MatMul, Gemm, normalisations), which casts its input to
its weights' dtype: fp16 where the work is, fp32 where the range is needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ONNX TensorProto data types -> torch
DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
          9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}
OPS: dict = {}


class Ctx:
    """What an op may need besides its inputs: the opset, and the float dtype being computed in."""

    def __init__(self, opset: int):
        self.opset = opset
        self.float_dtype = torch.float32
        self.op_type = ""  # the node being run, and how many outputs it has
        self.n_outputs = 1


def op(*names):
    def register(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return register


def ints(t) -> list[int]:
    """A shape-like input as Python ints (CPU tensors: no device sync)."""
    if t is None:
        return []
    return [int(v) for v in t.reshape(-1).tolist()]


def _same_device(a, b):
    """Elementwise ops may mix a CPU shape scalar with device data: move the small one."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.device != b.device:
        if a.device.type == "cpu":
            a = _host_operand(a, b)
        else:
            b = _host_operand(b, a)
    return a, b


def _host_operand(small, data):
    """A one-value CPU tensor becomes a 0-dim CPU tensor (torch takes it beside GPU data, with
    no copy: CUDA graph capture allows no host-to-device copy); anything else is copied over."""
    if small.numel() == 1 and small.dim() <= data.dim():
        return small.reshape(())
    return small.to(data.device)


def _binary(fn):
    def run(ctx, at, a, b):
        a, b = _same_device(a, b)
        return fn(a, b)
    return run


def _div(a, b):
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _pow(a, b):
    if a.dtype in (torch.float16, torch.bfloat16):
        return torch.pow(a.float(), b.float() if isinstance(b, torch.Tensor) else b)
    return torch.pow(a, b)


def _matmul(a, b):
    if a.is_floating_point() and b.is_floating_point() and a.dtype != b.dtype:  # fp32 island meets fp16
        low = a.dtype if a.element_size() < b.element_size() else b.dtype
        a, b = a.to(low), b.to(low)
    return torch.matmul(a, b)


def _like(x, w):
    """x in the dtype of the weights w it meets (half precision: back from an fp32 island)."""
    return x.to(w.dtype) if w is not None and x.dtype != w.dtype and x.is_floating_point() else x


for _name, _fn in {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": _div, "Pow": _pow,
                   "MatMul": _matmul, "Equal": torch.eq, "Less": torch.lt, "Greater": torch.gt,
                   "LessOrEqual": torch.le, "GreaterOrEqual": torch.ge, "And": torch.logical_and,
                   "Or": torch.logical_or, "Mod": torch.remainder}.items():
    OPS[_name] = _binary(_fn)

for _name, _fn in {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Sqrt": torch.sqrt,
                   "Erf": torch.erf, "Exp": torch.exp, "Log": torch.log, "Neg": torch.neg, "Abs": torch.abs,
                   "Floor": torch.floor, "Ceil": torch.ceil, "Reciprocal": torch.reciprocal,
                   "Not": torch.logical_not, "Sin": torch.sin, "Cos": torch.cos, "Round": torch.round,
                   "Softplus": F.softplus, "Sign": torch.sign}.items():
    OPS[_name] = (lambda f: lambda ctx, at, x: f(x))(_fn)


@op("Identity", "Dropout")
def _identity(ctx, at, x, *rest):
    return x


class _HardSigmoid(torch.autograd.Function):
    """clamp(alpha * x + beta, 0, 1) whose backward keeps only ``x`` (autograd through the
    plain expression also keeps ``alpha * x + beta``: one activation-sized tensor per
    HardSigmoid, a quarter of what training PP-OCR's backbones holds)."""

    @staticmethod
    def forward(ctx, x, alpha, beta):
        ctx.save_for_backward(x)
        ctx.alpha, ctx.beta = alpha, beta
        return torch.clamp(x * alpha + beta, 0.0, 1.0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        z = x * ctx.alpha + ctx.beta
        return grad * ((z >= 0) & (z <= 1)) * ctx.alpha, None, None


@op("HardSigmoid")
def _hard_sigmoid(ctx, at, x):
    alpha, beta = at.get("alpha", 0.2), at.get("beta", 0.5)
    if x.requires_grad:
        return _HardSigmoid.apply(x, alpha, beta)
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


@op("HardSwish")
def _hard_swish(ctx, at, x):
    return F.hardswish(x)


@op("LeakyRelu")
def _leaky(ctx, at, x):
    return F.leaky_relu(x, at.get("alpha", 0.01))


@op("PRelu")
def _prelu(ctx, at, x, slope):
    return torch.where(x >= 0, x, x * slope)


@op("Gelu")
def _gelu(ctx, at, x):
    return F.gelu(x, approximate="tanh" if at.get("approximate", "none") == "tanh" else "none")


@op("Clip")
def _clip(ctx, at, x, lo=None, hi=None):
    if ctx.opset < 11:
        lo_v, hi_v = at.get("min"), at.get("max")
    else:
        lo_v = None if lo is None else float(lo.reshape(-1)[0])
        hi_v = None if hi is None else float(hi.reshape(-1)[0])
    return torch.clamp(x, lo_v, hi_v)


def _fold(fn, mean=False):
    def run(ctx, at, *xs):
        out = xs[0]
        for x in xs[1:]:
            out, x = _same_device(out, x)
            out = fn(out, x)
        return out / len(xs) if mean else out
    return run


OPS.update(Max=_fold(torch.maximum), Min=_fold(torch.minimum), Sum=_fold(torch.add), Mean=_fold(torch.add, True))


@op("Where")
def _where(ctx, at, cond, a, b):
    a, b = _same_device(a, b)
    return torch.where(cond.to(a.device), a, b)


@op("Cast")
def _cast(ctx, at, x):
    dtype = DTYPES[at["to"]]
    if dtype.is_floating_point and dtype != torch.float64:
        dtype = ctx.float_dtype  # a model run in fp16 stays fp16 (Cast-to-float32 nodes included)
    return x.to(dtype)


@op("Shape")
def _shape(ctx, at, x):
    dims = list(x.shape)
    start, end = at.get("start", 0), at.get("end")
    return torch.tensor(dims[start:end], dtype=torch.int64)


@op("Size")
def _size(ctx, at, x):
    return torch.tensor(x.numel(), dtype=torch.int64)


@op("ConstantOfShape")
def _constant_of_shape(ctx, at, shape):
    value = at.get("value")
    fill = value if value is not None else torch.zeros(1)
    return torch.full(ints(shape), fill.reshape(-1)[0].item(), dtype=fill.dtype, device=fill.device)


@op("Range")
def _range(ctx, at, start, limit, delta):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)


@op("Reshape")
def _reshape(ctx, at, x, shape):
    dims = ints(shape)
    if not at.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


@op("Flatten")
def _flatten(ctx, at, x):
    axis = at.get("axis", 1) % max(x.dim(), 1) if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), -1)


@op("Transpose")
def _transpose(ctx, at, x):
    perm = at.get("perm") or list(range(x.dim()))[::-1]
    return x.permute(*perm)


def _axes(ctx, at, axes_input, attr_until: int):
    """Axes given as an attribute (opset < attr_until) or as an input."""
    if ctx.opset < attr_until:
        return at.get("axes")
    return ints(axes_input) if axes_input is not None else None


@op("Squeeze")
def _squeeze(ctx, at, x, axes=None):
    ax = _axes(ctx, at, axes, 13)
    if not ax:
        return x.squeeze()
    return x.squeeze(tuple(a % x.dim() for a in ax))


@op("Unsqueeze")
def _unsqueeze(ctx, at, x, axes=None):
    ax = sorted(a % (x.dim() + len(_axes(ctx, at, axes, 13))) for a in _axes(ctx, at, axes, 13))
    for a in ax:
        x = x.unsqueeze(a)
    return x


@op("Concat")
def _concat(ctx, at, *xs):
    xs = [x for x in xs if x is not None and (x.dim() != 1 or x.numel() > 0 or len(xs) == 1)]
    dev = next((x.device for x in xs if x.device.type != "cpu"), xs[0].device)
    return torch.cat([x.to(dev) for x in xs], dim=at["axis"])


@op("Split")
def _split(ctx, at, x, split=None):
    axis = at.get("axis", 0)
    sizes = ints(split) if split is not None else at.get("split")
    if not sizes:
        n = at.get("num_outputs") or ctx.n_outputs
        sizes = [math.ceil(x.shape[axis] / n)] * n
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return tuple(torch.split(x, sizes, dim=axis))


@op("Slice")
def _slice(ctx, at, x, starts=None, ends=None, axes=None, steps=None):
    if ctx.opset < 10:
        st, en, ax, sp = at["starts"], at["ends"], at.get("axes"), None
    else:
        st, en, ax, sp = ints(starts), ints(ends), ints(axes) or None, ints(steps) or None
    ax = ax or list(range(len(st)))
    sp = sp or [1] * len(st)
    index = [slice(None)] * x.dim()
    flips = []
    for s, e, a, k in zip(st, en, ax, sp):
        a %= x.dim()
        if k > 0:
            index[a] = slice(s, e, k)
        else:  # negative step: take the forward slice of the flipped axis
            n = x.shape[a]
            s = min(max(s + n if s < 0 else s, -1), n - 1)
            e = min(max(e + n if e < 0 else e, -1), n - 1)
            index[a] = slice(n - 1 - s, n - 1 - e, -k)
            flips.append(a)
    if flips:
        x = x.flip(flips)
    return x[tuple(index)]


@op("Gather")
def _gather(ctx, at, x, idx):
    axis = at.get("axis", 0) % x.dim()
    idx = idx.to(x.device)
    flat = torch.remainder(idx.reshape(-1).long(), x.shape[axis])
    out = x.index_select(axis, flat)
    return out.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))


@op("Expand")
def _expand(ctx, at, x, shape):
    return x * torch.ones(ints(shape), dtype=x.dtype, device=x.device)


@op("Tile")
def _tile(ctx, at, x, repeats):
    return x.repeat(ints(repeats))


@op("Softmax", "LogSoftmax")
def _softmax(ctx, at, x):
    fn = torch.log_softmax if ctx.op_type == "LogSoftmax" else torch.softmax
    axis = at.get("axis", -1 if ctx.opset >= 13 else 1) % x.dim()
    if ctx.opset >= 13 or axis == x.dim() - 1:
        return fn(x, dim=axis)
    shape = x.shape  # opset < 13: softmax over the flattened trailing dims
    return fn(x.reshape(math.prod(shape[:axis]), -1), dim=-1).reshape(shape)


def _reduce(fn):
    def run(ctx, at, x, axes=None):
        ax = _axes(ctx, at, axes, 18 if ctx.op_type != "ReduceSum" else 13)
        keep = bool(at.get("keepdims", 1))
        if not ax:
            if at.get("noop_with_empty_axes", 0):
                return x
            ax = list(range(x.dim()))
        return fn(x, dim=tuple(a % x.dim() for a in ax), keepdim=keep)
    return run


OPS.update(ReduceMean=_reduce(torch.mean), ReduceSum=_reduce(torch.sum),
           ReduceMax=_reduce(torch.amax), ReduceMin=_reduce(torch.amin))


@op("ArgMax")
def _argmax(ctx, at, x):
    return torch.argmax(x, dim=at.get("axis", 0), keepdim=bool(at.get("keepdims", 1)))


@op("Gemm")
def _gemm(ctx, at, a, b, c=None):
    a = _like(a.t() if at.get("transA", 0) else a, b)
    b = b.t() if at.get("transB", 0) else b
    out = at.get("alpha", 1.0) * (a @ b)
    return out if c is None else out + at.get("beta", 1.0) * c


@op("BatchNormalization")
def _batch_norm(ctx, at, x, scale, bias, mean, var):
    # inference semantics (running statistics), differentiable in x, scale and bias
    return F.batch_norm(_like(x, scale), mean, var, scale, bias, training=False, eps=at.get("epsilon", 1e-5))


@op("LayerNormalization")
def _layer_norm(ctx, at, x, scale, bias=None):
    axis = at.get("axis", -1) % x.dim()
    return F.layer_norm(_like(x, scale), x.shape[axis:], scale, bias, eps=at.get("epsilon", 1e-5))


@op("InstanceNormalization")
def _instance_norm(ctx, at, x, scale, bias):
    return F.instance_norm(_like(x, scale), weight=scale, bias=bias, eps=at.get("epsilon", 1e-5))


def _pads(at, x, kernel, strides, dilations):
    """Explicit [begin..., end...] pads from ``pads`` or ``auto_pad`` (SAME_UPPER / SAME_LOWER)."""
    n = len(kernel)
    mode = at.get("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else big)
            end.append(big if mode == "SAME_UPPER" else small)
        return begin + end
    if mode == "VALID":
        return [0] * (2 * n)
    return list(at.get("pads") or [0] * (2 * n))


def _torch_pad(pads):
    """ONNX [b1, b2, ..., e1, e2, ...] -> F.pad's (b_last, e_last, ..., b1, e1)."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def _symmetric(pads):
    n = len(pads) // 2
    return pads[:n] == pads[n:]


CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@op("Conv")
def _conv(ctx, at, x, w, b=None):
    x = _like(x, w)
    n = w.dim() - 2
    kernel = list(w.shape[2:])
    strides = at.get("strides") or [1] * n
    dil = at.get("dilations") or [1] * n
    pads = _pads(at, x, kernel, strides, dil)
    if _symmetric(pads):
        padding = pads[:n]
    else:
        x, padding = F.pad(x, _torch_pad(pads)), [0] * n
    return CONV[n](x, w, b, stride=strides, padding=padding, dilation=dil, groups=at.get("group", 1))


@op("ConvTranspose")
def _conv_transpose(ctx, at, x, w, b=None):
    x = _like(x, w)
    n = w.dim() - 2
    strides = at.get("strides") or [1] * n
    dil = at.get("dilations") or [1] * n
    pads = list(at.get("pads") or [0] * (2 * n))
    out_pad = list(at.get("output_padding") or [0] * n)
    if at.get("output_shape") or at.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError("ConvTranspose with output_shape / auto_pad SAME is not supported")
    if not _symmetric(pads):  # run unpadded, then crop the asymmetric amount
        y = CONV_T[n](x, w, b, stride=strides, output_padding=out_pad, groups=at.get("group", 1), dilation=dil)
        index = [slice(None), slice(None)] + [slice(pads[i], y.shape[2 + i] - pads[n + i]) for i in range(n)]
        return y[tuple(index)]
    return CONV_T[n](x, w, b, stride=strides, padding=pads[:n], output_padding=out_pad,
                     groups=at.get("group", 1), dilation=dil)


MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@op("MaxPool", "AveragePool")
def _pool(ctx, at, x):
    kernel = at["kernel_shape"]
    n = len(kernel)
    strides = at.get("strides") or [1] * n
    dil = at.get("dilations") or [1] * n
    pads = _pads(at, x, kernel, strides, dil)
    ceil = bool(at.get("ceil_mode", 0))
    torch_ok = _symmetric(pads) and all(p <= k // 2 for p, k in zip(pads[:n], kernel))
    if ctx.op_type == "MaxPool":
        if not torch_ok:
            x, pads = F.pad(x, _torch_pad(pads), value=float("-inf")), [0] * (2 * n)
        return MAX_POOL[n](x, kernel, strides, pads[:n], dilation=dil, ceil_mode=ceil)
    include = bool(at.get("count_include_pad", 0))
    if torch_ok:
        return AVG_POOL[n](x, kernel, strides, pads[:n], ceil_mode=ceil, count_include_pad=include)
    padded = F.pad(x, _torch_pad(pads))
    out = AVG_POOL[n](padded, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)
    if include:
        return out
    ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(pads))
    return out / AVG_POOL[n](ones, kernel, strides, 0, ceil_mode=ceil, count_include_pad=True)


@op("GlobalAveragePool")
def _global_avg(ctx, at, x):
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool")
def _global_max(ctx, at, x):
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@op("Pad")
def _pad(ctx, at, x, pads=None, value=None, axes=None):
    p = at.get("pads") if ctx.opset < 11 else ints(pads)
    v = at.get("value", 0.0) if ctx.opset < 11 else (0.0 if value is None else float(value.reshape(-1)[0]))
    if axes is not None:
        full = [0] * (2 * x.dim())
        ax = [a % x.dim() for a in ints(axes)]
        for i, a in enumerate(ax):
            full[a], full[x.dim() + a] = p[i], p[len(ax) + i]
        p = full
    mode = at.get("mode", "constant")
    return F.pad(x, _torch_pad(p), mode=mode, value=v if mode == "constant" else None)


@op("Resize", "Upsample")
def _resize(ctx, at, x, roi=None, scales=None, sizes=None):
    if ctx.op_type == "Upsample" or ctx.opset < 11:  # (x, scales)
        scales, sizes = roi, None
    mode = at.get("mode", "nearest")
    ctm = at.get("coordinate_transformation_mode", "half_pixel")
    spatial = x.dim() - 2
    size = ints(sizes)[-spatial:] if sizes is not None and sizes.numel() else None
    factor = None if size is not None else [float(v) for v in scales.reshape(-1).tolist()][-spatial:]
    # given scales map coordinates by the scale itself (ONNX and torch agree), sizes by in/out
    how = {"size": size} if factor is None else {"scale_factor": factor, "recompute_scale_factor": False}
    if mode == "nearest":
        nearest = at.get("nearest_mode", "round_prefer_floor")
        if ctm == "asymmetric" and nearest == "floor":
            return F.interpolate(x, mode="nearest", **how)
        if ctm in ("half_pixel", "pytorch_half_pixel") and nearest in ("round_prefer_ceil", "round_prefer_floor"):
            return F.interpolate(x, mode="nearest-exact", **how)
        raise NotImplementedError(f"Resize nearest with {ctm}/{nearest} is not supported")
    torch_mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[spatial] if mode == "linear" else "bicubic"
    if ctm == "align_corners":
        return F.interpolate(x, mode=torch_mode, align_corners=True, **how)
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        return F.interpolate(x, mode=torch_mode, align_corners=False, **how)
    raise NotImplementedError(f"Resize {mode} with {ctm} is not supported")


@op("Einsum")
def _einsum(ctx, at, *xs):
    return torch.einsum(at["equation"], *xs)


@op("TopK")
def _topk(ctx, at, x, k):
    vals, idx = torch.topk(x, int(k.reshape(-1)[0]), dim=at.get("axis", -1), largest=bool(at.get("largest", 1)),
                           sorted=bool(at.get("sorted", 1)))
    return vals, idx
