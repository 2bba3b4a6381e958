"""How many faces of a photo the face detectors find: BlazeFace (with its tiles) and the Haar cascade.

    .venv/bin/python benchmarks/detection.py [--photos 300] [--seed 0] [--json F]

Photos are SynthFACS faces composited into 640 x 480 scenes (:mod:`facecap_lib.data.synth.scenes`):
one to five people who do not overlap, each turned 0, 15, 30, 45 or 60 degrees either way, with a
face (forehead to chin) of 5, 10, 20, 35 or 50% of the photo's height, on a plain, gradient,
textured or cluttered background. A face counts as found when a detected box has its centre in
the face's landmark box and a size within 2.5 times of it (one detection per face). Prints the
share found by yaw, by face height and by number of people, false detections per photo and
seconds per photo, for each detector on the same photos. Target (issue 31): BlazeFace finds
>= 95% of the faces turned up to 45 degrees.
"""

import argparse
import json
import platform
import sys
import time

import numpy as np
import pandas as pd

from facecap_lib.data.detection import find_faces
from facecap_lib.data.detection.recall import match
from facecap_lib.data.synth.render import FACE_FRACTION, Renderer
from facecap_lib.data.synth.scenes import RENDER_SIZE, random_photo
from facecap_lib.progress import progress_bar
from facecap_lib.training.provenance import git_commit

DETECTORS = {"blazeface": "blazeface", "haar": "haar"}


def run(photos: int, seed: int) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    renderer = Renderer(RENDER_SIZE)
    rows, seconds, false = [], {d: 0.0 for d in DETECTORS}, {d: 0 for d in DETECTORS}
    for k in progress_bar(range(photos), desc="photos"):
        photo, placed = random_photo(rng, 1 + k % 5, renderer=renderer)
        truth = [p.box for p in placed]
        for name, detector in DETECTORS.items():
            start = time.perf_counter()
            faces = find_faces(photo, detector)
            seconds[name] += time.perf_counter() - start
            matched = match([f.box for f in faces], truth)
            false[name] += len(faces) - sum(m is not None for m in matched)
            for p, m in zip(placed, matched, strict=True):
                rows.append(
                    {
                        "detector": name,
                        "photo": k,
                        "people": len(placed),
                        "yaw": abs(p.spec.scene.yaw),
                        "face_height": round(p.side * FACE_FRACTION / photo.height, 2),
                        "found": m is not None,
                    }
                )
    table = pd.DataFrame(rows)
    summary = {
        name: {
            "seconds_per_photo": seconds[name] / photos,
            "false_per_photo": false[name] / photos,
            "found": float(table[table.detector == name].found.mean()),
            "found_up_to_45": float(
                table[(table.detector == name) & (table.yaw <= 45)].found.mean()
            ),
        }
        for name in DETECTORS
    }
    return table, summary


def shares(table: pd.DataFrame, by: str) -> pd.DataFrame:
    return table.pivot_table(index=by, columns="detector", values="found", aggfunc="mean").round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    table, summary = run(args.photos, args.seed)
    out = {
        "photos": args.photos, "seed": args.seed, "faces": int(len(table) / len(DETECTORS)),
        "command": " ".join(["python", *sys.argv]), "commit": git_commit(),
        "device": f"CPU ({platform.processor() or platform.machine()}), one thread per detector",
        "summary": summary,
    }  # fmt: skip
    for by in ("yaw", "face_height", "people"):
        frame = shares(table, by)
        print(f"\nfound, by {by}\n{frame.to_string()}")
        out[f"by_{by}"] = {str(k): v for k, v in frame.to_dict("index").items()}
    print(f"\n{json.dumps(summary, indent=2)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
