"""The book: every notebook is a chapter, it builds from the executed notebooks, broken links fail."""

import shutil

import pytest

from facecap_lib import notebooks as runner
from facecap_lib.book import build_book, toc_files


def test_every_notebook_is_in_the_toc_and_back(repo):
    chapters = [f for f in toc_files(repo / "book") if f.startswith("chapters/")]
    stems = [p.stem for p in runner.discover(repo / "notebooks")]
    assert chapters == [f"chapters/{stem}" for stem in stems]


def test_toc_pages_exist(repo):
    for page in toc_files(repo / "book"):
        if not page.startswith("chapters/"):
            assert (repo / "book" / f"{page}.md").exists(), page


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory, smoke_dir, repo):
    """A copy of book/ whose chapters are this session's smoke-executed notebooks."""
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(repo / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    runner.run_notebooks(smoke=True, output_dir=smoke_dir, root=repo, log=None)  # cached if run
    (book / "chapters").mkdir()
    for executed in [*smoke_dir.glob("*.ipynb"), *smoke_dir.glob("*.py")]:
        shutil.copy(executed, book / "chapters" / executed.name)
    return book


@pytest.mark.book
def test_book_builds(smoke_book, repo):
    html = build_book(smoke_book, quiet=True)
    assert "intro.html" in (html / "index.html").read_text()
    intro = (html / "intro.html").read_text()
    assert "three-stage pipeline" in intro.lower() and "pipeline.svg" in intro
    chapter = (html / "chapters" / "01_au_lexicon.html").read_text()
    assert "The AU lexicon" in chapter and "<img" in chapter  # the prototype heat maps
    references = (html / "references.html").read_text().lower()
    assert "describe your facial expressions" in references
    assert "compound facial expressions" in references
    for stem in (p.stem for p in runner.discover(repo / "notebooks")):  # the download button
        page = (html / "chapters" / f"{stem}.html").read_text()
        for suffix in (".ipynb", ".py"):
            assert f"_sources/chapters/{stem}{suffix}" in page, (stem, suffix)
        source = html / "_sources" / "chapters" / f"{stem}.py"
        assert source.read_bytes() == (repo / "notebooks" / f"{stem}.py").read_bytes()


@pytest.mark.book
def test_the_book_names_no_folder_of_the_machine_that_built_it(smoke_book, repo):
    """Work folders and checkpoints print as $FACECAP_CACHE/..., papermill's paths are dropped
    from the downloadable notebooks, and no progress-bar warning names the interpreter."""
    html = smoke_book / "_build" / "html"
    if not html.exists():
        html = build_book(smoke_book, quiet=True)
    machine = [str(repo), str(smoke_book.parent), str(smoke_book.resolve().parent)]
    for page in [*html.rglob("*.html"), *html.glob("_sources/chapters/*")]:
        text = page.read_text(errors="replace")
        assert not [m for m in machine if m in text], page
        assert "IProgress" not in text and "jupyter.widget-view" not in text, page


@pytest.mark.book
def test_broken_cross_reference_fails(smoke_book, tmp_path):
    broken = tmp_path / "book"
    shutil.copytree(smoke_book, broken, ignore=shutil.ignore_patterns("_build"))
    intro = broken / "intro.md"
    intro.write_text(
        intro.read_text() + "\nSee {doc}`chapters/99_missing` and {ref}`no-such-label`.\n"
    )
    with pytest.raises(RuntimeError, match="book build failed"):
        build_book(broken, quiet=True)


def test_unexecuted_chapter_is_reported(tmp_path, repo):
    book = tmp_path / "book"
    shutil.copytree(repo / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    with pytest.raises(RuntimeError, match="no page for \\['chapters/01_au_lexicon'"):
        build_book(book, quiet=True)
