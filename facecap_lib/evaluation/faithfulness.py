"""Faithfulness of captions to labels: which AUs and emotions a caption mentions, read by
:func:`parse_caption` (the lexicon's exact phrases, then part and action words in any inflection
and order, with negated and hedged mentions left out and reported), against the face's labels.

F1 convention: an AU with no labelled positives and no predictions scores 0 (not 1 and not
undefined), as scikit-learn's ``zero_division=0``; :func:`au_scores` reports the counts so a
reader can tell such rows apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.validate import named_emotions
from facecap_lib.lexicon import AU_COLUMNS


def f1_score(tp: int, fp: int, fn: int) -> float:
    """F1 from counts of true positives, false positives and false negatives (0 without a true
    positive)."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def au_scores(captions: Sequence[str], faces: pd.DataFrame) -> pd.DataFrame:
    """Per-AU precision, recall and F1 of the AUs the captions mention, over the faces where that
    AU is labelled (1 or 0; NaN rows are skipped). One row per AU labelled anywhere in ``faces``,
    with ``positives`` (labelled present) and ``mentioned`` counts."""
    if len(captions) != len(faces):
        raise ValueError(f"{len(captions)} captions for {len(faces)} faces")
    mentioned = [parse_caption(c or "").aus for c in captions]
    rows = []
    for column in AU_COLUMNS:
        labels = faces[column].to_numpy(dtype=float)
        known = ~np.isnan(labels)
        if not known.any():
            continue
        number = int(column[2:])
        said = np.array([number in m for m in mentioned])[known]
        truth = labels[known] == 1
        tp, fp, fn = (
            int((said & truth).sum()),
            int((said & ~truth).sum()),
            int((~said & truth).sum()),
        )
        rows.append(
            {
                "au": column,
                "labelled": int(known.sum()),
                "positives": int(truth.sum()),
                "mentioned": int(said.sum()),
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn) if tp + fn else 0.0,
                "f1": f1_score(tp, fp, fn),
            }
        )
    return pd.DataFrame(rows)


def emotion_named(captions: Sequence[str], faces: pd.DataFrame) -> pd.DataFrame:
    """For every emotion-labelled face: its labels, the emotions its caption names, and whether
    every label is named (``hit``)."""
    if len(captions) != len(faces):
        raise ValueError(f"{len(captions)} captions for {len(faces)} faces")
    rows = []
    for caption, labels in zip(captions, faces["emotions"], strict=True):
        if len(labels) == 0:
            continue
        named = set(parse_caption(caption or "").emotions)
        rows.append(
            {
                "labels": "+".join(labels),
                "named": "+".join(sorted(named)),
                "hit": set(labels) <= named,
            }
        )
    return pd.DataFrame(rows, columns=["labels", "named", "hit"])


# ------------------------------------------------------------------ free-text parser
#
# Each clause is cut into words. Body-part words ("brows", "lip corners", "eyelids") are found,
# and every qualifier ("inner", "upper") and action word ("lifted", "pressed", "wrinkles") is
# attached to the part word nearest to it, so "tightens lids and separates lips" gives (lids:
# tighten) and (lips: separate), and "the inner and outer brows are raised" gives (brows: inner,
# outer, raise). A part with its qualifiers and actions is then read as AUs by :data:`_RULES`.

_PART_WORDS = {
    "brow": {"brow", "brows", "eyebrow", "eyebrows"},
    "lid": {"lid", "lids", "eyelid", "eyelids"},
    "eye": {"eye", "eyes"},
    "cheek": {"cheek", "cheeks"},
    "nose": {"nose", "nostril", "nostrils"},
    "lip": {"lip", "lips"},
    "corner": {"corner", "corners"},
    "mouth": {"mouth"},
    "chin": {"chin"},
    "jaw": {"jaw"},
    "dimple": {"dimple", "dimples", "dimpled", "dimpler"},
    "fold": {"nasolabial", "fold", "folds"},
}
_QUALIFIERS = {"inner", "outer", "upper", "lower"}
_COMPOUND = {"lip", "mouth", "brow", "eye"}  # first words of "lip corners", "mouth corners"...
_ACTION_WORDS = {
    "raise": r"rais\w*|lift\w*|elevat\w*|arch\w*",
    "lower": r"lowered|lowering|lowers|furrow\w*|knit\w*|frown\w*|creas\w*",
    "widen": r"widen\w*|wide|widely",
    "tighten": r"tight\w*|narrow\w*|squint\w*|tens\w*",
    "wrinkle": r"wrinkl\w*|crinkl\w*|scrunch\w*",
    "pull": r"pull\w*|drawn?|draws|drawing|turn\w*|curl\w*",
    "up": r"up|upward|upwards|upturned",
    "down": r"down|downward|downwards|downturned|depress\w*",
    "smile": r"smil\w*",
    "stretch": r"stretch\w*|gaping",
    "sideways": r"sideways|horizontal\w*",
    "press": r"press\w*|together",
    "part": r"part|parts|parted|parting|apart|separat\w*|open\w*|gap",
    "drop": r"drop\w*|slack|fall\w*|hang\w*",
    "close": r"clos\w*|shut",
}
_ACTION_RE = {k: re.compile(r"(?:" + v + r")") for k, v in _ACTION_WORDS.items()}
_NEGATION = re.compile(r"\b(?:not|no|without|neither|nor|never|n't|absent)\b")
_HEDGE = re.compile(r"\b(?:either|may|might|perhaps|possibly|or)\b")
_CLAUSE = re.compile(r"[.;:!?,]|\b(?:while|whereas|but|which|that)\b")


def _rules(part: str, q: set[str], a: set[str]) -> set[int]:
    """The AUs of one body part with its qualifiers ``q`` and actions ``a``."""
    out = set()
    if part == "brow":
        if "raise" in a or "up" in a:
            out |= {1} if "inner" in q else set()
            out |= {2} if "outer" in q else set()
            out |= {1, 2} if not q & {"inner", "outer"} else set()
        if "lower" in a or ("pull" in a and "press" in a) or "down" in a:
            out.add(4)
    elif part == "lid" or (part == "eye" and not q):
        if part == "lid" and "upper" in q and a & {"raise", "up", "widen"}:
            out.add(5)
        elif part == "eye" and a & {"widen"}:
            out.add(5)
        if a & {"tighten"} or (part == "lid" and "lower" in q and a & {"raise"}):
            out.add(7)
        if "close" in a:
            out.add(43)
    elif part == "cheek" and a & {"raise", "up"}:
        out.add(6)
    elif part == "nose" and "wrinkle" in a:
        out.add(9)
    elif part == "fold" and a & {"widen", "raise", "wrinkle"} | {"deepen"}:
        out.add(11)
    elif part == "corner":
        if "down" in a:
            out.add(15)
        elif a & {"pull", "up", "raise", "smile"}:
            out.add(12)
        if "tighten" in a:
            out.add(14)
    elif part == "dimple":
        out.add(14)
    elif part == "lip":
        if "upper" in q and a & {"raise", "up", "pull"} and "down" not in a:
            out.add(10)
        if "lower" in q and a & {"down", "lower"}:
            out.add(16)
        if "stretch" in a:
            out.add(20)
        if "tighten" in a and "press" not in a:
            out.add(23)
        if "press" in a and "pull" not in a:
            out.add(24)
        if "part" in a:
            out.add(25)
    elif part == "mouth":
        if "stretch" in a or ("part" in a and "widen" in a):
            out.add(20 if "sideways" in a else 27)
        elif "part" in a:
            out.add(25)
    elif part == "chin" and a & {"raise", "up", "wrinkle"}:
        out.add(17)
    elif part == "jaw" and a & {"drop", "down", "lower", "part"}:
        out.add(26)
    return out


def _clause_aus(clause: str) -> set[int]:
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", clause)
    parts: list[tuple[int, str]] = []
    for i, w in enumerate(words):
        kind = next((k for k, forms in _PART_WORDS.items() if w in forms), None)
        if kind is None:
            continue
        if kind == "corner" and i > 0 and words[i - 1] in ("eye", "eyes"):
            parts = [(j, k) for j, k in parts if j != i - 1] + [(i, "eye-corner")]
            continue
        if kind == "corner" and (
            (parts and parts[-1][1] == "brow" and parts[-1][0] == i - 1)
            or any(w in _PART_WORDS["brow"] for w in words[i + 1 : i + 4])
        ):
            continue  # "brow corners", "the inner corners of the eyebrows": the brow carries it
        if (
            kind in ("lip", "mouth")
            and i + 1 < len(words)
            and words[i + 1] in _PART_WORDS["corner"]
        ):
            continue  # "lip corners": the corner word carries it
        if kind == "mouth" and parts and parts[-1][1] == "corner" and i - parts[-1][0] <= 3:
            continue  # "the corners of the mouth"
        if kind in ("eye", "lip") and parts and parts[-1][1] == "lid" and parts[-1][0] == i - 1:
            continue
        parts.append((i, kind))
    if not parts:
        return set()
    at = {j for j, _ in parts}
    found_q = {i: set() for i in at}
    found_a = {i: set() for i in at}

    def distance(i: int, j: int) -> float:  # words apart; crossing "and" / "with" costs more
        between = words[min(i, j) + 1 : max(i, j)]
        return abs(i - j) + 0.5 * sum(w in ("and", "or", "with") for w in between)

    def qualifies(i: int) -> bool:  # "lower lip", "lower and upper lids"; not "brows lower"
        after = words[i + 1 : i + 3]
        return i + 1 in at or (
            len(after) == 2 and after[0] in ("and", "or") and after[1] in _QUALIFIERS
        )

    particles = {
        "together",
        "up",
        "upward",
        "upwards",
        "down",
        "downward",
        "downwards",
        "apart",
        "tight",
    }
    attached: dict[int, int] = {}
    for i, w in enumerate(words):
        if i in at:
            continue
        nearest = min(parts, key=lambda p: (distance(i, p[0]), p[0] < i))[0]  # ties: the next
        ahead = [j for j in (i + 1, i + 2) if j in at]
        if ahead and (ahead[0] == i + 1 or words[i + 1] in _QUALIFIERS | _COMPOUND):
            nearest = ahead[0]  # before its noun: "tightened lips", "raised upper lip"
        elif w in particles and i - 1 in attached:
            nearest = attached[i - 1]  # "drawn together", "pulled up": with their verb
        elif i >= 2 and words[i - 1] == "and" and i - 2 in attached:
            nearest = attached[i - 2]  # "lips narrowed and tightened": coordinated actions
        attached[i] = nearest
        if w in _QUALIFIERS and (w != "lower" or qualifies(i)):
            found_q[nearest].add(w)
            continue
        for action, pattern in _ACTION_RE.items():
            if pattern.fullmatch(w):
                found_a[nearest].add(action)
        if w == "lower":
            found_a[nearest].add("lower")
    if "deepened" in words or "deeper" in words or "pronounced" in words:
        for i, kind in parts:
            if kind == "fold":
                found_a[i].add("deepen")
    out = set()
    for i, kind in parts:
        out |= _rules(kind, found_q[i], found_a[i])
    return out


@dataclass(frozen=True)
class Parse:
    """What a caption says: AUs and emotions read with confidence, and what the parser is unsure
    of (negated, hedged or disjunctive mentions, and plain "raised brows", read as AU1 + AU2)."""

    aus: frozenset[int]
    emotions: frozenset[str]
    unsure: tuple[str, ...]


def parse_caption(text: str) -> Parse:
    """Read AUs and emotions from free text: the lexicon's exact phrases (verb, noun and
    appearance forms, :func:`~facecap_lib.captions.mentions.mentioned_aus`), then clause by clause
    part + action words in any inflection ("the inner and outer brows are lifted" -> AU1, AU2).
    A negated clause ("not raised or furrowed") counts nothing; a hedged or disjunctive one
    ("either parted lips or a dropped jaw") counts nothing either; both are reported in ``unsure``."""
    lowered = " ".join((text or "").lower().split())
    aus, unsure = set(), []
    emotions = set()
    for clause in filter(None, (c.strip() for c in _CLAUSE.split(lowered))):
        found = set(mentioned_aus(clause)) | _clause_aus(clause)
        named = named_emotions(clause)
        if _NEGATION.search(clause):
            if found or named:
                unsure.append(f"negated: {clause!r} ({_describe(found, named)})")
            continue
        if _HEDGE.search(clause) and len(found | named) > 0:
            unsure.append(f"hedged: {clause!r} ({_describe(found, named)})")
            continue
        if (
            {1, 2} <= found
            and not re.search(r"\b(?:inner|outer)\b", clause)
            and not mentioned_aus(clause) & {1, 2}
        ):
            unsure.append(f"raised brows without inner/outer, read as AU1 + AU2: {clause!r}")
        aus |= found
        emotions |= named
    return Parse(frozenset(aus), frozenset(emotions), tuple(unsure))


def _describe(aus: set[int], emotions: set[str]) -> str:
    return ", ".join([f"AU{a}" for a in sorted(aus)] + sorted(emotions)) or "nothing"


def strategy_scores(captions: dict[str, Sequence[str]], faces: pd.DataFrame) -> pd.DataFrame:
    """Automatic correctness and completeness per strategy, in the shape of paper Table 5.

    Per caption, the parsed AUs and emotions (:func:`parse_caption`) are compared with the
    face's labels (AUs labelled 1; NaN AUs ignored): ``correctness`` is the share of mentions
    that are right (precision; 1 for a caption that mentions nothing), ``completeness`` the share
    of labels mentioned (recall; 1 for a face with no labels). For every face, the strategy of
    highest completeness is "most complete" and the lowest "least complete" (ties share the
    vote). Returns means x100 per strategy and the share of unsure parses."""
    names = list(captions)
    for name in names:
        if len(captions[name]) != len(faces):
            raise ValueError(f"{name}: {len(captions[name])} captions for {len(faces)} faces")
    columns = [c for c in AU_COLUMNS if c in faces]
    per = {n: {"correct": [], "complete": [], "unsure": []} for n in names}
    most, least = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for i, (_, face) in enumerate(faces.iterrows()):
        labels = {f"AU{c[2:]}" for c in columns if face[c] == 1}
        labels |= set(face.get("emotions", []))
        known = {f"AU{c[2:]}" for c in columns if not pd.isna(face[c])}
        complete = {}
        for name in names:
            parsed = parse_caption(captions[name][i] or "")
            said = {f"AU{a}" for a in parsed.aus if f"AU{a}" in known} | set(parsed.emotions)
            per[name]["correct"].append(len(said & labels) / len(said) if said else 1.0)
            complete[name] = len(said & labels) / len(labels) if labels else 1.0
            per[name]["complete"].append(complete[name])
            per[name]["unsure"].append(bool(parsed.unsure))
        best, worst = max(complete.values()), min(complete.values())
        if best == worst:
            continue  # all equally complete: no vote
        top = [n for n in names if complete[n] == best]
        bottom = [n for n in names if complete[n] == worst]
        for n in top:
            most[n] += 1 / len(top)
        for n in bottom:
            least[n] += 1 / len(bottom)
    votes_most, votes_least = sum(most.values()) or 1, sum(least.values()) or 1
    rows = {
        n: {
            "correctness %": 100 * np.mean(per[n]["correct"]),
            "completeness %": 100 * np.mean(per[n]["complete"]),
            "most complete %": 100 * most[n] / votes_most,
            "least complete %": 100 * least[n] / votes_least,
            "unsure parses %": 100 * np.mean(per[n]["unsure"]),
        }
        for n in names
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def unsure_parses(captions: Sequence[str]) -> pd.DataFrame:
    """The captions the parser is unsure of, with its reasons (one row per reason)."""
    rows = [
        {"index": i, "caption": c, "reason": reason}
        for i, c in enumerate(captions)
        for reason in parse_caption(c or "").unsure
    ]
    return pd.DataFrame(rows, columns=["index", "caption", "reason"])
