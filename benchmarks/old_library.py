"""The library as it was at a commit, for the benchmarks that run old and new code side by side
(``loop_equivalence.py``, ``loop_speed.py``). Standard library only: a worker running the old code
imports this file too, and nothing of the new library may come with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def library_at(commit: str, folder: Path) -> Path:
    """``facecap_lib`` at ``commit`` (``git archive``), unpacked into ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "facecap_lib"], capture_output=True, check=True
    ).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def check_side(side: str) -> None:
    """Refuse a worker whose ``facecap_lib`` is not the one its side asked for (an installed
    copy found before ``PYTHONPATH``, say): the comparison would be of a library with itself."""
    import facecap_lib

    here = Path(facecap_lib.__file__).resolve().parent.parent
    if (side == "old") != (here != ROOT):
        raise RuntimeError(f"the {side} side imported the library at {here}")
