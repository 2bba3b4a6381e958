"""Rule-based captions in the paper's exact form."""

import pytest

from facecap_lib.captions.rules import au_caption, emotion_caption, join_phrases
from facecap_lib.lexicon import AU_NUMBERS


def test_paper_example():
    assert au_caption({10, 14, 17, 24}) == (
        "It is a people who raises upper lip, tightens lip corner, raises chin and presses lips."
    )


def test_au_caption_orders_and_dedupes():
    assert au_caption([12, 6, 12]) == "It is a people who raises cheek and pulls lip corner."
    assert au_caption([27]) == "It is a people who stretches mouth."


def test_no_au_means_no_rule_caption():
    assert au_caption(set()) is None


def test_every_au_has_a_caption():
    caption = au_caption(AU_NUMBERS)
    assert caption.count(",") == 25 and caption.endswith("and closes eyes.")


def test_unknown_au_is_an_error():
    with pytest.raises(KeyError, match="AU32"):
        au_caption({1, 32})


def test_emotion_captions():
    assert emotion_caption(["happiness"]) == "The face shows happiness."
    assert emotion_caption(["Happy", "surprised"]) == "The face shows happiness and surprise."
    assert emotion_caption(["fear", "anger", "fear", "disgust"]) == (
        "The face shows fear, anger and disgust."
    )
    with pytest.raises(ValueError):
        emotion_caption([])
    with pytest.raises(ValueError, match="bored"):
        emotion_caption(["bored"])


def test_join_phrases():
    assert join_phrases(["a"]) == "a"
    assert join_phrases(["a", "b"]) == "a and b"
    assert join_phrases(iter(["a", "b", "c"])) == "a, b and c"
    with pytest.raises(ValueError):
        join_phrases([])
