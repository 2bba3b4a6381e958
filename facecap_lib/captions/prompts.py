"""The paper's prompts, as the language model sees them.

The quoted sentences are the paper's and must not change (tests pin them): the role sentence, the
example question and answer of the one-shot AU prompt (GPT-3.5), and the zero-shot fusion prompt
(paper Fig. 4). What the paper does not print is this project's choice: the header and the list of
the 27 AUs (one per line, ``AU1: inner brow raiser``, with the FACS noun forms of supplementary
Table 1), and the ``Question:`` / ``Answer:`` labels around the example and the real question.

A face with no AU gets no prompt: :func:`au_prompt` returns ``None`` and the caller uses the fixed
description :data:`~facecap_lib.lexicon.NO_AU_DESCRIPTION`, as the paper does.
"""

from __future__ import annotations

from collections.abc import Iterable

from facecap_lib.lexicon import AUS, au

ROLE = (
    "You are currently acting as an AU description expert, and you should answer questions "
    "according to this example:"
)
EXAMPLE_AUS = (2, 4, 9, 20, 25)
EXAMPLE_ANSWER = (
    "The face shows the outer eyebrows raised, forehead wrinkles, a wrinkled nose, a stretched "
    "lip, and either parted lips or a dropped jaw."
)
FUSION_INSTRUCTION = (
    "Combine the facial action sentence with the emotion sentence. This combined sentence should "
    "describe all the facial actions and emotions mentioned in these two sentences by pointing out "
    "how each emotion is inferred from the corresponding facial actions."
)
PROMPT_VERSION = "exp-blip-v1"  # part of every cache key: change it when a prompt changes


def au_list() -> str:
    """The 27 AUs with their FACS names, one per line."""
    lines = [f"{a.code}: {a.noun}" for a in AUS]
    return "The Facial Action Coding System (FACS) defines these 27 Action Units:\n" + "\n".join(
        lines
    )


def au_question(aus: Iterable[int]) -> str:
    """The paper's question for an AU set, AUs in ascending order."""
    codes = ", ".join(au(n).code for n in sorted(set(aus)))
    return (
        f"Describe briefly the facial actions or status of a face which contains {codes} in 1-9 "
        "sentences. Do not describe the emotion or facial expressions, and do not mention 'AU' in "
        "the reply."
    )


def au_prompt(aus: Iterable[int]) -> str | None:
    """The one-shot AU prompt for a face, or ``None`` when it has no AU (use the fixed text)."""
    numbers = sorted(set(int(n) for n in aus))
    if not numbers:
        return None
    return "\n\n".join(
        [
            au_list(),
            ROLE,
            f"Question: {au_question(EXAMPLE_AUS)}\nAnswer: {EXAMPLE_ANSWER}",
            f"Question: {au_question(numbers)}\nAnswer:",
        ]
    )


def fusion_prompt(au_caption: str, emotion_caption: str) -> str:
    """The zero-shot prompt that fuses an AU caption and an emotion caption (paper Fig. 4)."""
    return (
        f"{FUSION_INSTRUCTION}\n"
        f'Facial Action Sentence: "{au_caption.strip()}"\n'
        f'Emotion Sentence: "{emotion_caption.strip()}"'
    )


def messages(prompt: str) -> list[dict[str, str]]:
    """A chat-completions message list holding one user prompt."""
    return [{"role": "user", "content": prompt}]
