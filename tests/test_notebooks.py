"""Every notebook runs through the runner in smoke mode (one test each), and the runner itself."""

import json
import os
import textwrap
from pathlib import Path

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


@pytest.mark.notebook
def test_the_book_projects_report_holds_chapter_5s_tables(smoke_dir, repo, tmp_path):
    """One evaluation: ``facecap run projects/synthfacs-book.yaml --stage evaluate`` on the smoke
    book (the shipped project with the smoke corpus, training and evaluation settings, in the
    chapters' work folder) writes every table chapter 5 shows, and the same numbers."""
    import dataclasses

    import pandas as pd
    import yaml

    from facecap_lib import chapters
    from facecap_lib.cli import main
    from facecap_lib.project import load_project
    from facecap_lib.runner import ProjectRun

    # chapter 5 in smoke mode (already run by test_notebook_smoke: then loaded from its cache)
    runner.run_notebook(repo / "notebooks" / "05_evaluation.py", smoke_dir, smoke=True, root=repo)
    data = yaml.safe_load((repo / "projects" / "synthfacs-book.yaml").read_text())
    data["output"] = os.environ["FACECAP_CACHE"]  # the chapters' work folder
    data["synthfacs"]["size"] = "smoke"
    data["training"]["settings"] = "smoke"
    data["evaluation"] = dataclasses.asdict(chapters.SMOKE_EVALUATION)
    path = tmp_path / "smoke-book.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--stage", "evaluate"]) == 0
    run = ProjectRun(load_project(path), log=None, progress=False)
    written, shown = run.report_dir(), chapters.tables_dir(run, 5)
    names = sorted(p.stem for p in shown.glob("*.csv"))
    assert {"captions", "faithfulness", "strategies", "probes", "findings"} <= set(names)
    assert names == sorted(p.stem for p in written.glob("*.csv"))
    for name in names:
        chapter, report = pd.read_csv(shown / f"{name}.csv"), pd.read_csv(written / f"{name}.csv")
        pd.testing.assert_frame_equal(chapter, report, check_exact=True, obj=name)
    assert "general" in set(pd.read_csv(written / "captions.csv")["captioner"])


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
    assert "02_broken.py" in message and "cell 5 of 5" in message
    assert "AssertionError: this cell refuses smoke mode" in message
    source_lines = (toy_repo / "notebooks" / "02_broken.py").read_text().splitlines()
    assert source_lines[info.value.line - 1] == "# %%"
    assert source_lines[info.value.line].startswith("assert SMOKE is False")
    assert f"line {info.value.line} of" in message
    assert (out / "02_broken.failed.ipynb").exists() and not (out / "02_broken.ipynb").exists()


def test_line_is_the_failing_cell_not_an_earlier_twin(toy_repo):
    twin = toy_repo / "notebooks" / "03_twin.py"
    twin.write_text(
        _notebook(
            """
        # %%
        x = 1

        # %%
        x = 1
        assert SMOKE is False
        """
        )
    )
    with pytest.raises(runner.NotebookExecutionError) as info:
        runner.run_notebooks(
            ["03"], smoke=True, output_dir=toy_repo / "out", root=toy_repo, log=None
        )
    lines = twin.read_text().splitlines()
    assert info.value.cell == 5 and lines[info.value.line : info.value.line + 2] == [
        "x = 1",
        "assert SMOKE is False",
    ]


def test_notebook_without_parameters_cell_is_refused(toy_repo):
    bad = toy_repo / "notebooks" / "03_no_params.py"
    bad.write_text("# %%\nSMOKE = False\n\n# %%\nassert SMOKE is False\n")
    with pytest.raises(
        runner.NotebookExecutionError,
        match="03_no_params.py: needs exactly one cell tagged parameters",
    ):
        runner.run_notebooks(
            ["03"], smoke=True, output_dir=toy_repo / "out", root=toy_repo, log=None
        )


@pytest.mark.parametrize(
    "body, expected",
    [
        ("import os\nos._exit(3)", "could not be executed"),
        ("import time\ntime.sleep(60)", "could not be executed"),
    ],
    ids=["dead-kernel", "timeout"],
)
def test_kernel_death_and_timeouts_name_the_notebook(toy_repo, body, expected):
    (toy_repo / "notebooks" / "03_dies.py").write_text(_notebook(f"\n# %%\n{body}\n"))
    with pytest.raises(runner.NotebookExecutionError, match=f"03_dies.py {expected}"):
        runner.run_notebooks(
            ["03"], smoke=True, output_dir=toy_repo / "out", root=toy_repo, timeout=5, log=None
        )


def test_the_command_line_timeout_reaches_the_kernel(toy_repo, capsys):
    from facecap_lib.cli import main

    (toy_repo / "notebooks" / "03_slow.py").write_text(
        _notebook("\n# %%\nimport time\ntime.sleep(60)\n")
    )
    argv = ["notebooks", "run", "03", "--smoke", "--root", str(toy_repo), "--timeout", "3"]
    assert main([*argv, "--out", str(toy_repo / "out")]) == 1
    assert "03_slow.py could not be executed" in capsys.readouterr().err


def test_duplicate_numbers_are_refused(toy_repo):
    (toy_repo / "notebooks" / "01_second.py").write_text(_notebook(""))
    with pytest.raises(ValueError, match="share a number"):
        runner.discover(toy_repo / "notebooks")


def test_cache_key_tracks_what_chapters_depend_on(toy_repo, monkeypatch):
    source = toy_repo / "notebooks" / "01_first.py"
    key = runner.cache_key(source, {"SMOKE": True}, toy_repo)
    assert runner.cache_key(source, {"SMOKE": True}, toy_repo) == key
    assert runner.cache_key(source, {"SMOKE": False}, toy_repo) != key
    monkeypatch.setenv("FACECAP_DATA", "/data/bp4d")
    assert runner.cache_key(source, {"SMOKE": True}, toy_repo) != key
    monkeypatch.delenv("FACECAP_DATA")
    (toy_repo / "constraints.txt").write_text("torch==2.13.0\n")
    assert runner.cache_key(source, {"SMOKE": True}, toy_repo) != key


def test_kernels_run_in_the_work_folder(toy_repo, tmp_path, monkeypatch):
    (toy_repo / "notebooks" / "03_cwd.py").write_text(
        _notebook(
            "\n# %%\nimport os\nprint('cwd=' + os.getcwd())\nprint('cache=' + os.environ['FACECAP_CACHE'])\n"
        )
    )
    monkeypatch.delenv("FACECAP_CACHE")
    run = runner.run_notebooks(
        ["03"], smoke=True, output_dir=toy_repo / "out", root=toy_repo, log=None
    )
    text = run[0].output.read_text()
    work = runner.default_work_dir(toy_repo, smoke=True)
    assert f"cwd={work}" in text and f"cache={work}" in text
    assert "FACECAP_CACHE" not in os.environ


def test_a_relative_work_folder_is_the_callers_not_nested_in_itself(toy_repo, monkeypatch):
    (toy_repo / "notebooks" / "03_cwd.py").write_text(
        _notebook("\n# %%\nimport os\nprint('cache=' + os.environ['FACECAP_CACHE'])\n")
    )
    monkeypatch.chdir(toy_repo)
    monkeypatch.setenv("FACECAP_CACHE", "build/mine")
    run = runner.run_notebooks(
        ["03"], smoke=True, output_dir=toy_repo / "out", root=toy_repo, log=None
    )
    assert f"cache={toy_repo / 'build' / 'mine'}\\n" in run[0].output.read_text()
    assert os.environ["FACECAP_CACHE"] == "build/mine"  # the caller's setting is given back


def test_the_work_folder_is_absolute_so_saved_tables_can_be_read_from_anywhere(
    tmp_path, monkeypatch
):
    from facecap_lib.paths import cache_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACECAP_CACHE", "work")
    assert cache_root() == tmp_path.resolve() / "work"
    assert cache_root("other") == tmp_path.resolve() / "other"


def test_failure_removes_a_stale_good_copy(toy_repo):
    out = toy_repo / "out"
    runner.run_notebooks(["02"], smoke=False, output_dir=out, root=toy_repo, log=None)
    assert (out / "02_broken.ipynb").exists()
    with pytest.raises(runner.NotebookExecutionError):
        runner.run_notebooks(["02"], smoke=True, output_dir=out, root=toy_repo, log=None)
    assert not (out / "02_broken.ipynb").exists()


def test_a_rerun_notebook_reruns_the_ones_after_it(toy_repo):
    out = toy_repo / "out"
    (toy_repo / "notebooks" / "02_broken.py").unlink()
    (toy_repo / "notebooks" / "02_second.py").write_text(_notebook("\n# %%\nprint('two')\n"))
    runner.run_notebooks(smoke=True, output_dir=out, root=toy_repo, log=None)
    again = runner.run_notebooks(smoke=True, output_dir=out, root=toy_repo, log=None)
    assert [r.cached for r in again] == [True, True]
    first = toy_repo / "notebooks" / "01_first.py"
    first.write_text(first.read_text() + "\n# %%\nprint('changed upstream')\n")
    third = runner.run_notebooks(smoke=True, output_dir=out, root=toy_repo, log=None)
    assert [r.cached for r in third] == [False, False]


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


@pytest.mark.notebook
def test_captions_chapter_through_an_llm_never_shows_the_key(repo, tmp_path, monkeypatch):
    from facecap_lib.captions.local_server import LocalServer

    secret = "sk-test-NOTEBOOK-SECRET-987654321"
    with LocalServer() as server:
        monkeypatch.setenv("FACECAP_LLM_MODEL", "local-model")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        monkeypatch.setenv("FACECAP_CACHE", str(tmp_path / "work"))
        source = repo / "notebooks" / "03_caption_synthesis.py"
        run = runner.run_notebook(source, tmp_path / "out", smoke=True, force=True, root=repo)
        assert (
            sum(server.requests.values()) > 0
            and server.seen_authorization[-1] == f"Bearer {secret}"
        )
    text = run.output.read_text()
    assert "LLMDescriber" in text and "local-model" in text
    assert secret not in text
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_paths_are_shown_by_the_folder_they_are_in_not_the_machines(tmp_path, monkeypatch):
    from facecap_lib.paths import shown

    monkeypatch.setenv("FACECAP_CACHE", str(tmp_path / "work"))
    monkeypatch.setenv("FACECAP_DATA", str(tmp_path / "datasets"))
    assert shown(tmp_path / "work" / "runs" / "tiny-1") == "$FACECAP_CACHE/runs/tiny-1"
    assert shown(tmp_path / "datasets" / "BP4D") == "$FACECAP_DATA/BP4D"
    assert shown(Path.home() / "photos") == "~/photos"
    assert shown("/elsewhere/x") == "/elsewhere/x"  # nothing to abbreviate: as given
