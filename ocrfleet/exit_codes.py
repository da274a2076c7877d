"""Exit statuses of the ``ocrfleet`` command, one per outcome (README "Exit statuses")."""
from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0           # done; the job (or every input) succeeded
    FAILED = 1       # the job failed or was cancelled; a local run had bad items (--on_error skip)
    USAGE = 2        # bad arguments, a job spec the producer refuses, an input or model refused locally
    TIMEOUT = 3      # --wait gave up; the job may still finish (`ocrfleet result JOB_ID`)
    UNAVAILABLE = 4  # Redis (broker) or S3 unreachable or refusing writes: nothing was enqueued
    CONFLICT = 5     # the job_id was already used for a different spec
    NOT_FOUND = 6    # no such job, or no stored result yet

