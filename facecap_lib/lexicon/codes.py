"""Reading the AU codes that datasets write: ``"AU12"``, ``"12"``, ``"L12"``, ``"17+B22+T24"``, ``"null"``.

Grammar of one token (case-insensitive, ASCII, surrounding whitespace ignored):

    [AU | AD | region prefix] <1-3 digits> [intensity letter A-E] [side letter L | R]

- Region prefixes are ``L``/``R`` (left/right), ``T``/``B`` (top/bottom lip), ``U`` (unilateral)
  and a lip-and-side pair (``BL18``, ``RB18``); they are dropped: an AU present in any region is
  present, as Exp-BLIP does for RAF-AU. ``AD`` (action descriptor) is read only for AU19, the one
  lexicon AU FACS writes that way (``AD19``). ``AU 12`` (a space, as in EmotioNet headers) is read.
- An intensity letter (``5B``, ``R12A``) is dropped: the result is occurrence only. A trailing side
  letter (``L12L``, a quirk of the RAF-AU label file) is dropped too.
- Tokens are joined with ``+``; repeated AUs count once; ``""`` and ``"null"`` mean no AU.
- A token whose number is not one of the 27 lexicon AUs is *unknown*; anything else that does not
  match the grammar (``L12L``, ``AU``, an empty token in ``1++2``) is *malformed*. Strict parsing
  raises ``ValueError`` naming the token; lenient parsing skips it and reports it in ``skipped``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from facecap_lib.lexicon.aus import AU_BY_NUMBER, AU_NUMBERS

_TOKEN = re.compile(
    r"^(AU\s*|AD|[TB][LR]|[LR][TB]|[LRTBU])?(\d{1,3})([A-E])?([LR])?$", re.IGNORECASE | re.ASCII
)
_NO_AU = {"", "null"}


@dataclass(frozen=True)
class SkippedToken:
    """A token lenient parsing left out, and why (``"unknown"`` or ``"malformed"``)."""

    token: str
    reason: str


@dataclass(frozen=True)
class ParsedAUCodes:
    """Everything one AU string said: the lexicon AUs present and the tokens left out."""

    text: str
    aus: frozenset[int]
    skipped: tuple[SkippedToken, ...] = ()

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def parse_au_tokens(text: str) -> ParsedAUCodes:
    """Parse ``text`` leniently: lexicon AUs in ``aus``, unknown and malformed tokens in ``skipped``."""
    if not isinstance(text, str):
        raise TypeError(
            f"AU codes must be a string, got {type(text).__name__}: {text!r}. A missing label "
            "(None/NaN) is not 'no AU'; read label files with keep_default_na=False so that "
            "'null' stays a string"
        )
    stripped = text.strip()
    if stripped.lower() in _NO_AU:
        return ParsedAUCodes(text, frozenset())
    aus: set[int] = set()
    skipped: list[SkippedToken] = []
    for raw in stripped.split("+"):
        token = raw.strip()
        match = _TOKEN.match(token)
        number = int(match.group(2)) if match else None
        descriptor = match is not None and (match.group(1) or "").upper() == "AD"
        if match is None or (descriptor and number in AU_BY_NUMBER and number != 19):
            skipped.append(SkippedToken(token, "malformed"))
        elif number not in AU_BY_NUMBER:
            skipped.append(SkippedToken(token, "unknown"))
        else:
            aus.add(number)
    return ParsedAUCodes(text, frozenset(aus), tuple(skipped))


def parse_au_codes(text: str, *, strict: bool = True) -> frozenset[int]:
    """The set of lexicon AU numbers present in an AU string.

    Args:
        text: a dataset's AU string, e.g. ``"17+B22+T24"``, ``"AU12"``, ``" 25 "`` or ``"null"``.
        strict: raise ``ValueError`` naming the first unknown or malformed token (default); when
            ``False``, skip such tokens (use :func:`parse_au_tokens` to count them).

    Returns:
        A ``frozenset`` of AU numbers from :data:`~facecap_lib.lexicon.AU_NUMBERS`; empty for no AU.
    """
    parsed = parse_au_tokens(text)
    if strict and parsed.skipped:
        bad = parsed.skipped[0]
        if bad.reason == "unknown":
            detail = f"not one of the 27 lexicon AUs {list(AU_NUMBERS)}"
        else:
            detail = "expected e.g. 'AU12', '12', 'L12', 'B22', '5B' or 'AD19'"
        raise ValueError(f"{bad.reason} AU token {bad.token!r} in {text!r}: {detail}")
    return parsed.aus


def format_au_codes(aus: Iterable[int]) -> str:
    """``{12, 6}`` → ``"AU6+AU12"`` (ascending); ``"null"`` for no AU. Inverse of :func:`parse_au_codes`."""
    items = list(aus)
    if any(isinstance(n, bool) or not float(n).is_integer() for n in items):
        raise ValueError(f"AU numbers must be integers, got {items!r}")
    numbers = sorted(set(int(n) for n in items))
    for n in numbers:
        if n not in AU_BY_NUMBER:
            raise ValueError(f"AU{n} is not one of the 27 lexicon AUs {list(AU_NUMBERS)}")
    return "+".join(f"AU{n}" for n in numbers) if numbers else "null"
