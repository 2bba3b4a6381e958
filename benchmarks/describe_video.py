"""Does a described clip follow what the face does? Frame-level AU F1 of `describe_video` on SynthFACS clips.

    .venv/bin/python benchmarks/describe_video.py --checkpoint RUN/exp-blip/final [--checkpoint ...]
        [--fps 5] [--beams 5] [--frames 75] [--smooth 3] [--windows 1,3,5] [--json F]

One clip per basic emotion (:func:`facecap_lib.data.synth.clips.prototype_people`): a person
neutral for the first and last fifth of ``--frames`` frames, between them rising to the emotion's
prototype at intensity D, holding it and falling back
(25 frames/s, BP4D's rate), written as MP4 and described as a user's clip would be
(``facecap describe clip.mp4``: sampled at ``--fps``, tracked, captioned, smoothed). Each
clip's track is scored against the rendered truth frame by frame (an AU on from intensity A):
the mean F1 of the AUs the clip shows, and the micro F1 over every AU (AUs named but never shown
count against it). Prints both per clip and their means (at ``--smooth``; the means at each of
``--windows`` too, from the same captions), and the frames described per second
(this machine, the device named). Target (issue 31): frame-level AU F1 >= 0.6 with the book's
captioner.
"""

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facecap_lib.data.synth.clips import CLIP_FPS, expression_clip, prototype_people
from facecap_lib.data.video import write_video
from facecap_lib.describing import describe_video, smooth_track
from facecap_lib.describing.agreement import frame_au_f1
from facecap_lib.inference import load_captioner
from facecap_lib.training.provenance import git_commit


def run(checkpoint, fps, beams, n_frames, folder: Path, smooth: int, windows) -> dict:
    """The figures of one captioner at ``smooth`` and, from the same captions, at each of
    ``windows`` (smoothing is a pass over the parsed captions: the clip is described once)."""
    model, tokenizer = load_captioner(checkpoint)
    clips, seconds, frames = {}, 0.0, 0
    by_window = {w: [] for w in sorted({smooth, *windows})}
    for emotion, person in prototype_people():
        path = folder / f"{emotion}.mp4"
        if not path.exists():
            images, truth = expression_clip([person], n_frames=n_frames)
            write_video(images, path, fps=CLIP_FPS)
            truth.to_csv(path.with_suffix(".csv"), index=False)
        truth = pd.read_csv(path.with_suffix(".csv"))
        result = describe_video(
            path, model=model, tokenizer=tokenizer, fps=fps, beams=beams, smooth=1
        )
        seconds, frames = seconds + result.seconds, frames + result.frames
        tracks = sorted(result.tracks, key=lambda t: -result.track(t)["caption"].notna().sum())
        for window in by_window:
            score = (
                frame_au_f1(smooth_track(result.track(tracks[0]), window), truth, CLIP_FPS)
                if tracks else {"mean_f1": 0.0, "micro_f1": 0.0, "per_au": {}}
            )  # fmt: skip
            by_window[window].append(score)
            if window == smooth:
                clips[emotion] = {"tracks": len(tracks), **score}
        print(f"{emotion:10s} tracks {len(tracks)}  mean F1 {clips[emotion]['mean_f1']:.3f}  "
              f"micro F1 {clips[emotion]['micro_f1']:.3f}  {clips[emotion]['per_au']}")  # fmt: skip
    return {
        "checkpoint": checkpoint,
        "clips": clips,
        "mean_f1": float(np.mean([c["mean_f1"] for c in clips.values()])),
        "micro_f1": float(np.mean([c["micro_f1"] for c in clips.values()])),
        "frames_per_second": frames / seconds,
        "by_smoothing_window": {
            str(w): {k: float(np.mean([c[k] for c in scores])) for k in ("mean_f1", "micro_f1")}
            for w, scores in by_window.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--smooth", type=int, default=3, help="describe_video's smoothing window")
    parser.add_argument(
        "--windows", default="1,3,5", help="smoothing windows also scored, from the same captions"
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"{torch.get_num_threads()} CPU threads ({platform.processor() or platform.machine()})"
    )
    out = {
        "fps": args.fps,
        "beams": args.beams,
        "frames": args.frames,
        "smooth": args.smooth,
        "command": " ".join(["python", *sys.argv]),
        "commit": git_commit(),
        "device": device,
        "captioners": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for checkpoint in args.checkpoint:
            print(f"\n{checkpoint}")
            windows = [int(w) for w in args.windows.split(",") if w]
            result = run(
                checkpoint, args.fps, args.beams, args.frames, Path(tmp), args.smooth, windows
            )
            print(f"mean F1 {result['mean_f1']:.3f}, micro F1 {result['micro_f1']:.3f}, "
                  f"{result['frames_per_second']:.2f} frames/s on {device}")  # fmt: skip
            out["captioners"].append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
