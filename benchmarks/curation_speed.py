"""Curating a BP4D-sized label set: about 147k frames in 328 AU_OCC files (41 subjects × 8 tasks).

    .venv/bin/python benchmarks/curation_speed.py [--frames 448]

Writes BP4D-format label files (no images) with realistic AU dynamics, then times loading them
(``bp4d.load(check_images=False)``), the paper's sampling rule (``curate.sample_frames``) and the
whole curation (``curate.curate``: fold split, sampling, validation), next to a plain per-row Python
loop of the sampling rule as the baseline. Target (issue 3): under 5 s on one core.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data import curate
from facecap_lib.data.sources import bp4d
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.sampling import au_trajectory
from facecap_lib.data.table import face_table
from facecap_lib.lexicon import AU_COLUMNS


def write_labels(root: Path, frames: int) -> int:
    rng = np.random.default_rng(0)
    subjects = [s for fold in bp4d.FOLDS.values() for s in fold]
    parts = []
    for subject in subjects:
        for task in bp4d.TASKS:
            levels = au_trajectory(rng, frames)
            part = pd.DataFrame(
                {"subject": subject, "sequence": task, "frame": np.arange(1, frames + 1)}
            )
            for au in bp4d.AUS:
                column = (
                    levels[:, RENDERED_AUS.index(au)] if au in RENDERED_AUS else np.zeros(frames)
                )
                part[f"AU{au}"] = (column >= 1).astype(float)
            parts.append(part)
    table = face_table(pd.concat(parts, ignore_index=True))
    bp4d.write(root, table)
    return len(table)


def naive_sampling(df: pd.DataFrame, every: int = 10) -> int:
    kept, previous, key, position = 0, None, None, 0
    rows = df.sort_values(["subject", "sequence", "frame"])
    for _, row in rows.iterrows():
        labels = tuple(-1.0 if np.isnan(v) else v for v in row[list(AU_COLUMNS)])
        k = (row["subject"], row["sequence"])
        position = position + 1 if k == key else 0
        if position % every == 0 or (k == key and labels != previous):
            kept += 1
        previous, key = labels, k
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=448, help="frames per subject-task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n = write_labels(Path(tmp), args.frames)
        files = len(list((Path(tmp) / bp4d.LABEL_DIR).glob("*.csv")))
        start = time.perf_counter()
        table = bp4d.load(tmp, check_images=False)
        loaded = time.perf_counter()
        sampled = curate.sample_frames(table)
        sampled_at = time.perf_counter()
        curated = curate.curate([table], folds={"bp4d": (bp4d.FOLDS, [3])})
        done = time.perf_counter()
    print(f"{n} frames in {files} files")
    print(f"load:     {loaded - start:6.2f} s")
    print(
        f"sample:   {sampled_at - loaded:6.2f} s  ({len(sampled)} of {n} frames kept, {len(sampled) / n:.1%})"
    )
    print(
        f"curate:   {done - sampled_at:6.2f} s  (fold split, sampling of the training set, validation: {len(curated)} rows)"
    )
    print(f"total:    {loaded - start + done - sampled_at:6.2f} s  (load + curate; target < 5 s)")
    subset = table.iloc[: len(table) // 20]
    start = time.perf_counter()
    naive_sampling(subset)
    naive = (time.perf_counter() - start) * 20
    print(
        f"baseline: {naive:6.2f} s  (per-row Python loop of the same rule, extrapolated from 1/20)"
    )


if __name__ == "__main__":
    main()
