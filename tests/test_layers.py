"""The library's layers (the import-linter contracts in pyproject.toml): every import goes down a
layer and no room's modules import each other in a loop, function-local imports included. The
contracts are checked on the package as it is, and shown to break on a copy with one planted
import that climbs a layer, or closes a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package and pyproject.toml in ``root`` (found there first)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def planted(tmp_path: Path, repo: Path, module: str, line: str) -> Path:
    """A copy of the package and its pyproject.toml, ``line`` added to ``module`` (a path)."""
    root = tmp_path / "copy"
    shutil.copytree(
        repo / "facecap_lib", root / "facecap_lib", ignore=shutil.ignore_patterns("foundations")
    )
    shutil.copy(repo / "pyproject.toml", root)
    with open(root / module, "a") as f:
        f.write(f"\n\ndef _planted():\n    {line}\n")
    return root


def test_the_package_keeps_its_layers_and_has_no_cycles(repo):
    result = lint(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # training reaching for the runner: the kind of import that made the nine-module cycle
        (
            "facecap_lib/training/stages.py",
            "from facecap_lib.runner import ProjectRun",
            "facecap_lib.training is not allowed to import facecap_lib.runner",
        ),
        # the data room reaching for the captions, a layer up
        (
            "facecap_lib/data/curate.py",
            "from facecap_lib.captions import rules",
            "facecap_lib.data is not allowed to import facecap_lib.captions",
        ),
        # a loop inside one room: faces imports protocol, which imports faces
        (
            "facecap_lib/evaluation/faces.py",
            "from facecap_lib.evaluation import protocol",
            "no import cycles among the modules of one room BROKEN",
        ),
    ],
)
def test_a_planted_function_local_import_breaks_a_contract(tmp_path, repo, module, line, message):
    result = lint(planted(tmp_path, repo, module, line))
    assert result.returncode != 0
    assert message in result.stdout, result.stdout
