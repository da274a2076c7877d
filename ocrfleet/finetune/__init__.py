"""``ocrfleet finetune``: fine-tune a recognition model on labelled lines and write a model
directory the fleet serves (ONNX + inference.yml). Needs the ``[torch]`` extra.

``ocrfleet.finetune(labels, output, **options)`` runs it: this package is callable, so the name
means the same thing whether or not its submodules were imported. Importing it loads nothing
heavy; torch is imported when a run starts.
"""
from __future__ import annotations

import sys
import types


def finetune(labels, output, **kwargs) -> dict:
    """Fine-tune a recognition model; see ``ocrfleet.finetune.run.finetune``."""
    from ocrfleet.finetune.run import finetune as _run

    return _run(labels, output, **kwargs)


class _CallablePackage(types.ModuleType):
    def __call__(self, labels, output, **kwargs) -> dict:
        return finetune(labels, output, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
