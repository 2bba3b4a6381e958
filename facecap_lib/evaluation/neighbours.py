"""What an encoder finds alike: for a few query faces, the faces nearest to each by the cosine of
their features, among the faces of *other* people.

Chapter 4 shows it for the pre-trained encoder. Nearest neighbours over a pool of video frames
are otherwise frames of the same person a few frames apart, which says only that the encoder
knows a person again, so the queries are of different people and every neighbour is of a person
other than its query's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.synth.corpus import TRUTH_FILE, rendered_truth


def nearest_of_other_people(
    features: np.ndarray, people, *, queries: int = 4, k: int = 3
) -> np.ndarray:
    """Indices ``[queries, 1 + k]`` into ``features`` (one row per face): each row a query, then
    its ``k`` nearest faces by cosine similarity among faces of people other than the query's.
    The queries are the first face of each of the first ``queries`` different people, in the
    order of ``people`` (one identity per face: a subject, or SynthFACS's rendered identity)."""
    features = np.asarray(features, dtype=np.float64)
    people = np.asarray(people)
    if features.ndim != 2 or len(features) != len(people):
        raise ValueError(
            f"features must be [faces, dims] with one person per face: got {features.shape} "
            f"and {len(people)} people"
        )
    _, first = np.unique(people, return_index=True)
    chosen = np.sort(first)[:queries]
    if len(chosen) < queries:
        raise ValueError(f"{queries} queries need {queries} different people, got {len(first)}")
    z = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    rows = []
    for q in chosen:
        similarity = z @ z[q]
        similarity[people == people[q]] = -np.inf  # the query itself and its person's other faces
        others = np.argsort(-similarity, kind="stable")[:k]
        if not np.isfinite(similarity[others]).all():
            raise ValueError(f"fewer than {k} faces of people other than query {q}'s person")
        rows.append([q, *others])
    return np.array(rows)


def people(faces: pd.DataFrame) -> np.ndarray:
    """One person per face: the identity SynthFACS rendered (its stills have no subject), else
    the dataset's subject, else the image itself (a still of someone unnamed)."""
    subject = faces["subject"].astype(object)
    image = faces["data_root"].astype(str) + "/" + faces["image_path"].astype(str)
    out = faces["dataset"].astype(str) + ":" + subject.where(subject.notna(), image)
    for root, rows in faces.groupby("data_root", sort=False):
        if (Path(root) / TRUTH_FILE).exists():
            out[rows.index] = [f"synthfacs:{i}" for i in rendered_truth(rows)["identity"]]
    return out.to_numpy()
