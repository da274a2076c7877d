"""How ocrfleet reads its environment variables and text flags (one yes/no rule for settings,
CLI flags and the hub), and the defaults the library and the fleet share. Imports nothing of
ocrfleet: the engine and the fleet both use it."""
from __future__ import annotations

import os

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")

# One setting, one default: the library reads OCRFLEET_MAX_PDF_PAGES, the fleet's Settings field
# max_pdf_pages is the same variable (a fleet's decoded pixels are bounded by max_job_pixels too)
MAX_PDF_PAGES = 1000


def parse_bool(value) -> bool:
    """True/False for ``1/true/yes/on`` and ``0/false/no/off`` (any case, blank = False);
    ValueError for anything else, so a typo is not silently False."""
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"expected a yes/no value (1/0, true/false, yes/no, on/off), got {value!r}")


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else parse_bool(value)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)
