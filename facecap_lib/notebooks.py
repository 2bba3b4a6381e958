"""The notebook runner: jupytext ``.py`` sources → executed ``.ipynb`` copies, through papermill.

``notebooks/NN_slug.py`` (jupytext py:percent) are the only sources. :func:`run_notebooks` converts
each with jupytext, checks it has exactly one cell tagged ``parameters`` that sets ``SMOKE``,
executes it with papermill (parameters injected right after that cell), and writes the executed
copy to a git-ignored folder: ``book/chapters/`` for full runs (the book renders those) and
``build/smoke/`` for smoke runs.

Kernels run in the work folder (``$FACECAP_CACHE``, by default ``build/work/full`` or
``build/work/smoke`` so the two modes never share artifacts) with this interpreter first on PATH.

An executed copy records a cache key: a hash of the notebook source, the parameters, every file of
``facecap_lib``, the project's dependency files, the Python version, the data root and the LLM
endpoint (model and base URL, never the key). A later
run with the same key is skipped unless ``force``; once one notebook of a run executes, the ones
after it execute too, since they may read what it wrote. Any failure raises
:class:`NotebookExecutionError` naming the notebook (and, for an error in a cell, the cell and its
line in the ``.py`` source); the partial output is kept as ``NN_slug.failed.ipynb`` and any earlier
good copy is removed, so the book never shows a stale chapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecap_lib.paths import find_repo_root  # noqa: F401  (re-exported: callers found it here)
from facecap_lib.progress import ENVIRONMENT

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[a-z0-9_]+\.py$")
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
METADATA_KEY = "facecap"
DEPENDENCY_FILES = ("pyproject.toml", "constraints.txt")
# what else decides a chapter's output (never the API key: it changes no output and is a secret)
OUTPUT_ENVIRONMENT = ("FACECAP_DATA", "FACECAP_LLM_MODEL", "OPENAI_BASE_URL")


class NotebookExecutionError(RuntimeError):
    """A notebook failed; the message names the notebook, and the cell and line where known."""

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


def discover(notebooks_dir: str | os.PathLike) -> list[Path]:
    """The ``NN_slug.py`` notebooks of a folder, in order; two notebooks may not share a number."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_PATTERN.match(p.name))
    numbers = [p.name[:2] for p in found]
    clashes = sorted({p.name for p in found if numbers.count(p.name[:2]) > 1})
    if clashes:
        raise ValueError(f"notebooks in {folder} share a number: {clashes}")
    return found


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
    """Read a py:percent source with jupytext, give it the python3 kernel papermill needs, and
    check its parameters cell (exactly one, setting ``SMOKE``)."""
    import jupytext

    nb = jupytext.read(source, fmt="py:percent")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1 or not re.search(r"^SMOKE\s*=", tagged[0].source, flags=re.M):
        raise NotebookExecutionError(
            f"notebook {source}: needs exactly one cell tagged parameters "
            f'(`# %% tags=["parameters"]`) that sets SMOKE; found {len(tagged)} tagged cell(s)',
            source,
        )
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def _digest_files(digest, root: Path, paths: Iterable[Path]) -> None:
    for path in sorted(paths):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())


def cache_key(source: Path, parameters: dict[str, Any], root: Path | None = None) -> str:
    """Hash of what an executed copy depends on (see the module docstring)."""
    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    package = Path(__file__).resolve().parent
    _digest_files(digest, package, package.rglob("*"))
    if root is not None:
        _digest_files(digest, root, (root / name for name in DEPENDENCY_FILES))
    digest.update(sys.version.encode())
    for name in OUTPUT_ENVIRONMENT:
        digest.update(f"{name}={os.environ.get(name, '')}".encode())
    return digest.hexdigest()


def _stored_key(output: Path) -> str | None:
    try:
        meta = json.loads(output.read_text(encoding="utf-8"))["metadata"]
        return meta.get(METADATA_KEY, {}).get("cache_key")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cell_lines(source: Path) -> list[int]:
    """Line (1-based) of each ``# %%`` cell marker of a py:percent source."""
    lines = source.read_text(encoding="utf-8").splitlines()
    return [n for n, line in enumerate(lines, start=1) if line.startswith("# %%")]


def default_work_dir(root: Path, smoke: bool) -> Path:
    """Where kernels run and chapters hand artifacts on, unless ``$FACECAP_CACHE`` says otherwise."""
    return root / "build" / "work" / ("smoke" if smoke else "full")


OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # nothing here may reach for a model hub


def chapter_environment(root: Path, smoke: bool = False) -> dict[str, str]:
    """The variables a chapter's kernel runs with, the runner's and JupyterLab's alike: this
    interpreter first on PATH, the work folder (``$FACECAP_CACHE``, absolute, default
    :func:`default_work_dir`), inline figures, and no model hub unless the caller allows one."""
    # absolute: the kernel runs inside the work folder, where a relative path would nest a new one
    chosen = os.environ.get("FACECAP_CACHE") or default_work_dir(root, smoke)
    return {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        # figures belong in the executed copy, whatever backend the caller uses
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "FACECAP_CACHE": str(Path(chosen).resolve()),
        **{name: os.environ.get(name, "1") for name in OFFLINE},
    }


@contextmanager
def _kernel_environment(root: Path, smoke: bool) -> Iterator[Path]:
    """Set, for the kernel papermill starts, :func:`chapter_environment` and text progress bars
    (an executed copy holds no widgets: :mod:`facecap_lib.progress`); restore exactly those
    variables afterwards. Yields the work folder."""

    changes = {**chapter_environment(root, smoke), ENVIRONMENT: "text"}
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    work = Path(os.environ["FACECAP_CACHE"])
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_notebook(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    smoke: bool,
    parameters: dict[str, Any] | None = None,
    force: bool = False,
    root: str | os.PathLike | None = None,
    timeout: float | None = None,
    progress_bar: bool = False,
    log=None,
) -> NotebookRun:
    """Execute one notebook into ``output_dir/<stem>.ipynb``; skip it if its cache key is unchanged.

    Args:
        source: the ``NN_slug.py`` file.
        output_dir: folder for the executed copy.
        smoke: the value of ``SMOKE``.
        parameters: further parameters to inject.
        force: execute even if an up-to-date copy exists.
        root: repository root (default: found from ``source``).
        timeout: seconds one cell may run (default: no limit).
        progress_bar: show papermill's per-cell progress bar.
        log: called with a line when execution starts.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(source).resolve()
    root = Path(root).resolve() if root else find_repo_root(source.parent)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{source.stem}.ipynb"
    failed = output_dir / f"{source.stem}.failed.ipynb"
    params = {"SMOKE": bool(smoke), **(parameters or {})}
    key = cache_key(source, params, root)
    if not force and output.exists() and _stored_key(output) == key:
        _copy_source(source, output)  # (an executed copy of before the copies were kept)
        return NotebookRun(source, output, 0.0, cached=True)

    nb = to_notebook(source)
    nb.metadata[METADATA_KEY] = {"cache_key": key, "source": source.name, "parameters": params}
    markers = _cell_lines(source)
    parameters_index = next(
        i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])
    )
    partial = output_dir / f".{source.stem}.running.ipynb"
    output.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    if log:
        log(f"{source.stem}: running ({'smoke' if smoke else 'full'}) ...")
    start = time.perf_counter()
    try:
        with _kernel_environment(root, smoke) as work:
            papermill.execute_notebook(
                nb,
                str(partial),
                parameters=params,
                kernel_name=KERNELSPEC["name"],
                cwd=str(work),
                progress_bar=progress_bar,
                log_output=False,
                execution_timeout=timeout,
            )
    except PapermillExecutionError as err:
        if partial.exists():
            partial.replace(failed)
        # the executed copy has papermill's injected cell right after the parameters cell
        index = err.cell_index - (1 if err.cell_index > parameters_index else 0)
        line = markers[index] if len(markers) == len(nb.cells) else None
        where = f"line {line} of " if line else ""
        raise NotebookExecutionError(
            f"notebook {source.name} failed in cell {index + 1} of {len(nb.cells)} "
            f"({where}{source}): {err.ename}: {err.evalue}\n"
            f"executed copy with the traceback: {failed}",
            source,
            index + 1,
            line,
        ) from None
    except Exception as err:  # dead kernel, cell timeout, kernel that never starts ...
        if partial.exists():
            partial.replace(failed)
        raise NotebookExecutionError(
            f"notebook {source.name} could not be executed ({source}): {type(err).__name__}: {err}",
            source,
        ) from err
    _forget_paths(partial)
    partial.replace(output)
    _copy_source(source, output)
    return NotebookRun(source, output, time.perf_counter() - start, cached=False)


def _copy_source(source: Path, output: Path) -> None:
    """The chapter's ``.py`` beside its executed copy, for the book's download button."""
    target = output.with_suffix(".py")
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.write_bytes(source.read_bytes())


def _forget_paths(executed: Path) -> None:
    """Drop what papermill records of the machine from an executed copy (the book offers it for
    download): the input notebook, passed as an object, and the paths of both."""
    nb = json.loads(executed.read_text(encoding="utf-8"))
    for key in ("input_path", "output_path"):
        nb["metadata"].get("papermill", {}).pop(key, None)
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


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
    timeout: float | None = None,
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
        timeout: seconds one cell may run (default: no limit).
        log: called with status lines per notebook (``None`` for silence).
        progress_bar: show papermill's per-cell progress bar.

    Raises:
        NotebookExecutionError: at the first failing notebook, naming it (and the cell).
    """
    root = Path(root).resolve() if root else find_repo_root()
    out = Path(output_dir) if output_dir else default_output_dir(root, smoke)
    runs: list[NotebookRun] = []
    for source in select(discover(root / "notebooks"), names):
        upstream_ran = any(not r.cached for r in runs)
        run = run_notebook(
            source,
            out,
            smoke=smoke,
            force=force or upstream_ran,
            root=root,
            timeout=timeout,
            progress_bar=progress_bar,
            log=log,
        )
        if log:
            status = "up to date, skipped" if run.cached else f"done in {run.seconds:.1f} s"
            log(f"{source.stem}: {status} -> {run.output}")
        runs.append(run)
    return runs
