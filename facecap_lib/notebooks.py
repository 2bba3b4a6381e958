"""The notebook runner: jupytext ``.py`` sources → executed ``.ipynb`` copies, through papermill.

``notebooks/NN_slug.py`` (jupytext py:percent) are the only sources. :func:`run_notebooks` converts
each with jupytext, executes it with papermill (parameters injected after the cell tagged
``parameters``; ``SMOKE`` always set), and writes the executed copy to a git-ignored folder:
``book/chapters/`` for full runs (the book renders those) and ``build/smoke/`` for smoke runs.

An executed copy records a cache key (hash of the source, the parameters and the ``facecap_lib``
sources); a later run with the same key is skipped unless ``force``. A failing notebook raises
:class:`NotebookExecutionError` naming the notebook, the cell and its first line in the ``.py``
source; its partial output is kept next to the others as ``NN_slug.failed.ipynb``, and any earlier
good copy is removed so that the book never shows a stale chapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[a-z0-9_]+\.py$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
METADATA_KEY = "facecap"


class NotebookExecutionError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""

    def __init__(
        self, message: str, notebook: Path, cell: int | None = None, line: int | None = None
    ):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.line = line


@dataclass(frozen=True)
class NotebookRun:
    """What happened to one notebook."""

    source: Path
    output: Path
    seconds: float
    cached: bool


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


def discover(notebooks_dir: str | os.PathLike) -> list[Path]:
    """The ``NN_slug.py`` notebooks of a folder, in order."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))


def select(notebooks: Sequence[Path], names: Iterable[str] | None) -> list[Path]:
    """Pick notebooks by number (``01``), stem (``01_au_lexicon``), file name or slug (``au_lexicon``)."""
    names = list(names or [])
    if not names:
        return list(notebooks)
    chosen: list[Path] = []
    for name in names:
        key = Path(name).name.removesuffix(".py").removesuffix(".ipynb")
        hits = [p for p in notebooks if key in (p.stem, p.stem[:2], p.stem[3:])]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"notebook {name!r} matches {len(hits)} notebooks; known: {known}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def to_notebook(source: Path):
    """Read a py:percent source with jupytext and give it the python3 kernel papermill needs."""
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def _library_digest() -> str:
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(source: Path, parameters: dict[str, Any]) -> str:
    """Hash of what an executed copy depends on: the source, the parameters, the library code."""
    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    digest.update(_library_digest().encode())
    return digest.hexdigest()


def _stored_key(output: Path) -> str | None:
    try:
        meta = json.loads(output.read_text(encoding="utf-8"))["metadata"]
        return meta.get(METADATA_KEY, {}).get("cache_key")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _line_of(source: Path, cell_source: str) -> int | None:
    """First line (1-based) of a code cell's text in the ``.py`` source, if it can be found."""
    first = next((ln for ln in cell_source.splitlines() if ln.strip()), None)
    if first is None:
        return None
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if line.rstrip() == first.rstrip():
            return number
    return None


@contextmanager
def _kernel_environment(root: Path):
    """Environment of the kernel papermill starts, restored afterwards: this interpreter first on
    PATH, the repository's work folder unless one is set, and the inline plotting backend (figures
    are part of the executed copy, whatever MPLBACKEND the caller uses)."""
    saved = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("FACECAP_CACHE", str(root / "build" / "work"))
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_notebook(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    smoke: bool,
    parameters: dict[str, Any] | None = None,
    force: bool = False,
    root: str | os.PathLike | None = None,
    progress_bar: bool = False,
    log=None,
) -> NotebookRun:
    """Execute one notebook into ``output_dir/<stem>.ipynb``; skip it if its cache key is unchanged.

    ``log`` (if given) is called with a line when execution starts; ``progress_bar`` shows
    papermill's per-cell progress bar.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(source).resolve()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{source.stem}.ipynb"
    failed = output_dir / f"{source.stem}.failed.ipynb"
    params = {"SMOKE": bool(smoke), **(parameters or {})}
    key = cache_key(source, params)
    if not force and output.exists() and _stored_key(output) == key:
        return NotebookRun(source, output, 0.0, cached=True)

    if log:
        log(f"{source.stem}: running ({'smoke' if smoke else 'full'}) ...")
    nb = to_notebook(source)
    nb.metadata[METADATA_KEY] = {"cache_key": key, "source": source.name, "parameters": params}
    partial = output_dir / f".{source.stem}.running.ipynb"
    output.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    root = Path(root).resolve() if root else find_repo_root(source.parent)
    try:
        with _kernel_environment(root):
            papermill.execute_notebook(
                nb,
                str(partial),
                parameters=params,
                kernel_name=KERNELSPEC["name"],
                cwd=str(source.parent),
                progress_bar=progress_bar,
                log_output=False,
            )
    except PapermillExecutionError as err:
        if partial.exists():
            partial.replace(failed)
        line = _line_of(source, err.source)
        where = f"line {line} of " if line else ""
        raise NotebookExecutionError(
            f"notebook {source.name} failed in cell In [{err.exec_count}] ({where}{source}): "
            f"{err.ename}: {err.evalue}\nexecuted copy with the traceback: {failed}",
            source,
            err.exec_count,
            line,
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    return NotebookRun(source, output, time.perf_counter() - start, cached=False)


def default_output_dir(root: Path, smoke: bool) -> Path:
    """``build/smoke`` for smoke runs, ``book/chapters`` (rendered by the book) for full runs."""
    return root / "build" / "smoke" if smoke else root / "book" / "chapters"


def run_notebooks(
    names: Iterable[str] | None = None,
    *,
    smoke: bool = False,
    output_dir: str | os.PathLike | None = None,
    force: bool = False,
    root: str | os.PathLike | None = None,
    log=print,
    progress_bar: bool = False,
) -> list[NotebookRun]:
    """Execute the repository's notebooks (all, or those ``names`` picks) in order.

    Args:
        names: notebook numbers, stems or slugs; ``None`` runs all.
        smoke: pass ``SMOKE=True`` (CI's fast settings) instead of the full settings.
        output_dir: where executed copies go; default :func:`default_output_dir`.
        force: execute even when an up-to-date executed copy exists.
        root: repository root; default :func:`find_repo_root`.
        log: called with status lines per notebook (``None`` for silence).
        progress_bar: show papermill's per-cell progress bar.

    Raises:
        NotebookExecutionError: at the first failing notebook, naming it and the cell.
    """
    root = Path(root).resolve() if root else find_repo_root()
    out = Path(output_dir) if output_dir else default_output_dir(root, smoke)
    runs = []
    for source in select(discover(root / "notebooks"), names):
        run = run_notebook(
            source, out, smoke=smoke, force=force, root=root, progress_bar=progress_bar, log=log
        )
        if log:
            status = "up to date, skipped" if run.cached else f"done in {run.seconds:.1f} s"
            log(f"{source.stem}: {status} -> {run.output}")
        runs.append(run)
    return runs
