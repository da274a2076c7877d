"""The client side of the fleet: build and validate job specs, enqueue them, follow jobs."""
from ocrfleet.producer.client import EnqueueError, Job, JobConflictError, Producer  # noqa: F401
from ocrfleet.producer.signing import InvalidSignature, ReplayGuard, verify_signature  # noqa: F401
from ocrfleet.producer.spec import SpecError  # noqa: F401
