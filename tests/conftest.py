"""Shared test set-up: offline hub, the repository root, slow/gpu gates, book tests last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session", autouse=True)
def isolated_work_folder(tmp_path_factory):
    """Tests never read a user's datasets or write into their work folder."""
    saved = {name: os.environ.get(name) for name in ("FACECAP_CACHE", "FACECAP_DATA")}
    os.environ["FACECAP_CACHE"] = str(tmp_path_factory.mktemp("work"))
    os.environ.pop("FACECAP_DATA", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory, repo) -> Path:
    """One folder for this session's smoke-executed notebooks, shared by notebook and book tests."""
    return tmp_path_factory.mktemp("smoke")


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("RUN_SLOW") == "1"
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: set RUN_SLOW=1"))
    # The book renders the notebooks the notebook tests executed: build it last.
    items.sort(key=lambda item: "book" in item.keywords)
