"""Prompts, output checks, the offline describer, the caption table, Mix/Cat/Exp and exports."""

import json

import numpy as np
import pandas as pd
import pytest

from facecap_lib.captions import export, fusion, offline, prompts
from facecap_lib.captions.llm import EndpointConfig, LLMClient
from facecap_lib.captions.local_server import LocalServer
from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.rules import au_caption, emotion_caption
from facecap_lib.captions.synthesize import LLMDescriber, OfflineDescriber, synthesize_captions
from facecap_lib.captions.validate import check_au_caption, check_fused_caption, named_emotions
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AU_NUMBERS, BASIC_EMOTIONS, NO_AU_DESCRIPTION


def test_prompts_are_verbatim():
    prompt = prompts.au_prompt({12, 6})
    assert prompts.ROLE in prompt and prompts.EXAMPLE_ANSWER in prompt
    assert (
        "Describe briefly the facial actions or status of a face which contains AU2, AU4, AU9, AU20, AU25 in "
        "1-9 sentences. Do not describe the emotion or facial expressions, and do not mention 'AU' in the reply."
    ) in prompt
    assert prompt.endswith(
        "which contains AU6, AU12 in 1-9 sentences. Do not describe the emotion or facial "
        "expressions, and do not mention 'AU' in the reply.\nAnswer:"
    )
    assert all(f"AU{n}: " in prompt for n in AU_NUMBERS) and "AU20: lip stretch" in prompt
    assert prompts.au_prompt(set()) is None
    fused = prompts.fusion_prompt(" It is a people who raises cheek. ", "The face shows happiness.")
    assert fused == (
        "Combine the facial action sentence with the emotion sentence. This combined sentence should describe "
        "all the facial actions and emotions mentioned in these two sentences by pointing out how each emotion "
        "is inferred from the corresponding facial actions.\n"
        'Facial Action Sentence: "It is a people who raises cheek."\nEmotion Sentence: "The face shows happiness."'
    )


@pytest.mark.parametrize(
    "text, problems",
    [
        ("The outer eyebrows are raised.", []),
        ("The cheeks are raised, as in a happy face.", ["names an emotion (happiness)"]),
        ("AU12 is active: the lip corners rise.", ["mentions AU"]),
        ("The emotion is clear from the raised brows.", ["names an emotion (emotion)"]),
        ("Action units 1 and 2 raise the brows.", ["mentions AU"]),
        ("", ["empty caption"]),
        (
            "The eyes look calm and relaxed.",
            [],
        ),  # neutral words describe the face, not an emotion label
    ],
)
def test_au_caption_checks(text, problems):
    assert check_au_caption(text) == problems


def test_fused_caption_checks():
    assert (
        check_fused_caption(
            "Raised cheeks indicate joy and astonishment.", ["happiness", "surprise"]
        )
        == []
    )
    assert check_fused_caption("Raised cheeks indicate joy.", ["happiness", "surprise"]) == [
        "does not mention surprise"
    ]
    assert check_fused_caption("She is happy.", ["happiness"]) == ["says nothing about the face"]
    assert named_emotions("furious and scared") == {"anger", "fear"}


def random_sets(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        frozenset(rng.choice(AU_NUMBERS, size=int(rng.integers(1, 6)), replace=False).tolist())
        for _ in range(n)
    ]


def test_offline_descriptions_are_clean_varied_and_readable_back():
    texts = set()
    for i, aus in enumerate(random_sets(300)):
        text = offline.describe_aus(aus, key=i)
        assert check_au_caption(text) == [], text
        assert mentioned_aus(text) == aus, text
        texts.add(text)
    assert len(texts) > 280  # single-AU sets have only 12 wordings, so a few repeat
    assert offline.describe_aus({6, 12}, key="a") == offline.describe_aus({12, 6}, key="a")
    assert len({offline.describe_aus({6, 12}, key=k) for k in range(20)}) > 5
    assert offline.describe_aus(set()) == NO_AU_DESCRIPTION


def test_offline_fusion_names_every_emotion_and_links_prototype_aus():
    rng = np.random.default_rng(1)
    for i, aus in enumerate(random_sets(200, seed=2)):
        emotions = list(rng.choice(BASIC_EMOTIONS, size=int(rng.integers(1, 3)), replace=False))
        text = offline.fuse(aus, emotions, key=i)
        assert check_fused_caption(text, emotions) == [], text
        assert mentioned_aus(text) == aus, text
    text = offline.fuse({6, 12}, ["happiness"], key=0)
    assert "happiness" in text or "happy" in text
    fused = offline.fuse_sentences(
        au_caption({6, 12, 26}), emotion_caption(["happiness", "surprise"])
    )
    assert mentioned_aus(fused) == {6, 12, 26} and named_emotions(fused) >= {
        "happiness",
        "surprise",
    }


def test_mentions_of_rule_captions():
    for aus in random_sets(100, seed=3):
        assert mentioned_aus(au_caption(aus)) == aus


def faces():
    rows = [
        {
            "image_path": "a.jpg",
            "dataset": "rafau",
            "split": "train",
            "AU6": 1.0,
            "AU12": 1.0,
            "AU1": 0.0,
        },
        {
            "image_path": "b.jpg",
            "dataset": "rafau",
            "split": "train",
            "AU6": 0.0,
            "AU12": 0.0,
            "AU1": 0.0,
        },
        {"image_path": "c.jpg", "dataset": "affectnet", "split": "train", "emotions": ["surprise"]},
        {
            "image_path": "d.jpg",
            "dataset": "rafdb",
            "split": "test",
            "emotions": ["fear", "surprise"],
        },
    ]
    return face_table(rows)


def test_caption_table_from_labels():
    table = synthesize_captions(faces(), OfflineDescriber())
    got = table.groupby(["image_id", "kind", "generator"]).size().to_dict()
    assert got == {
        ("rafau/a.jpg", "au", "rule"): 1,
        ("rafau/a.jpg", "au", "offline"): 1,
        ("rafau/b.jpg", "au", "fixed"): 1,
        ("affectnet/c.jpg", "emotion", "rule"): 1,
        ("rafdb/d.jpg", "emotion", "rule"): 1,
    }
    by = table.set_index(["image_id", "generator"])["caption"]
    assert by[("rafau/a.jpg", "rule")] == "It is a people who raises cheek and pulls lip corner."
    assert by[("rafau/b.jpg", "fixed")] == NO_AU_DESCRIPTION
    assert by[("rafdb/d.jpg", "rule")] == "The face shows fear and surprise."


def test_caption_table_through_an_llm(tmp_path):
    with LocalServer() as server:
        client = LLMClient(
            EndpointConfig(model="local", base_url=server.base_url, api_key="k"),
            tmp_path / "c.sqlite",
        )
        server.inject(*[("rule-break",)] * 3)  # the first answer and both retries break the rules
        table = synthesize_captions(faces(), LLMDescriber(client, progress=False))
    llm = table[table["generator"] == "llm"]
    assert len(llm) == 1 and llm["source"].iloc[0] == "local/exp-blip-v1"
    assert "mentions AU" in llm["problems"].iloc[0]  # flagged, not hidden


class Recorder(fusion.PrototypePseudoCaptioner):
    def __init__(self):
        self.calls = []

    def __call__(self, rows, aspect):
        self.calls.append((list(rows["image_path"]), aspect))
        return super().__call__(rows, aspect)


def test_mix_cat_exp():
    table = synthesize_captions(faces(), OfflineDescriber())
    mix = fusion.mix(table)
    assert set(mix["image_id"]) == {"rafau/a.jpg", "rafau/b.jpg", "affectnet/c.jpg"}  # train only
    pseudo = Recorder()
    cat = fusion.cat(faces(), table, pseudo)
    assert sorted(pseudo.calls) == [(["a.jpg", "b.jpg"], "emotion"), (["c.jpg"], "au")]
    by = cat.set_index("image_id")["caption"]
    assert len(by["rafau/a.jpg"]) == 2 and by["rafau/a.jpg"].iloc[0] == (
        "It is a people who raises cheek and pulls lip corner. The face shows happiness."
    )
    assert by["rafau/a.jpg"].iloc[1].endswith("The face shows happiness.")
    assert (
        by["affectnet/c.jpg"]
        == "It is a people who raises inner eyebrow, raises outer eyebrow, raises upper lid and drops jaw. The face shows surprise."
    )
    seen = []

    class Spy(OfflineDescriber):
        def fuse(self, items):
            seen.extend(items)
            return super().fuse(items)

    exp = fusion.exp(faces(), table, fusion.PrototypePseudoCaptioner(), Spy())
    assert len(exp) == 3 and exp["problems"].map(len).sum() == 0
    own = dict((key, a) for key, a, _ in seen)
    assert not own["rafau/a.jpg"].startswith(
        "It is a people"
    )  # described, not rule-based, AU caption
    assert "pseudo-prototype:au" in exp.set_index("image_id")["source"]["affectnet/c.jpg"]


def test_exports(tmp_path):
    table = synthesize_captions(faces(), OfflineDescriber())
    pairs = fusion.mix(table)
    records = json.loads(export.to_lavis_json(pairs, tmp_path / "mix.json").read_text())
    assert set(records[0]) == {"image", "caption", "image_id"} and len(records) == len(pairs)
    assert {r["image"] for r in records} == set(pairs["image_id"])
    assert len({r["image_id"] for r in records}) == 3
    path = export.to_parquet(pairs, table, tmp_path / "mix.parquet")
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    row = {r["image_id"]: r for r in ds}["rafau/a.jpg"]
    assert len(row["captions"]) == 2 and set(row["references"]) == set(
        table[table.image_id == "rafau/a.jpg"]["caption"]
    )
    assert isinstance(pd.read_parquet(path)["references"].iloc[0][0], str)


def test_every_appearance_phrase_is_about_the_face():
    from facecap_lib.lexicon import AU_APPEARANCE

    for au, phrases in AU_APPEARANCE.items():
        for phrase in phrases:
            assert check_fused_caption(f"{phrase} suggest anger", ["anger"]) == [], (au, phrase)
            assert check_au_caption(phrase) == [], (au, phrase)


def test_missing_answers_never_become_captions(tmp_path):
    from facecap_lib.captions import corpus

    with LocalServer() as server:
        cfg = EndpointConfig(model="local", base_url=server.base_url, api_key="k", max_calls=0)
        describer = LLMDescriber(LLMClient(cfg, tmp_path / "c.sqlite"), progress=False)
        table = synthesize_captions(faces(), describer)
        assert table.attrs["missing"] == 1 and (table["caption"] != "").all()
        assert "llm" not in set(table["generator"])
        with pytest.raises(
            RuntimeError, match="3 captions got no answer"
        ):  # 1 AU caption, 2 fusions
            corpus.caption_corpus(faces(), describer, work=tmp_path)
    assert not list((tmp_path / "captions").rglob("*.parquet"))


def test_corpus_folder_follows_splits_and_labels(tmp_path):
    from facecap_lib.captions import corpus

    d = OfflineDescriber()
    base = corpus.corpus_dir(faces(), d, work=tmp_path)
    assert corpus.corpus_dir(faces(), d, work=tmp_path) == base
    moved = faces().assign(split=["test", "train", "train", "test"])
    relabelled = faces()
    relabelled.loc[0, "AU1"] = 1.0
    assert corpus.corpus_dir(moved, d, work=tmp_path) != base
    assert corpus.corpus_dir(relabelled, d, work=tmp_path) != base


def test_clean_answers_and_expression_words():
    assert check_au_caption("Answer: The outer eyebrows are raised.") == []
    assert check_au_caption("A broad smile with raised cheeks.") == ["names an emotion (smile)"]


def test_general_captions_describe_the_picture_never_the_expression():
    from facecap_lib.captions.general import OCCLUDED, general_caption
    from facecap_lib.evaluation.faithfulness import parse_caption

    seen = set()
    for i in range(60):
        truth = {
            "identity": 1000 + i,
            "yaw": [-15.0, 0.0, 15.0][i % 3],
            "pitch": [-8.0, 0.0, 8.0][i // 3 % 3],
            "light_x": [-0.6, 0.0, 0.6][i // 9 % 3],
            "occluder": [None, *OCCLUDED][i % 4],
        }
        caption = general_caption(truth, key=str(i))
        parsed = parse_caption(caption)
        assert not parsed.aus and not parsed.emotions, caption
        seen.add(caption.split(",")[0][:12])
    assert general_caption(truth, "a") == general_caption(truth, "a")  # deterministic
    assert len(seen) == 3  # the three wordings
    turned = {"identity": 1, "yaw": 15.0, "pitch": 0.0, "light_x": -0.6, "occluder": "mask"}
    text = general_caption(turned, "x")
    assert "turned to the right" in text and "lit from the left" in text and "face mask" in text


def test_a_dry_run_prices_the_real_fusion_requests_once_the_au_captions_are_cached(tmp_path):
    """Before the AU captions exist the fusions are counted and priced at a typical prompt; once
    they are cached the dry run builds the real requests, finds their cache, and calls nothing."""
    from facecap_lib.captions import corpus
    from facecap_lib.captions.fusion import fusion_lines
    from facecap_lib.captions.synthesize import au_items, au_requests

    with LocalServer() as server:
        cfg = EndpointConfig(model="local", base_url=server.base_url, api_key="k")
        describer = LLMDescriber(LLMClient(cfg, tmp_path / "c.sqlite"), progress=False)
        (before,) = fusion_lines(faces(), describer, au_cached=False)
        assert before.startswith("fusion: up to 3 requests") and "typical prompt" in before
        synthesize_captions(faces(), describer)  # the AU captions, paid for once
        assert describer.client.estimate(au_requests(au_items(faces()))).calls == 0
        asked = sum(server.requests.values())
        (exact,) = fusion_lines(faces(), describer, au_cached=True)
        assert exact.startswith("fusion: 3 calls to make (0 cached)")
        assert sum(server.requests.values()) == asked  # the dry run called nothing
        corpus.caption_corpus(faces(), describer, work=tmp_path)  # pays for the three fusions
        (after,) = fusion_lines(faces(), describer, au_cached=True)
        assert after.startswith("fusion: 0 calls to make (3 cached)")
