"""Building the HTML book from the executed notebooks (Jupyter Book 1.x, offline).

The build never executes notebooks (``execute_notebooks: off``): it renders the copies that
:mod:`facecap_lib.notebooks` wrote to ``book/chapters``. Warnings are errors and cross-references
are checked (``--warningiserror --nitpick``), so a broken link or a missing chapter fails the build.
Every build starts from an empty ``_build`` folder: Sphinx's incremental builds would pass a broken
page the second time (it is not re-read) and keep pages of removed chapters.

This module is also a Sphinx extension (``_config.yml``: ``extra_extensions``): each chapter's
download button offers its jupytext ``.py`` source beside the executed ``.ipynb`` (the runner puts
a copy of the source next to each executed chapter).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml


def toc_files(book_dir: str | os.PathLike) -> list[str]:
    """Every ``file:`` entry of the book's ``_toc.yml``, in order (root first)."""
    toc = yaml.safe_load((Path(book_dir) / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("chapters"))
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def build_book(book_dir: str | os.PathLike, *, quiet: bool = False) -> Path:
    """Build the HTML book into ``<book_dir>/_build/html`` and return that folder.

    Raises ``RuntimeError`` with the builder's output when the build fails (warnings included) or a
    chapter listed in the table of contents has not been executed yet.
    """
    book_dir = Path(book_dir).resolve()
    missing = [
        f
        for f in toc_files(book_dir)
        if not any((book_dir / f"{f}{ext}").exists() for ext in (".md", ".ipynb"))
    ]
    if missing:
        raise RuntimeError(
            f"book {book_dir}: no page for {missing}; execute the notebooks first "
            "(`facecap notebooks run`)"
        )
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    if not jupyter_book.exists():
        raise RuntimeError(f"jupyter-book is not installed beside {sys.executable}: run `make env`")
    shutil.rmtree(book_dir / "_build", ignore_errors=True)
    command = [
        str(jupyter_book),
        "build",
        str(book_dir),
        "--builder",
        "html",
        "--warningiserror",
        "--nitpick",
        "--keep-going",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if not quiet or result.returncode:
        sys.stderr.write(result.stdout[-20000:] + result.stderr[-20000:])
    if result.returncode:
        raise RuntimeError(f"book build failed ({' '.join(command)}), exit {result.returncode}")
    return book_dir / "_build" / "html"


# ---------------------------------------------------------------- the Sphinx extension


def _source_button(app, pagename, templatename, context, doctree) -> None:
    """Add ``.py`` to the theme's download buttons of a chapter that has its source beside it."""
    if not (Path(app.srcdir) / f"{pagename}.py").exists():
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(
                1,
                {
                    "type": "link",
                    "url": f"{context['pathto']('_sources', 1)}/{pagename}.py",
                    "text": ".py",
                    "tooltip": "Download the source (jupytext py:percent: opens as a notebook)",
                    "icon": "fas fa-file-code",
                    "label": "download-source-py-button",
                },
            )


def _copy_sources(app, exception) -> None:
    """Put each chapter's ``.py`` where its download button points."""
    if exception is not None or app.builder.format != "html":
        return
    for source in Path(app.srcdir).glob("chapters/*.py"):
        target = Path(app.outdir) / "_sources" / "chapters" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def setup(app) -> dict:
    app.connect("html-page-context", _source_button, priority=502)  # after the theme's (501)
    app.connect("build-finished", _copy_sources)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
