"""Caption metrics on hand-computed cases; the maximum over references; the embedding path."""

import numpy as np
import pytest

from facecap_lib.captions.local_server import LocalServer, hashed_words
from facecap_lib.evaluation.captions import (
    bleu4,
    caption_metrics,
    cider,
    embedding_similarity,
    meteor,
    metrics_table,
    normalize,
    openai_embedder,
    rouge_l,
)


def test_normalize_drops_case_and_punctuation():
    assert normalize("Raises the Cheek, and   parts lips.") == "raises the cheek and parts lips"
    assert normalize("") == "" and normalize(None) == ""


def test_bleu4_by_hand():
    # 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3, equal lengths (no brevity penalty)
    got = bleu4(["the cat sat on the mat"], [["the cat sat on a mat"]])
    assert got[0] == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-6)


def test_rouge_l_by_hand():
    # LCS "raises cheek lips" = 3 of 4 words each way: P = R = 0.75, so F(beta 1.2) = 0.75
    got = rouge_l(["raises cheek parts lips"], [["raises cheek lips wide"]])
    assert got[0] == pytest.approx(0.75)
    # P = 2/2, R = 2/4: F = (1 + 1.44) * 1 * 0.5 / (0.5 + 1.44 * 1)
    got = rouge_l(["raises cheek"], [["he raises his cheek"]])
    assert got[0] == pytest.approx(2.44 * 0.5 / (0.5 + 1.44))


def test_score_is_the_maximum_over_references():
    refs = [["the jaw drops", "the inner brows are raised and the lips part"]]
    best = ["the inner brows are raised and the lips part"]
    assert bleu4(best, refs)[0] == pytest.approx(1.0)
    assert rouge_l(best, refs)[0] == pytest.approx(1.0)
    alone = rouge_l(["the jaw drops wide"], [["the jaw drops"]])[0]
    assert rouge_l(["the jaw drops wide"], refs)[0] == pytest.approx(alone)


def test_cider_d_of_an_identical_caption_by_hand():
    refs = [["the brows are raised"], ["lips part wide"], ["brows are raised"]]
    got = cider(["the brows are raised", "lips part", "brows are raised"], refs)
    assert got[0] == pytest.approx(10.0)  # cosine 1 for n = 1..4, equal lengths, x10
    assert got[2] == pytest.approx(7.5)  # three words: no 4-grams, so (1 + 1 + 1 + 0) / 4 x10
    assert 0 < got[1] < 10
    assert cider(["a cat"] * 3, refs)[0] == 0.0


def test_meteor_orders_captions_and_takes_the_maximum():
    refs = [["the inner brows are raised and the lips part"]] * 3
    got = meteor(
        [
            "the inner brows are raised and the lips part",
            "the brows are raised",
            "a dog runs on grass",
        ],
        refs,
    )
    assert got[0] > got[1] > got[2] >= 0
    both = meteor(["the brows are raised"], [["a dog runs", refs[0][0]]])
    assert both[0] == pytest.approx(got[1], abs=1e-4)


def test_empty_caption_scores_zero_and_bad_input_names_the_image():
    table = caption_metrics(
        ["", "the brows are raised"], [["brows raised"], ["the brows are raised"]]
    )
    assert (table.iloc[0] == 0).all() and table.loc[1, "BLEU-4"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="image 1: no non-empty reference"):
        bleu4(["a", "b"], [["a"], ["", "  "]])
    with pytest.raises(ValueError, match="2 candidate captions for 1 images"):
        rouge_l(["a", "b"], [["a"]])
    with pytest.raises(TypeError, match="image 0: references must be a list"):
        cider(["a"], ["a"])
    with pytest.raises(ValueError, match="unknown metrics"):
        caption_metrics(["a"], [["a"]], metrics=["SPICE"])


def test_embedding_similarity_by_hand():
    vectors = {"a b": [1.0, 0.0], "a c": [1.0, 1.0], "x": [0.0, 1.0]}
    embed = lambda texts: np.array([vectors[t] for t in texts])  # noqa: E731
    got = embedding_similarity(["a b", "x"], [["x", "a c"], ["x"]], embed)
    assert got == pytest.approx([1 / np.sqrt(2), 1.0])


def test_ada_sim_through_an_openai_compatible_endpoint():
    captions, refs = ["the brows are raised", "lips part"], [["brows raised"], ["the jaw drops"]]
    local = embedding_similarity(captions, refs, lambda t: np.array([hashed_words(x) for x in t]))
    with LocalServer() as server:
        embed = openai_embedder(base_url=server.base_url, api_key="sk-test-secret", batch_size=2)
        table = caption_metrics(captions, refs, metrics=["ROUGE-L"], embedders={"Ada-sim": embed})
        assert server.seen_authorization and all(
            "sk-test-secret" in a for a in server.seen_authorization
        )
    assert table["Ada-sim"].to_numpy() == pytest.approx(local)
    assert "sk-test-secret" not in repr(embed)


def test_metrics_table_has_one_row_per_model():
    refs = [["the brows are raised"], ["lips part"]]
    per_model = {
        "AU-BLIP": caption_metrics(
            ["the brows are raised", "lips part"], refs, metrics=["ROUGE-L"]
        ),
        "general": caption_metrics(["a photo of a person", "a man"], refs, metrics=["ROUGE-L"]),
    }
    table = metrics_table(per_model)
    assert list(table.index) == ["AU-BLIP", "general"] and table.loc["AU-BLIP", "ROUGE-L"] == 1.0
    assert table.loc["general", "ROUGE-L"] == 0.0 and table.loc["general", "images"] == 2
