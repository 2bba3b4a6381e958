"""Probes on synthetic features with known answers; F1 conventions; the feature cache."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facecap_lib.evaluation import probes
from facecap_lib.evaluation.neighbours import nearest_of_other_people, people
from facecap_lib.evaluation.probes import (
    FeatureCache,
    au_detection,
    emotion_scores,
    extract,
    fine_tune,
    linear_probe,
    probe_table,
)

RNG = np.random.default_rng(0)


def test_linear_probe_finds_a_linear_answer_and_not_noise():
    x = RNG.normal(size=(600, 10))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5, RNG.random(600) < 0.3], 1).astype(float)
    probe = linear_probe(x[:400], y[:400])
    table = au_detection(y[400:], probe.scores(x[400:]), ["AU1", "AU2", "noise"])
    f1, auc = table.set_index("au")["F1"], table.set_index("au")["AUC"]
    assert f1["AU1"] > 90 and f1["AU2"] > 85 and auc["AU1"] > 0.98
    assert abs(auc["noise"] - 0.5) < 0.12  # labels independent of the features: chance


def test_multiclass_probe_and_emotion_scores():
    centres = RNG.normal(size=(3, 8)) * 3
    y = RNG.integers(0, 3, 300)
    x = centres[y] + RNG.normal(size=(300, 8))
    probe = linear_probe(x[:200], y[:200], task="multiclass")
    scores = emotion_scores(y[200:], probe.scores(x[200:]))
    assert scores["accuracy"] > 95 and scores["macro F1"] > 95
    assert emotion_scores([0, 1, 1], np.eye(3)[[0, 0, 1]])["accuracy"] == pytest.approx(200 / 3)


def test_f1_conventions_and_unlabelled_rows():
    y = np.array([[0, 1], [0, np.nan], [0, 0], [0, 1]], dtype=float)
    scores = np.array([[0.1, 0.9], [0.2, 0.9], [0.3, 0.2], [0.4, 0.3]])
    table = au_detection(y, scores, ["AU9", "AU12"]).set_index("au")
    assert table.loc["AU9", "F1"] == 0 and np.isnan(table.loc["AU9", "AUC"])  # no positives
    assert table.loc["AU9", "accuracy"] == 100  # ... yet accuracy is perfect: why F1 is reported
    # AU12 over the 3 labelled rows: TP 1, FN 1, TN 1 -> F1 = 2/3, accuracy 2/3
    assert table.loc["AU12", "F1"] == pytest.approx(200 / 3)
    assert table.loc["AU12", "AUC"] == pytest.approx(1.0)
    assert table.loc["mean", "AUC"] == pytest.approx(1.0)  # the undefined AUC is left out
    with pytest.raises(ValueError, match="disagree"):
        au_detection(y, scores, ["AU9"])


def test_probe_table_shape():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    good = au_detection(y, y * 0.8 + 0.1, ["AU1", "AU2"])
    table = probe_table({"encoder": good}, emotions={"encoder": {"accuracy": 50.0}})
    assert list(table.columns) == ["AU1", "AU2", "avg F1", "avg AUC", "emotion acc"]
    assert table.loc["encoder", "avg F1"] == 100


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(6):
        array = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(array).save(root / f"{i}.png")
        paths.append(str(root / f"{i}.png"))
    return paths


def test_features_are_extracted_once_and_cached(tiny_checkpoint, images, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    encoder = cache.features(tiny_checkpoint, images, "encoder")
    qformer = cache.features(tiny_checkpoint, images, "qformer")
    assert encoder.shape == (6, 128) and qformer.shape == (6, 128)
    assert not np.allclose(encoder[0], encoder[1])  # different images, different features

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted again")

    monkeypatch.setattr(probes, "extract", no_extraction)
    assert np.array_equal(cache.features(tiny_checkpoint, images, "encoder"), encoder)
    assert not list(tmp_path.glob("*.tmp.npy"))
    with pytest.raises(ValueError, match="feature source"):
        extract(None, images, "lm")


def test_fine_tune_trains_the_encoder_end_to_end(tiny_checkpoint, images):
    from facecap_lib.inference import load_captioner

    model, _ = load_captioner(tiny_checkpoint, "cpu")
    before = model.vision_model.encoder.layers[0].mlp.fc1.weight.clone()
    y = np.array([[1, 0], [0, 1]] * 3, dtype=float)
    score = fine_tune(model, images, y, steps=80, batch_size=6, lr=1e-3, progress=False)
    assert not torch.equal(before, model.vision_model.encoder.layers[0].mlp.fc1.weight)
    predicted = score(images)
    assert predicted.shape == (6, 2) and ((predicted > 0.5) == (y == 1)).mean() >= 5 / 6


def test_fine_tune_through_the_qformer_trains_it_and_is_kept(tiny_checkpoint, images, tmp_path):
    """The Q-Former strategy trains the encoder, the Q-Former and the queries with the layer on
    the mean query output; the finished run is loaded, not trained again."""
    from facecap_lib.inference import load_captioner

    model, _ = load_captioner(tiny_checkpoint, "cpu")
    before = [model.qformer.layernorm.weight.clone(), model.query_tokens.clone()]
    y = np.array([0, 1, 2] * 2)
    score = fine_tune(
        model, images, y, task="multiclass", source="qformer", steps=60, batch_size=6, lr=1e-3,
        progress=False, out_dir=tmp_path / "run",
    )  # fmt: skip
    assert not torch.equal(before[0], model.qformer.layernorm.weight)
    assert not torch.equal(before[1], model.query_tokens)
    predicted = score(images)
    assert predicted.shape == (6, 3) and (predicted.argmax(1) == y).mean() >= 5 / 6
    again, _ = load_captioner(tiny_checkpoint, "cpu")
    loaded = fine_tune(
        again, images, y, task="multiclass", source="qformer", steps=60, batch_size=6,
        progress=False, out_dir=tmp_path / "run",
    )  # fmt: skip
    assert np.allclose(loaded(images), predicted, atol=1e-5)
    with pytest.raises(ValueError, match="feature source"):
        fine_tune(again, images, y, source="lm", progress=False)


def test_nearest_faces_are_of_other_people_and_the_queries_of_different_ones():
    # person A's frames are near copies of each other; B, C and D each have a look-alike of
    # A's first frame, and a face unlike it
    a = [[1.0, 0.0, 0.0], [0.99, 0.01, 0.0], [0.98, 0.02, 0.0]]
    others = [[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.8, 0.2, 0.0], [0.0, 0.0, 1.0],
              [0.7, 0.3, 0.0], [0.0, 1.0, 1.0]]  # fmt: skip
    people = ["A", "A", "A", "B", "B", "C", "C", "D", "D"]
    rows = nearest_of_other_people(np.array(a + others), people, queries=4, k=3)
    assert [people[q] for q in rows[:, 0]] == ["A", "B", "C", "D"]  # the first face of each
    assert rows[0].tolist() == [0, 3, 5, 7]  # A's look-alikes, most alike first, not A's frames
    for row in rows:
        assert all(people[j] != people[row[0]] for j in row[1:])
    with pytest.raises(ValueError, match="5 queries need 5 different people, got 4"):
        nearest_of_other_people(np.array(a + others), people, queries=5)
    with pytest.raises(ValueError, match="one person per face"):
        nearest_of_other_people(np.array(a), people)
    with pytest.raises(ValueError, match="fewer than 3 faces of people other than query 0's"):
        nearest_of_other_people(np.eye(4), ["A", "A", "A", "B"], queries=2, k=3)


def test_people_are_synthfacs_identities_else_subjects_else_images(tmp_path):
    from facecap_lib.data import sources
    from facecap_lib.data.synth.corpus import TRUTH_FILE, CorpusConfig, synthesize

    cfg = CorpusConfig(images=6, size=32)
    root = synthesize("rafau", tmp_path / "rafau", cfg, workers=1, progress=False)
    stills = sources.load("rafau", root).assign(data_root=str(root))
    truth = pd.read_parquet(root / TRUTH_FILE).set_index("image_path")
    real = pd.DataFrame({
        "dataset": ["bp4d", "bp4d", "rafdb"], "subject": ["F001", "F001", None],
        "data_root": str(tmp_path / "real"), "image_path": ["a.jpg", "b.jpg", "c.jpg"],
    })  # fmt: skip
    faces = pd.concat([stills, real], ignore_index=True)
    found = people(faces)
    expected = [f"synthfacs:{truth.loc[p, 'identity']}" for p in stills["image_path"]]
    assert list(found[: len(stills)]) == expected
    assert found[len(stills)] == found[len(stills) + 1] == "bp4d:F001"
    assert found[-1].startswith("rafdb:") and found[-1].endswith("c.jpg")
