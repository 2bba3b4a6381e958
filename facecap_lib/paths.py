"""Where data and artifacts live. Roots come from arguments or the environment, never from
machine-specific defaults.

- ``FACECAP_DATA``: root of the datasets (real ones a user licensed, or SynthFACS written by facecap).
  Default: ``<cache root>/data``.
- ``FACECAP_CACHE``: the work folder where chapters write artifacts for the next ones (curated tables,
  caption tables, checkpoints, results). Default: ``~/.cache/facecap``; the notebook runner points it
  at ``build/work/full`` or ``build/work/smoke`` inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(path: str | os.PathLike | None = None) -> Path:
    """The work folder: ``path`` if given, else ``$FACECAP_CACHE``, else ``~/.cache/facecap``."""
    chosen = path or os.environ.get("FACECAP_CACHE") or Path.home() / ".cache" / "facecap"
    # absolute: tables saved here name their images by it, and are read from other folders
    return Path(chosen).expanduser().resolve()


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``path`` if given, else ``$FACECAP_DATA``, else ``<cache root>/data``."""
    chosen = path or os.environ.get("FACECAP_DATA") or cache_root() / "data"
    return Path(chosen).expanduser()


def shown(path: str | os.PathLike) -> str:
    """``path`` as a chapter shows it: inside the work folder as ``$FACECAP_CACHE/...``, inside
    the data root as ``$FACECAP_DATA/...``, inside the home folder as ``~/...``, so that no
    output of the book names a folder of the machine that built it."""
    target = Path(path).expanduser().resolve()
    roots = [("$FACECAP_CACHE", cache_root())]
    if os.environ.get("FACECAP_DATA"):
        roots.append(("$FACECAP_DATA", data_root().resolve()))
    roots.append(("~", Path.home().resolve()))
    for name, root in roots:
        if target == root or root in target.parents:
            return str(Path(name) / target.relative_to(root))
    return str(path)


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The first folder at or above ``start`` (default: cwd) holding ``notebooks/`` and ``book/``;
    failing that, the repository this package was installed from (editable install)."""
    candidates = [Path(start or Path.cwd()).resolve()]
    candidates += list(candidates[0].parents) + [Path(__file__).resolve().parents[1]]
    for folder in candidates:
        if (folder / "notebooks").is_dir() and (folder / "book").is_dir():
            return folder
    raise FileNotFoundError(
        f"no facecap repository (a folder with notebooks/ and book/) at or above {candidates[0]}"
    )


def book_measurement(name: str) -> dict | None:
    """A measurement the book keeps, ``book/measured/<name>.json`` (written by a benchmark's
    ``--json``), or ``None`` when it was never made (or outside a clone of the repository)."""
    import json

    try:
        path = find_repo_root() / "book" / "measured" / f"{name}.json"
    except FileNotFoundError:
        return None
    return json.loads(path.read_text()) if path.exists() else None
