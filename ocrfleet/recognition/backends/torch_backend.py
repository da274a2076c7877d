"""PyTorch: the ONNX model run by ``ocrfleet.torch_graph`` on CPU or a CUDA GPU (``[torch]`` extra).

On CUDA: fp32 or fp16 (``precision="fp16"``: weights and input in half precision), pinned-memory
host-to-device copies, CUDA graphs for line models (one per input shape that recurs: every
line narrower than the model width is padded to it, and batch sizes are padded to a power of
two, so a few shapes carry most lines; one-off widths, shapes that fail to capture and shapes
beyond ``MAX_GRAPHS`` run eagerly, as does detection, where every page has its own size), and the CTC argmax done on
the GPU, so only (N, T) indices and probabilities come back instead of (N, T, classes).
On CPU it runs fp32 (fp16 is refused: slow there and not what a CPU user wants).
"""
from __future__ import annotations

import importlib.util
import threading

import numpy as np

from ocrfleet.recognition.backends.base import Backend, EngineOptions
from ocrfleet.recognition.backends.convert import onnx_path
from ocrfleet.recognition.sources import ModelFiles

MAX_GRAPHS = 128  # CUDA graphs kept (one per input shape); when full, new shapes run eagerly
CAPTURE_AFTER = 2  # capture a shape's graph on its 2nd call: one-off widths run eagerly
MAX_PAD_BATCH = 256  # batches up to this are padded to a power of two (fewer shapes, rows independent)
TORCH_MISSING = "torch is not installed (pip install 'ocrfleet[torch]')"


def load_torch():
    """``import torch`` with the error a user can act on."""
    try:
        import torch
    except ImportError as exc:
        from ocrfleet.errors import BackendUnavailableError

        raise BackendUnavailableError(TORCH_MISSING) from exc
    return torch


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, files: ModelFiles, opts: EngineOptions):
        super().__init__(files, opts)
        torch = load_torch()
        from ocrfleet.torch_graph import OnnxModule

        self.torch = torch
        self.cuda = opts.device == "gpu"
        self.device = torch.device(f"cuda:{opts.device_id}" if self.cuda else "cpu")
        self.dtype = torch.float16 if opts.precision == "fp16" else torch.float32
        if not self.cuda:
            torch.set_num_threads(opts.threads)
        elif self.dtype == torch.float32:
            # fp32 means fp32: cuDNN would otherwise run convolutions in TF32 on Ampere and later
            # (a process-wide setting: it applies to other torch code in this process too)
            torch.backends.cudnn.allow_tf32 = False
        module = OnnxModule(onnx_path(files)).eval().requires_grad_(False)
        self.module = module.to(self.device, self.dtype)
        self.graphs: dict = {}  # shape -> (graph, static input, static outputs)
        self.no_graph: set = set()
        self.seen: dict = {}  # shape -> calls so far
        self.pool = None  # the CUDA graphs' shared memory pool
        self._lock = threading.Lock()

    @classmethod
    def available(cls, files, opts):
        if importlib.util.find_spec("torch") is None:
            return TORCH_MISSING
        import torch

        if opts.device == "gpu":
            if not torch.cuda.is_available():
                return "this torch build sees no CUDA GPU"
            if opts.device_id >= torch.cuda.device_count():
                return f"gpu:{opts.device_id} does not exist ({torch.cuda.device_count()} CUDA GPUs)"
        elif opts.precision == "fp16":
            return "fp16 needs a CUDA GPU; on CPU use precision='fp32'"
        return None

    # -- the model call -------------------------------------------------------------------
    def _to_device(self, batch: np.ndarray):
        x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.dtype)

    def _forward(self, x, argmax: bool):
        probs = self.module(x)
        if not argmax:
            return (probs,)
        prob, idx = probs.max(dim=2)
        return prob, idx

    def _graph_call(self, x, argmax: bool):
        """Replay (capturing on first use) the CUDA graph for this input shape."""
        torch = self.torch
        key = (tuple(x.shape), argmax)
        entry = self.graphs.get(key)
        if entry is None:
            static_in = x.clone()
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph (allocator, cuDNN algorithms)
                    self._forward(static_in, argmax)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            # one memory pool for all graphs: they replay one at a time (under the lock) and
            # their outputs are copied out at once, so their scratch memory may overlap
            with torch.cuda.graph(graph, pool=self.pool):
                static_out = self._forward(static_in, argmax)
            entry = self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _graphed(self, batch: np.ndarray, argmax: bool):
        """The batch padded to its graph's shape, and the key; None where no graph is used."""
        if not self.cuda or self.files.task == "det":
            return None
        n = batch.shape[0]
        if n <= MAX_PAD_BATCH:
            n = 1 << (n - 1).bit_length()
        key = ((n, *batch.shape[1:]), argmax)
        self.seen[key] = self.seen.get(key, 0) + 1
        if key not in self.graphs and (key in self.no_graph or self.seen[key] < CAPTURE_AFTER
                                       or len(self.graphs) >= MAX_GRAPHS):
            return None  # one-off shape, failed capture, or full: eager (no capture churn)
        if n != batch.shape[0]:
            batch = np.concatenate([batch, np.zeros((n - batch.shape[0], *batch.shape[1:]), batch.dtype)])
        return batch, key

    def _call(self, batch: np.ndarray, argmax: bool):
        torch = self.torch
        n = batch.shape[0]
        with self._lock, torch.inference_mode():
            graphed = self._graphed(batch, argmax)
            out = None
            if graphed is not None:
                try:
                    out = self._graph_call(self._to_device(graphed[0]), argmax)
                except Exception:  # noqa: BLE001 - a graph that cannot be captured runs eagerly
                    self.no_graph.add(graphed[1])
                    self.graphs.pop(graphed[1], None)
            if out is None:
                out = self._forward(self._to_device(batch), argmax)
            return [(t.float() if t.is_floating_point() else t)[:n].cpu().numpy() for t in out]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._call(batch, argmax=False)[0]

    def run_argmax(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Recognition: per time step the best class and its probability, (N, T) each, computed
        on the device (the CTC decoder's first step)."""
        prob, idx = self._call(batch, argmax=True)
        return idx, prob
