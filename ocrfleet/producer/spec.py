"""Moved to ``ocrfleet.jobs.spec`` (the job contract producers and workers share). This old import
path stays: it IS that module (same objects, so ``except``/``isinstance`` checks keep working)."""
import sys

from ocrfleet.jobs import spec as _moved

sys.modules[__name__] = _moved
