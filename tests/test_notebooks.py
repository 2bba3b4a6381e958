"""Every notebook runs through the runner in smoke mode (one test each), and the runner itself."""

import json
import textwrap

import pytest

from facecap_lib import notebooks as runner

REPO_NOTEBOOKS = runner.discover(runner.find_repo_root() / "notebooks")


@pytest.mark.notebook
@pytest.mark.parametrize("source", REPO_NOTEBOOKS, ids=[p.stem for p in REPO_NOTEBOOKS])
def test_notebook_smoke(source, smoke_dir, repo):
    run = runner.run_notebook(source, smoke_dir, smoke=True, force=True, root=repo)
    executed = json.loads(run.output.read_text())
    assert not run.cached and run.output.name == f"{source.stem}.ipynb"
    assert executed["metadata"]["facecap"]["parameters"]["SMOKE"] is True
    assert executed["metadata"]["papermill"]["exception"] is not True
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert len(injected) == 1 and "SMOKE = True" in "".join(injected[0]["source"])


def test_repository_has_notebooks():
    assert [p.name for p in REPO_NOTEBOOKS][:1] == ["01_au_lexicon.py"]


def _notebook(body: str) -> str:
    return textwrap.dedent(
        """\
        # %% [markdown]
        # # A test notebook

        # %%
        import os

        # %% tags=["parameters"]
        SMOKE = False
        """
    ) + textwrap.dedent(body)


@pytest.fixture
def toy_repo(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_first.py").write_text(
        _notebook(
            """
        # %%
        value = 1 if SMOKE else 2
        print("value", value)
        """
        )
    )
    (tmp_path / "notebooks" / "02_broken.py").write_text(
        _notebook(
            """
        # %%
        ok = True

        # %%
        assert SMOKE is False, "this cell refuses smoke mode"
        """
        )
    )
    (tmp_path / "notebooks" / "README.md").write_text("not a notebook")
    (tmp_path / "notebooks" / "3_bad_name.py").write_text("not a notebook either")
    return tmp_path


def test_discover_and_select(toy_repo):
    found = runner.discover(toy_repo / "notebooks")
    assert [p.name for p in found] == ["01_first.py", "02_broken.py"]
    for name in ("01", "01_first", "01_first.py", "first", "notebooks/01_first.py"):
        assert runner.select(found, [name]) == found[:1]
    assert runner.select(found, None) == found
    assert runner.select(found, ["02", "01", "02"]) == [found[1], found[0]]
    with pytest.raises(ValueError, match="'03' matches 0 notebooks; known: 01_first, 02_broken"):
        runner.select(found, ["03"])


def test_failure_names_notebook_cell_and_line(toy_repo):
    out = toy_repo / "out"
    with pytest.raises(runner.NotebookExecutionError) as info:
        runner.run_notebooks(["02"], smoke=True, output_dir=out, root=toy_repo, log=None)
    message = str(info.value)
    assert "02_broken.py" in message
    assert "AssertionError: this cell refuses smoke mode" in message
    source_lines = (toy_repo / "notebooks" / "02_broken.py").read_text().splitlines()
    assert source_lines[info.value.line - 1].startswith("assert SMOKE is False")
    assert f"line {info.value.line} of" in message
    assert (out / "02_broken.failed.ipynb").exists() and not (out / "02_broken.ipynb").exists()


def test_failure_removes_a_stale_good_copy(toy_repo):
    out = toy_repo / "out"
    runner.run_notebooks(["02"], smoke=False, output_dir=out, root=toy_repo, log=None)
    assert (out / "02_broken.ipynb").exists()
    with pytest.raises(runner.NotebookExecutionError):
        runner.run_notebooks(["02"], smoke=True, output_dir=out, root=toy_repo, log=None)
    assert not (out / "02_broken.ipynb").exists()


def test_cache_skips_unchanged_and_reruns_changed(toy_repo):
    out = toy_repo / "out"
    lines = []
    first = runner.run_notebooks(
        ["01"], smoke=True, output_dir=out, root=toy_repo, log=lines.append
    )
    assert not first[0].cached and "value 1" in first[0].output.read_text()
    again = runner.run_notebooks(
        ["01"], smoke=True, output_dir=out, root=toy_repo, log=lines.append
    )
    assert again[0].cached and any("up to date" in line for line in lines)
    full = runner.run_notebooks(["01"], smoke=False, output_dir=out, root=toy_repo, log=None)
    assert not full[0].cached and "value 2" in full[0].output.read_text()
    source = toy_repo / "notebooks" / "01_first.py"
    source.write_text(source.read_text() + "\n# %%\nprint('edited')\n")
    edited = runner.run_notebooks(["01"], smoke=False, output_dir=out, root=toy_repo, log=None)
    assert not edited[0].cached and "edited" in edited[0].output.read_text()
    forced = runner.run_notebooks(
        ["01"], smoke=False, output_dir=out, root=toy_repo, force=True, log=None
    )
    assert not forced[0].cached


def test_default_output_folders(repo):
    assert runner.default_output_dir(repo, smoke=False) == repo / "book" / "chapters"
    assert runner.default_output_dir(repo, smoke=True) == repo / "build" / "smoke"


def test_find_repo_root(tmp_path, repo):
    assert runner.find_repo_root(repo / "facecap_lib") == repo
    assert runner.find_repo_root(tmp_path) == repo  # falls back to the installed repository
