"""Fleet configuration: one ``Settings`` object (env vars ``OCRFLEET_*`` / a file) and the
Celery settings derived from it."""
from ocrfleet.config.settings import Settings, load_settings, to_env  # noqa: F401
