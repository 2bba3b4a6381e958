"""What the SynthFACS faces do: AU sets of emotions, spontaneous AU sets, and AU trajectories of videos.

Intensities are integers on the FACS scale (0 absent, 1-5 = A-E); an AU is labelled present when
its intensity is at least 1 (A). Everything is drawn from a ``numpy.random.Generator`` so a seed
reproduces a corpus exactly.

- :func:`emotion_aus`: a face expressing an emotion, drawn from that emotion's prototypes in the
  lexicon (EMFACS and Du et al. for basic emotions, Du et al. for compounds) with natural variation:
  each prototypical AU appears with probability 0.85, each optional one with 0.35, intensities vary,
  and now and then an unrelated AU joins. Contempt is one-sided (R12A + R14A).
- :func:`spontaneous_aus`: AU sets for AU-labelled images, half from emotion prototypes, half
  from independent AU activations at rates similar to spontaneous-expression datasets.
- :func:`au_trajectory`: per-frame intensities of a video: overlapping events, each with an onset,
  an apex and an offset, like the frame-level labels of BP4D and DISFA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.lexicon import (
    BASIC_EMOTIONS,
    BASIC_PROTOTYPES,
    COMPOUND_BY_NAME,
    COMPOUND_PROTOTYPES,
    EMOTION_NAMES,
)

RENDERED = frozenset(RENDERED_AUS)
# rough occurrence rates of spontaneous AUs (BP4D/DISFA-like), for AUs the renderer draws
BASE_RATES: dict[int, float] = {
    1: 0.14,
    2: 0.12,
    4: 0.13,
    5: 0.06,
    6: 0.3,
    7: 0.3,
    9: 0.06,
    10: 0.3,
    12: 0.35,
    14: 0.2,
    15: 0.1,
    16: 0.05,
    17: 0.2,
    20: 0.07,
    23: 0.1,
    24: 0.08,
    25: 0.3,
    26: 0.12,
    27: 0.02,
    43: 0.05,
}
_PROTOTYPES: dict[str, list] = {}
for _p in BASIC_PROTOTYPES + COMPOUND_PROTOTYPES:
    _PROTOTYPES.setdefault(_p.emotion, []).append(_p)


@dataclass(frozen=True)
class FaceAction:
    """What one face does: FACS intensities (0-5) by AU and the side of one-sided actions."""

    intensities: dict[int, int]
    sides: dict[int, str]

    @property
    def present(self) -> frozenset[int]:
        return frozenset(au for au, level in self.intensities.items() if level >= 1)


def _level(rng: np.random.Generator, low: int = 2) -> int:
    return int(rng.integers(low, 6))


def emotion_aus(emotion: str, rng: np.random.Generator, extra_rate: float = 0.15) -> FaceAction:
    """A varied AU configuration expressing ``emotion`` (canonical basic name or compound name)."""
    if emotion == "neutral":
        return FaceAction({}, {})
    prototypes = _PROTOTYPES.get(emotion)
    if not prototypes:
        known = list(EMOTION_NAMES) + list(COMPOUND_BY_NAME)
        raise ValueError(f"no AU prototype for emotion {emotion!r}; known: {known}")
    proto = prototypes[int(rng.integers(len(prototypes)))]
    required = sorted(proto.aus & RENDERED)
    optional = sorted(proto.optional & RENDERED)
    chosen = [au for au in required if rng.uniform() < 0.85]
    if len(chosen) < max(1, (len(required) + 1) // 2):  # keep the expression recognisable
        chosen = list(rng.choice(required, size=max(1, (len(required) + 1) // 2), replace=False))
    chosen += [au for au in optional if rng.uniform() < 0.35]
    if rng.uniform() < extra_rate:
        chosen.append(int(rng.choice(RENDERED_AUS)))
    intensities = {int(au): _level(rng) for au in chosen}
    sides: dict[int, str] = {}
    if emotion == "contempt":
        side = str(rng.choice(["L", "R"]))
        sides = {au: side for au in (12, 14) if au in intensities}
    return FaceAction(_consistent(intensities), sides)


def _consistent(intensities: dict[int, int]) -> dict[int, int]:
    """Drop combinations a face cannot make at once (eyes closed and widened; 26 with 27)."""
    out = dict(intensities)
    if 43 in out and 5 in out:
        out.pop(5)
    if 27 in out and 26 in out:
        out.pop(26)
    return out


def spontaneous_aus(rng: np.random.Generator, prototype_rate: float = 0.5) -> FaceAction:
    """AUs of an AU-labelled image: an emotion prototype (varied) or independent activations."""
    if rng.uniform() < prototype_rate:
        emotion = str(rng.choice(list(BASIC_EMOTIONS) + ["contempt"] + list(COMPOUND_BY_NAME)[:12]))
        return emotion_aus(emotion, rng, extra_rate=0.3)
    chosen = [au for au, rate in BASE_RATES.items() if rng.uniform() < rate]
    return FaceAction(_consistent({au: _level(rng, 1) for au in chosen}), {})


def au_trajectory(
    rng: np.random.Generator, n_frames: int, events_per_100: float = 2.0, emotion: str | None = None
) -> np.ndarray:
    """Integer intensities ``[n_frames, len(RENDERED_AUS)]`` of one video.

    Events arrive at random (``events_per_100`` per 100 frames on average, at least one); each moves
    a set of AUs (the ``emotion``'s prototype if given, else spontaneous sets) through onset (rise),
    apex (hold) and offset (decay). Overlapping events combine by maximum.
    """
    columns = {au: i for i, au in enumerate(RENDERED_AUS)}
    out = np.zeros((n_frames, len(RENDERED_AUS)))
    n_events = max(1, int(rng.poisson(events_per_100 * n_frames / 100)))
    for _ in range(n_events):
        action = emotion_aus(emotion, rng) if emotion else spontaneous_aus(rng, 0.6)
        onset, apex, offset = (
            int(rng.integers(4, 16)),
            int(rng.integers(10, 80)),
            int(rng.integers(4, 21)),
        )
        start = int(rng.integers(-onset, n_frames))
        t = np.arange(n_frames) - start
        shape = np.clip(np.minimum((t + 1) / onset, 1.0 - (t - onset - apex) / offset), 0.0, 1.0)
        shape[t < 0] = 0.0
        for au, level in action.intensities.items():
            out[:, columns[au]] = np.maximum(out[:, columns[au]], level * shape)
    return np.rint(out).astype(np.int8)
