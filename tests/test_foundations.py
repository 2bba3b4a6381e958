"""The pre-training corpus, contrastive pre-training, ``facecap pretrain`` and the shipped
foundations of the tiny preset."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from facecap_lib.captions.general import general_caption, general_statement
from facecap_lib.cli import main as cli
from facecap_lib.data.english import english_passages
from facecap_lib.data.synth.corpus import unseen_faces
from facecap_lib.data.synth.pretraining import (
    IDENTITY_BASE,
    PretrainingCorpus,
    build_pretraining_corpus,
    plan,
)
from facecap_lib.data.table import image_files
from facecap_lib.models.language import language_model_config
from facecap_lib.models.presets import build_vision_encoder, preset
from facecap_lib.pretraining import build_foundations
from facecap_lib.training.config import FitConfig
from facecap_lib.training.contrastive import ContrastiveConfig, ContrastiveTask, nt_xent
from facecap_lib.training.data import group_indices
from facecap_lib.training.foundations import (
    MANIFEST,
    FoundationsConfig,
    language_text,
    load_foundations,
    resolve,
    shipped,
)

# ---------------------------------------------------------------- the language text


def test_the_language_model_reads_captions_general_captions_and_english(tmp_path):
    corpus, _ = plan(PretrainingCorpus.smoke())
    corpus = corpus.iloc[:20]
    texts = language_text(corpus, 7, work=tmp_path)
    general = [general_caption(row, row["image_path"]) for _, row in corpus.iterrows()]
    counted = {t: texts.count(t) for t in set(texts)}
    for caption in general:  # each face's general caption, alone and after its statement
        assert counted[caption] >= 1
        assert counted[f"{general_statement(caption)} {caption}"] >= 1
    assert texts[-7:] == english_passages(7)  # the English, drawn as english_passages draws it
    expression = texts[: -7 - 2 * len(general)]
    assert any(t.startswith("Action units") for t in expression)
    assert not set(expression) & set(general)
    assert not any("lit from the" in t for t in expression)  # the two languages apart


# ---------------------------------------------------------------- the corpus


def test_pretraining_faces_are_new_people_in_sessions():
    corpus = PretrainingCorpus(faces=12, probe_faces=4, faces_per_person=4)
    table, specs = plan(corpus)
    assert len(table) == 16 and list(table["split"]).count("probe") == 4
    # every other SynthFACS identity is a CRC-32 (< 2**32) or an unseen face (5,000,000 on)
    assert table["identity"].min() >= IDENTITY_BASE
    assert max(s.identity for s in unseen_faces(50)) < IDENTITY_BASE
    assert set(table.loc[table["split"] == "probe", "person"]).isdisjoint(
        table.loc[table["split"] == "pretrain", "person"]
    )
    for _, session in table.groupby("person"):  # one setting, other expressions
        assert session["light_x"].nunique() == 1 and session["occluder"].nunique(dropna=False) == 1
        assert session["yaw"].nunique() == len(session)
    # each face depends on its index only: a bigger corpus starts with the same faces
    bigger, _ = plan(replace(corpus, faces=40))
    assert bigger.iloc[:12].equals(table.iloc[:12])


def test_pretraining_corpus_is_rendered_once_and_resumes(tmp_path):
    corpus = PretrainingCorpus(faces=4, probe_faces=2, faces_per_person=2, size=32)
    table = build_pretraining_corpus(corpus, tmp_path / "c", workers=1, progress=False)
    files = sorted((tmp_path / "c").rglob("*.jpg"))
    assert len(files) == 6 and (tmp_path / "c" / "faces.parquet").exists()
    files[0].unlink()
    (tmp_path / "c" / "faces.parquet").unlink()  # as if killed before the table was written
    again = build_pretraining_corpus(corpus, tmp_path / "c", workers=1, progress=False)
    assert again.drop(columns="data_root").equals(table.drop(columns="data_root"))
    assert files[0].exists()


def test_corpus_settings_are_checked():
    with pytest.raises(ValueError, match="multiple of faces_per_person"):
        PretrainingCorpus(faces=10, faces_per_person=4)
    with pytest.raises(ValueError, match="occluder_rate"):
        PretrainingCorpus(occluder_rate=2.0)
    with pytest.raises(ValueError, match=r"renderer must be one of \(2, 3\), got 7"):
        PretrainingCorpus(renderer=7)


def test_a_corpus_drawn_by_renderer_3_has_its_own_folder_and_images(tmp_path):
    corpus = PretrainingCorpus(faces=2, probe_faces=0, faces_per_person=2, size=32)
    other = replace(corpus, renderer=3)
    # renderer 2's key is the one it had before the field existed (the shipped manifest's)
    assert PretrainingCorpus().key() == "ff89e15b5593" and other.key() != corpus.key()
    tables = [
        build_pretraining_corpus(c, tmp_path / c.key(), workers=1, progress=False)
        for c in (corpus, other)
    ]
    assert tables[0].drop(columns="data_root").equals(tables[1].drop(columns="data_root"))
    images = [image_files(t)[0] for t in tables]
    pixels = [np.asarray(Image.open(path), dtype=float) for path in images]
    # the same face and scene drawn another way (a renderer draws a spec the same each time)
    assert np.abs(pixels[0] - pixels[1]).mean() > 1
    stamp = json.loads((tmp_path / other.key() / "corpus.json").read_text())
    assert stamp["renderer"] == 3 and stamp["key"] == other.key()


# ---------------------------------------------------------------- contrastive pre-training


def test_group_indices_keep_sessions_whole_and_cover_an_epoch():
    config = FitConfig(batch_size=6, seed=3)
    seen = []
    for step in range(4):  # 24 examples in sessions of 3: 8 sessions, 2 per batch
        batch = group_indices(24, 3, step, 0, config)
        sessions = batch.reshape(-1, 3)
        assert (sessions == sessions[:, :1] + np.arange(3)).all()
        assert (sessions[:, 0] % 3 == 0).all()
        seen += list(batch)
    assert sorted(seen) == list(range(24))
    assert np.array_equal(group_indices(24, 3, 1, 0, config), group_indices(24, 3, 1, 0, config))
    with pytest.raises(ValueError, match="not a multiple"):
        group_indices(24, 4, 0, 0, config)


def test_nt_xent_is_simclrs_loss():
    torch.manual_seed(0)
    first, second = torch.randn(5, 8), torch.randn(5, 8)
    got = nt_xent(first, second, 0.5)
    z = torch.nn.functional.normalize(torch.cat([first, second]), dim=1)
    total = 0.0
    for i in range(10):  # the textbook form, one view at a time
        twin = (i + 5) % 10
        others = [j for j in range(10) if j != i]
        logits = torch.stack([z[i] @ z[j] / 0.5 for j in others])
        total -= torch.log_softmax(logits, 0)[others.index(twin)]
    torch.testing.assert_close(got, total / 10)
    # views that agree score better than views that do not
    assert nt_xent(first, first + 0.01, 0.1) < nt_xent(first, second, 0.1)


def test_contrastive_views_are_mirrored_only_when_asked(tmp_path):
    """The foundations' contrastive encoder learns from unmirrored views, so that a head turned
    left stays told apart from one turned right (the general captioner names sides)."""
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, :32] = 255  # bright on its left
    file = tmp_path / "left.png"
    Image.fromarray(pixels).save(file)
    assert FoundationsConfig().contrastive.flip == 0

    def left_brighter(flip: float) -> np.ndarray:
        config = ContrastiveConfig(fit=FitConfig.smoke(batch_size=8), session=1, flip=flip)
        task = ContrastiveTask(preset("tiny"), [file] * 8, config)
        with task.batches(None, config.fit, torch.device("cpu")) as batch_at:
            views = torch.cat([batch_at(step, 0)["pixel_values"] for step in range(4)])
        half = views.shape[-1] // 2
        return (views[..., :half].mean((1, 2, 3)) > views[..., half:].mean((1, 2, 3))).numpy()

    assert left_brighter(0.0).all()
    assert 0.2 < left_brighter(0.5).mean() < 0.8  # SimCLR's: about half mirrored
    with pytest.raises(ValueError, match="flip is a chance"):
        ContrastiveConfig(flip=1.5)


# ---------------------------------------------------------------- facecap pretrain


def test_facecap_pretrain_smoke_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACECAP_CACHE", str(tmp_path / "work"))
    assert cli(["pretrain", "--smoke", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "foundations of tiny" in printed and "linear probe" in printed
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["command"] == f"facecap pretrain --smoke --out {tmp_path / 'out'}"
    assert manifest["encoder_objective"] == "supervised" and manifest["labels_used"]
    assert set(manifest["final_losses"]) == {"encoder", "language_model"}
    assert manifest["final_losses"]["encoder"]["step"] == FitConfig.smoke().max_steps
    assert {"corpus", "encoder", "language model", "probe"} <= set(manifest["wall_time_by_step_s"])
    # run again: every step is loaded, nothing is trained twice
    assert cli(["pretrain", "--smoke", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / MANIFEST).read_text())
    assert again["files"] == manifest["files"]  # the same weights, bit for bit
    # another renderer draws another corpus: its settings say so, and a bad one is an error
    assert cli(["pretrain", "--smoke", "--renderer", "3", "--out", str(tmp_path / "r3")]) == 0
    other = json.loads((tmp_path / "r3" / MANIFEST).read_text())
    assert (
        other["settings"]["corpus"]["renderer"] == 3
        and manifest["settings"]["corpus"]["renderer"] == 2
    )
    assert other["corpus_key"] != manifest["corpus_key"]
    assert cli(["pretrain", "--smoke", "--renderer", "7", "--out", str(tmp_path / "r7")]) == 2
    assert "renderer must be one of (2, 3), got 7" in capsys.readouterr().err
    assert cli(["pretrain", "--smoke", "--renderer", "0", "--out", str(tmp_path / "r0")]) == 2
    assert "renderer must be one of (2, 3), got 0" in capsys.readouterr().err


def test_a_rebuild_from_nothing_gives_the_same_files(smoke_foundations, tmp_path):
    """The manifest's promise: the same settings, on the same machine, rebuild the same bytes."""
    rebuilt = build_foundations(
        FoundationsConfig.smoke(), tmp_path / "out", work=tmp_path, log=None, progress=False
    )
    files = {k: v["sha256"] for k, v in rebuilt.manifest["files"].items()}
    assert files == {k: v["sha256"] for k, v in smoke_foundations.manifest["files"].items()}


@pytest.mark.parametrize("objective", ["mae", "contrastive"])
def test_every_encoder_objective_exports_a_blip2_encoder(objective, tmp_path):
    config = FoundationsConfig.smoke(encoder=objective)
    made = build_foundations(config, tmp_path / "out", work=tmp_path, log=None, progress=False)
    assert not made.manifest["labels_used"]  # self-supervised
    vision = build_vision_encoder(preset("tiny"))
    made.install_vision(vision)  # strict: every weight of the preset's encoder, nothing else
    for key, value in vision.state_dict().items():
        assert torch.equal(value, made.vision_state[key]), key
    if objective == "mae":  # the decoder comes too, to show what the encoder learned to see
        from facecap_lib.models.mae import reconstruct

        masked, rebuilt, mask = reconstruct(made.mae(), torch.randn(2, 3, 64, 64))
        assert masked.shape == rebuilt.shape == (2, 3, 64, 64) and mask.sum() == 2 * 48
        faces = made.mae_reconstructions(image_files(made_corpus(tmp_path))[:2])
        assert [len(v) for v in faces.values()] == [2, 2, 2]
        assert faces["rebuilt"][0].shape == (64, 64, 3) and faces["rebuilt"][0].dtype == "uint8"
    else:
        with pytest.raises(ValueError, match="there is no decoder"):
            made.mae()


def made_corpus(work):
    return build_pretraining_corpus(FoundationsConfig.smoke().corpus, work=work, progress=False)


def test_a_changed_file_is_refused(smoke_foundations, tmp_path):
    import shutil

    copy = shutil.copytree(smoke_foundations.folder, tmp_path / "copy")
    load_foundations(copy)
    with open(copy / "vision_encoder.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(ValueError, match="vision_encoder.safetensors: sha256 differs"):
        load_foundations(copy)
    with pytest.raises(ValueError, match="no manifest.json"):
        resolve(tmp_path, "tiny")


# ---------------------------------------------------------------- the shipped foundations


def test_the_shipped_manifest_matches_its_files_and_the_preset():
    folder = shipped("tiny")
    made = load_foundations(folder)  # every sha256 checked
    manifest = made.manifest
    assert sum(e["bytes"] for e in manifest["files"].values()) <= 40 * 2**20
    for name, entry in manifest["files"].items():
        if name.endswith(".safetensors"):
            with safe_open(folder / name, "pt") as f:
                shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            assert shapes == entry["shapes"], name
    for field in ("command", "corpus_key", "commit", "device", "wall_time_s", "final_losses"):
        assert manifest[field], field
    assert manifest["command"].startswith("facecap pretrain --preset tiny")
    assert manifest["corpus_faces"] >= 100_000
    vision = build_vision_encoder(preset("tiny"))
    made.install_vision(vision)
    lm = made.language_model()
    expected = language_model_config(preset("tiny"), made.tokenizer)
    assert lm.config.hidden_size == expected.hidden_size
    assert lm.config.num_hidden_layers == expected.num_hidden_layers
    assert lm.config.vocab_size == len(made.tokenizer)
    with pytest.raises(ValueError, match="no shipped foundations for preset 'small'"):
        shipped("small")
    assert resolve("shipped", "small") is None and resolve(None, "tiny") is None


def test_batchnorm_statistics_are_taken_again_on_whole_faces(smoke_foundations, tmp_path):
    from torch import nn

    from facecap_lib.data.synth.batch import FaceSpec, render_to_files
    from facecap_lib.training.foundations import recalibrate_batchnorm

    specs = [FaceSpec({12: 4}, identity=i, path=f"{i}.png") for i in range(6)]
    render_to_files(specs, tmp_path, size=64, workers=1, progress=False)
    vision = build_vision_encoder(preset("tiny"))
    norms = [m for m in vision.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.running_mean.fill_(7.0)  # as if learned on images with blanked patches
    recalibrate_batchnorm(vision, [str(tmp_path / s.path) for s in specs], batches=2, batch_size=3)
    assert not vision.training and all(n.momentum == 0.1 for n in norms)
    assert all(torch.isfinite(n.running_var).all() and (n.running_mean != 7.0).all() for n in norms)


def test_the_language_is_a_setting_of_the_language_model_alone():
    general = FoundationsConfig().with_language("general")
    assert general.language_model.fit.max_steps == 5000  # as the measured build (4,000 x 1.25)
    assert general.with_language("general") == general
    assert general.language_model_key() != FoundationsConfig().language_model_key()
    assert general.encoder_key() == FoundationsConfig().encoder_key()  # the encoder is reused
    with pytest.raises(ValueError, match="language must be one of"):
        FoundationsConfig(language="english")
