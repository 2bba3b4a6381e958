"""The language model's English: four public-domain books from a PyPI package, cut into passages."""

import pytest

from facecap_lib.data import english


def test_the_four_books_and_nothing_of_the_licence_headers():
    books = english.books()
    assert tuple(books) == english.BOOKS
    assert "Sherlock Holmes" in books["THE ADVENTURES OF SHERLOCK HOLMES"]
    text = "\n".join(books.values())
    assert "Copyright laws are changing" not in text  # the Gutenberg header of each book
    assert "*** START" not in text and "*** END" not in text
    assert "def correct" not in text  # the code appended after the last book is not English


def test_passages_are_whole_sentences_of_prose():
    body = (
        "CHAPTER I\n\nIt was a dark night. The rain fell on the roofs of the town, and no one "
        "was out. She waited.\n\n[Illustration: FIG. 1.--A figure]\n\n" + " ".join(["word"] * 128)
    )
    passages = english.passages_of(body, max_words=16)
    assert passages[0] == "It was a dark night."
    assert passages[1].startswith("The rain fell") and passages[1].endswith("out. She waited.")
    assert all(len(p.split()) <= 16 for p in passages)
    assert not any("CHAPTER" in p or "Illustration" in p for p in passages)
    assert sum(len(p.split()) for p in passages[2:]) == 128  # a long sentence cut, nothing lost


def test_passages_are_drawn_reproducibly():
    first = english.english_passages(50, seed=3)
    assert first == english.english_passages(50, seed=3)
    assert first != english.english_passages(50, seed=4)
    assert len(set(first)) == 50
    assert all(english.MIN_WORDS <= len(p.split()) <= english.MAX_WORDS for p in first)
    titles = {
        t for t, body in english.books().items() for p in first if p in body.replace("\n", " ")
    }
    assert len(titles) >= 2


def test_another_file_is_refused(tmp_path, monkeypatch):
    changed = tmp_path / "big.txt"
    changed.write_bytes(english.source_file().read_bytes() + b"\nmore\n")
    monkeypatch.setattr(english, "source_file", lambda: changed)
    english.books.cache_clear()
    try:
        with pytest.raises(ValueError, match="big.txt: sha256 .* is not the"):
            english.books()
    finally:
        english.books.cache_clear()
