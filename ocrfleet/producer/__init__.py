"""The client side of the fleet: build and validate job specs, enqueue them, follow jobs.
The contract it shares with the workers (spec, signing, names) lives in ``ocrfleet.jobs``."""
from ocrfleet.jobs.contract import JobStatus
from ocrfleet.jobs.signing import InvalidSignature, ReplayGuard, verify_signature
from ocrfleet.jobs.spec import SpecError
from ocrfleet.producer.client import EnqueueError, Job, JobConflictError, Producer

__all__ = ["EnqueueError", "InvalidSignature", "Job", "JobConflictError", "JobStatus", "Producer",
           "ReplayGuard", "SpecError", "verify_signature"]
