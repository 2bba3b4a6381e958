"""environment.yml (conda, for GPU users) and pyproject.toml must carry the same dependencies."""

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement


@pytest.fixture(scope="module")
def pyproject(repo):
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def conda_pip(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    return env, pip_lists[0]


def _normalised(requirements):
    parsed = [Requirement(r) for r in requirements]
    names = [r.name.lower().replace("_", "-") for r in parsed]
    assert len(names) == len(set(names)), f"a package is listed twice: {sorted(names)}"
    return {name: str(r.specifier) for name, r in zip(names, parsed, strict=True)}


def test_same_dependencies(pyproject, conda_pip):
    _, pip = conda_pip
    expected = _normalised(pyproject["dependencies"] + pyproject["optional-dependencies"]["dev"])
    actual = _normalised(pip)
    missing = {k: v for k, v in expected.items() if k not in actual}
    extra = {k: v for k, v in actual.items() if k not in expected}
    differ = {
        k: (expected[k], actual[k])
        for k in expected.keys() & actual.keys()
        if expected[k] != actual[k]
    }
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, f"versions differ (pyproject, environment.yml): {differ}"


def test_same_python(pyproject, conda_pip):
    env, _ = conda_pip
    assert "python=3.11" in env["dependencies"]
    assert pyproject["requires-python"] == ">=3.11"


def test_required_pins(pyproject, repo):
    deps = _normalised(pyproject["dependencies"])
    assert "torchvision" not in deps, "torchvision does not import beside the CPU torch wheel"
    assert deps["transformers"] in (">=5.0,<6", "<6,>=5.0"), "Blip2 code targets transformers 5.x"
    assert "<2" in deps["jupyter-book"], "Jupyter Book 2 cannot build offline"
    constraints = [
        line.split("#")[0].strip() for line in (repo / "constraints.txt").read_text().splitlines()
    ]
    pins = _normalised([c for c in constraints if c])
    assert pins["torch"] == "==2.13.0"
    assert set(pins) <= set(deps), "constraints.txt pins a package that is not a dependency"


def test_console_script(pyproject):
    assert pyproject["scripts"] == {"facecap": "facecap_lib.cli:main"}


def test_make_test_fails_when_no_test_runs(repo):
    import subprocess

    result = subprocess.run(
        ["make", "-s", "test", "PYTEST_ARGS=-k no_test_has_this_name -p no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "pytest collected no tests: that is a failure here" in result.stderr
