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
def smoke_foundations(tmp_path_factory):
    """Foundations of the tiny preset at smoke settings (a 96-face corpus, a few steps each),
    built once for every test that needs a foundations folder."""
    from facecap_lib.pretraining import build_foundations
    from facecap_lib.training.foundations import FoundationsConfig

    work = tmp_path_factory.mktemp("foundations")
    return build_foundations(
        FoundationsConfig.smoke(), work / "export", work=work, log=None, progress=False
    )


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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny captioner with random weights saved as the trainer saves one (``.../au-blip``)."""
    import torch

    from facecap_lib.captions.rules import au_caption
    from facecap_lib.models.presets import build_model, preset
    from facecap_lib.models.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("captioner") / "au-blip"
    captions = [au_caption({6, 12}), au_caption({1, 2})] * 3
    tokenizer = train_tokenizer(captions, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    build_model(preset("tiny"), tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
