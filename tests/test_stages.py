"""The three-stage recipe end to end on a dozen rendered faces (smoke settings): every stage runs,
pseudo-captions come from the trained captioners, and a second run loads instead of redoing."""

from dataclasses import replace

import pandas as pd
import pytest
import torch

from facecap_lib.captions.corpus import caption_corpus
from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.captions.synthesize import OfflineDescriber
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.data.table import face_table
from facecap_lib.evaluation.samples import sample_evaluator
from facecap_lib.lexicon import BASIC_PROTOTYPES
from facecap_lib.training import STAGES
from facecap_lib.training.language_text import content_statement, lm_texts
from facecap_lib.training.stages import Recipe, RecipeConfig, _changed

SCRATCH = replace(RecipeConfig.smoke(), foundations=None)  # the language model trained here
AU_FACES = [{1, 2}, {6, 12}, {4, 7}, {25, 26}, {6, 12, 25}, set(), {1, 2, 5}, {4}]
EMOTION_FACES = ["happiness", "surprise", "anger", "sadness", "happiness", "fear"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rows, specs = [], []
    for i, aus in enumerate(AU_FACES):
        specs.append(FaceSpec({a: 4 for a in aus}, identity=i, path=f"au{i}.png"))
        row = {"image_path": f"au{i}.png", "dataset": "rafau", "subject": f"s{i}"}
        row |= {f"AU{a}": float(a in aus) for a in (1, 2, 4, 5, 6, 7, 12, 25, 26)}
        rows.append(row | {"split": "test" if i >= 6 else "train"})
    for i, emotion in enumerate(EMOTION_FACES):
        aus = next(p.aus for p in BASIC_PROTOTYPES if p.emotion == emotion) & set(RENDERED_AUS)
        specs.append(FaceSpec({a: 4 for a in aus}, identity=50 + i, path=f"emo{i}.png"))
        rows.append(
            {
                "image_path": f"emo{i}.png",
                "dataset": "affectnet",
                "subject": f"e{i}",
                "emotions": [emotion],
                "split": "test" if i >= 4 else "train",
            }
        )
    render_to_files(specs, root, size=64, workers=1, progress=False)
    faces = face_table(rows).assign(data_root=str(root))
    work = tmp_path_factory.mktemp("work")
    describer = OfflineDescriber()
    return faces, caption_corpus(faces, describer, work=work), describer, work


def fewer_lm_steps(config: RecipeConfig, steps: int) -> RecipeConfig:
    lm = config.language_model
    return replace(config, language_model=replace(lm, fit=replace(lm.fit, max_steps=steps)))


def test_content_statements_read_the_caption():
    assert content_statement(au_caption({6, 12})) == "Action units 6 12."
    assert (
        content_statement(emotion_caption(["happiness", "surprise"]))
        == "No action units. Emotion happiness and surprise."
    )
    texts = lm_texts([au_caption({1}), au_caption({1})])
    assert texts == [au_caption({1}), f"Action units 1. {au_caption({1})}"]


def test_recipe_runs_every_stage_and_resumes(corpus, tmp_path):
    faces, tables, describer, work = corpus
    logged = []
    recipe = Recipe(
        faces, tables, tmp_path / "run", describer, SCRATCH,
        work=work, device="cpu", log=logged.append, progress=False, evaluator=sample_evaluator,
    )  # fmt: skip
    for stage in STAGES:
        recipe.run(stage)
    run = tmp_path / "run"
    for folder in ("tokenizer", "language_model", "qformer/final", "pseudo"):
        assert (run / folder).exists(), folder
    for name in ("au", "emot", "mix", "cat", "exp"):
        assert (run / f"{name}-blip" / "final" / "history.json").exists(), name
    fused = recipe.fused_tables()
    sources = set(fused["exp"]["source"])
    assert any("pseudo-model-" in s and s.endswith(":emotion") for s in sources)
    assert any("pseudo-model-" in s and s.endswith(":au") for s in sources)
    pseudo = pd.concat(pd.read_parquet(p) for p in (run / "pseudo").glob("*.parquet"))
    train = faces[faces["split"] == "train"]
    assert len(pseudo) == len(train)  # each training image lacks exactly one aspect here
    summary = recipe.summary()
    assert list(summary["captioner"]) == [
        "AU-BLIP",
        "Emot-BLIP",
        "Mix-BLIP",
        "Cat-BLIP",
        "Exp-BLIP",
    ]
    rows = summary.set_index("captioner")  # each scored on the aspects its faces are labelled with
    assert 0 <= rows.loc["AU-BLIP", "sample au f1"] <= 1
    assert pd.isna(rows.loc["AU-BLIP", "sample emotion hit"])
    assert 0 <= rows.loc["Emot-BLIP", "sample emotion hit"] <= 1
    assert pd.isna(rows.loc["Emot-BLIP", "sample au f1"])
    assert rows.loc["Exp-BLIP", ["sample au f1", "sample emotion hit"]].between(0, 1).all()

    logged.clear()
    again = Recipe(
        faces, tables, tmp_path / "run", describer, SCRATCH,
        work=work, device="cpu", log=logged.append, progress=False,
    )  # fmt: skip
    result = again.run("exp")
    assert result.resumed_from == SCRATCH.captioner.fit.max_steps  # loaded, not redone
    assert not any("step" in line for line in logged)
    with pytest.raises(ValueError, match="unknown stage"):
        again.run("stage-4")
    changed = fewer_lm_steps(SCRATCH, 7)  # finished stages must not be reused
    with pytest.raises(
        ValueError, match=r"other settings \(changed: recipe.language_model.fit.max_steps\)"
    ):
        Recipe(faces, tables, run, describer, changed, work=work, device="cpu", progress=False)


def test_settings_fingerprint_follows_recipe_and_preset():
    config = SCRATCH
    other = fewer_lm_steps(config, config.language_model.fit.max_steps + 1)
    assert config.fingerprint() == replace(RecipeConfig.smoke(), foundations=None).fingerprint()
    assert config.fingerprint() != other.fingerprint()
    assert _changed(config.settings(), other.settings()) == ["recipe.language_model.fit.max_steps"]
    assert "preset" in config.settings() and "stem" in config.settings()["preset"]["vision"]
    fast = config.with_fits(compile=True, log_every=1)
    assert fast.fingerprint() == config.fingerprint()  # how a run goes, not what it trains
    assert {f.parallel for f in config.with_fits(parallel="fsdp").fits().values()} == {"fsdp"}


def test_recipe_starts_from_foundations(corpus, smoke_foundations, tmp_path):
    """The tokenizer, the frozen language model and the image encoder come from the foundations;
    nothing is pre-trained in the run folder, and the run folder's identity names them."""
    faces, tables, describer, work = corpus
    foundations = smoke_foundations
    config = replace(RecipeConfig.smoke(), foundations=str(foundations.folder))
    logged = []
    recipe = Recipe(
        faces, tables, tmp_path / "run", describer, config,
        work=work, device="cpu", log=logged.append, progress=False,
    )  # fmt: skip
    assert any(f"foundations tiny/{foundations.digest}" in line for line in logged)
    assert recipe.tokenizer().get_vocab() == foundations.tokenizer.get_vocab()
    stage1 = recipe.qformer().model.retrieval.vision_model.state_dict()
    for key, value in foundations.vision_state.items():  # frozen in stage 1: still the same
        assert torch.equal(stage1[key], value), key
    au_blip = recipe.captioner("au").model
    lm = foundations.language_model().state_dict()
    for key, value in au_blip.language_model.state_dict().items():  # frozen in stage 2
        assert torch.equal(value, lm[key]), key
    assert not (tmp_path / "run" / "language_model").exists()
    assert config.fingerprint() != SCRATCH.fingerprint()
    assert "language_model" not in config.settings()["recipe"]  # unused: not part of the identity
    assert config.settings()["recipe"]["foundations"] == foundations.digest


def test_the_general_captioner_never_sees_a_mirror_image(corpus, tmp_path, monkeypatch):
    """Its captions name sides ("turned to the left"), which a mirror image reverses: its stage 2
    trains without flips; every other captioner keeps the paper's."""
    from facecap_lib.training import stages

    faces, tables, describer, work = corpus
    recipe = Recipe(
        faces, tables, tmp_path / "run", describer, SCRATCH, work=work, device="cpu", progress=False
    )
    seen = {}

    def record(pairs, folder, config, **kwargs):
        seen[folder.name] = config
        raise StopIteration  # the configuration is all this test needs

    monkeypatch.setattr(stages, "train_captioner", record)
    monkeypatch.setattr(stages, "general_captions", lambda faces, keys: ["a face"] * len(keys))
    monkeypatch.setattr(Recipe, "qformer", lambda self: None)
    for run in (recipe.general, lambda: recipe.run("au"), lambda: recipe.general(steps=9)):
        with pytest.raises(StopIteration):
            run()
    assert seen["general-blip"].flip is False and seen["general-blip"].augment
    assert seen["au-blip"].flip is True
    assert seen["general-blip"] == replace(seen["au-blip"], flip=False)
    longer = seen["general-blip-9steps"]  # a longer-trained baseline: its own folder
    assert longer == replace(seen["general-blip"], fit=replace(longer.fit, max_steps=9))
