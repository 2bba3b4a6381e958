"""SynthFACS rendering speed: faces per second at 128 px, one process vs all cores.

    .venv/bin/python benchmarks/synth_speed.py [--n 600] [--size 128]

Target (issue 3): at least 150 faces/s at 128 px on the 2-core CI machine. Faces are varied
(random identities, AU sets, poses, lights, noise) and written nowhere (in-memory rendering).
"""

import argparse
import time

import numpy as np

from facecap_lib.data.synth.batch import FaceSpec, default_workers, render_arrays
from facecap_lib.data.synth.render import Scene
from facecap_lib.data.synth.sampling import spontaneous_aus


def specs(n: int) -> list[FaceSpec]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        action = spontaneous_aus(rng)
        out.append(
            FaceSpec(action.intensities, i, Scene.sample(rng, occluder_rate=0.1), action.sides)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    faces = specs(args.n)
    render_arrays(faces[:8], size=args.size, workers=1)  # warm-up (mesh, fields)
    for workers in sorted({1, default_workers()}):
        start = time.perf_counter()
        render_arrays(faces, size=args.size, workers=workers)
        rate = args.n / (time.perf_counter() - start)
        print(f"{args.size} px, {workers} worker(s): {rate:7.1f} faces/s")


if __name__ == "__main__":
    main()
