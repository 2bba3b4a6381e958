# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Describing your own photos and videos
#
# ## Overview
# Chapters 2 to 6 work on face crops, as the datasets give them. A photo of your own holds
# several faces, turned and small, and a video holds them over time. This chapter does what
# `facecap describe` does with them, step by step:
#
# 1. Find every face: BlazeFace over the photo and its tiles, against OpenCV's Haar cascade
# 2. Crop each face as the training faces are: eyes level, SynthFACS's framing
# 3. Describe a group photo: a caption per face, and the AUs and emotions each caption names
# 4. Describe a clip: faces tracked, captioned, smoothed, drawn as a timeline beside the truth
# 5. A real photo, and what a captioner trained on SynthFACS gets wrong on real faces
#
# ## Prerequisites
#
# | Concept | Importance | Notes |
# |---|---|---|
# | {doc}`04_blip2_training` | Helpful | how the captioners that ship in the package were trained |
# | {doc}`05_evaluation` | Helpful | the parser that reads AUs and emotions from a caption |
#
# **Compute budget:** two to three minutes on two CPU cores. The captioners are the tiny
# Exp-BLIP and AU-BLIP that ship in the package (`facecap_lib/captioners/tiny`), trained by
# chapter 4's recipe, so this chapter trains nothing.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import skimage.data
import transformers
from PIL import Image, ImageDraw

from facecap_lib import viz
from facecap_lib.data.detection import face_crop, find_faces, synthfacs_template
from facecap_lib.data.detection.recall import match
from facecap_lib.data.synth.batch import FaceSpec
from facecap_lib.data.synth.clips import CLIP_FPS, Person, expression_clip
from facecap_lib.data.synth.render import Scene
from facecap_lib.data.synth.scenes import compose, side_for
from facecap_lib.data.video import write_video
from facecap_lib.describing import describe_photos, describe_video, shipped, text_lines
from facecap_lib.describing.agreement import person_scores
from facecap_lib.paths import book_measurement

# %% tags=["parameters"]
SMOKE = False  # fewer clip frames and beams
BEAMS = 5  # the paper's beam size
CLIP_FRAMES = 75  # 3 s at 25 frames/s
FPS = 5.0  # frames sampled per second of the clip

# %%
transformers.utils.logging.disable_progress_bar()
pd.set_option("display.max_colwidth", 120)
beams, clip_frames = (1, 20) if SMOKE else (BEAMS, CLIP_FRAMES)
exp_blip, au_blip = shipped.shipped_captioner("exp-blip"), shipped.shipped_captioner("au-blip")
print({k: shipped.manifest()[k] for k in ("command", "run", "dtype", "bytes", "figures")})

# %% [markdown]
# ## 1. Every face of a photo
#
# `find_faces` runs MediaPipe's BlazeFace detectors from their tflite files (copied from the
# `mediapipe` wheel, run by `ai-edge-litert`, with MediaPipe's anchors, decoding and weighted
# non-maximum suppression re-implemented: `facecap_lib.data.detection.blazeface`). The full-range
# model looks at the whole photo and at grids of 2 x 2, 4 x 4 and 7 x 7 overlapping tiles, so a
# face of 5% of the photo's height is still seen at a size it knows; the short-range model adds
# large faces. Each face found must be found again in a view four times its size, which drops
# texture a tile took for a face. Here, four SynthFACS people composited into one photo, turned
# 0 to 45 degrees, at four sizes:

# %%
people = [
    (FaceSpec({6: 4, 12: 4, 25: 2}, 8_000_001, Scene(yaw=0.0)), 20, 60, side_for(0.45, 360)),
    (FaceSpec({1: 3, 2: 4, 5: 3, 26: 3}, 8_000_002, Scene(yaw=30.0)), 260, 40, side_for(0.3, 360)),
    (FaceSpec({4: 4, 7: 3, 23: 3}, 8_000_003, Scene(yaw=-45.0)), 420, 170, side_for(0.25, 360)),
    (FaceSpec({1: 3, 4: 3, 15: 4}, 8_000_004, Scene(yaw=15.0)), 560, 60, side_for(0.12, 360)),
]  # fmt: skip
group, placed = compose(people, 640, 360, backdrop="clutter", seed=4)
faces = find_faces(group)
haar = find_faces(group, "haar")
print(
    f"BlazeFace: {len(faces)} faces found, matched to the truth as {match([f.box for f in faces], [p.box for p in placed])}"
)
print(
    f"Haar cascade: {len(haar)} found, matched as {match([f.box for f in haar], [p.box for p in placed])}"
)

# %%
drawn = group.copy()
pen = ImageDraw.Draw(drawn)
for face in faces:
    x, y, w, h = face.box
    pen.rectangle((x, y, x + w, y + h), outline=(255, 40, 40), width=3)
    pen.text((x, max(0, y - 12)), f"{face.detector} {face.score:.2f}", fill=(255, 255, 255))
    for px, py in face.keypoints:
        pen.ellipse((px - 2, py - 2, px + 2, py + 2), fill=(255, 230, 0))
drawn

# %% [markdown]
# How often each detector finds a face, on 300 such photos (`benchmarks/detection.py`): one to
# five people, turned 0 to 60 degrees either way, faces of 5 to 50% of the photo's height, on
# plain, gradient, textured and cluttered backgrounds. The target is 95% of the faces turned up
# to 45 degrees.

# %%
detection = book_measurement("detection")
print(
    {
        name: {k: round(v, 3) for k, v in figures.items()}
        for name, figures in detection["summary"].items()
    }
)
pd.concat(
    {by: pd.DataFrame(detection[f"by_{by}"]).T for by in ("yaw", "face_height", "people")}
).rename_axis(["by", "value"])

# %% [markdown]
# ## 2. Crops made as the training faces are
#
# A captioner sees faces framed as it was trained on them. `face_crop` maps BlazeFace's eyes and
# mouth centre onto where they lie in a SynthFACS render (the template below: the mean of 50
# neutral frontal people) by the rotation, scale and shift that fit them best, so a tilted head
# comes out upright. The Haar cascade gives no landmarks; its faces get a square around the box.

# %%
template = synthfacs_template()
where = {
    k: [round(float(v), 3) for v in getattr(template, k)]
    for k in ("right_eye", "left_eye", "mouth")
}
print("in a crop of side 1:", where)
tilted = group.rotate(15, resample=Image.Resampling.BICUBIC, center=(150, 200))
crops = [np.asarray(face_crop(tilted, f, 160)) for f in find_faces(tilted)]
fig = viz.contact_sheet(crops, [f"face {i + 1}" for i in range(len(crops))], columns=4, size=1.8)
plt.show()

# %% [markdown]
# ## 3. A caption per face of a group photo
#
# `describe_photos` (what `facecap describe group.jpg` calls) captions each face with the shipped
# Exp-BLIP and reads the caption with chapter 5's parser: the AU and emotion columns hold exactly
# what the caption says. `--format csv` writes the same table, one named column per AU and per
# emotion (in `facecap_lib.lexicon.EMOTION_NAMES` order). Beside it, what the renderer drew.

# %%
table = describe_photos([group], exp_blip, beams=beams)
rendered = [""] * len(table)
found = [(r.x, r.y, r.width, r.height) for r in table.itertuples()]
for person, row in enumerate(match(found, [p.box for p in placed])):
    if row is not None:
        rendered[row] = ", ".join(f"AU{a}" for a in sorted(placed[person].spec.intensities))
table.assign(rendered=rendered)[
    ["face", "detector", "score", "caption", "aus", "emotions", "rendered"]
]

# %% [markdown]
# ## 4. A clip, face by face over time
#
# A BP4D-like clip: two people, neutral for the first and last fifth of three seconds (25
# frames/s), in between rising to an expression, holding it and letting it go, the heads turning
# slowly. `describe_video` (what `facecap describe clip.mp4`
# calls) samples it at `FPS` frames per second with PyAV, follows each face by the overlap of its
# box from frame to frame, captions the crops in batches and smooths each track's AUs and emotions
# by a majority over three sampled frames. It writes one CSV per track, a timeline and a summary.

# %%
clip_people = [
    Person({6: 4, 12: 5, 25: 3}, 8_100_001, 10, 20, 190),
    Person({1: 4, 2: 4, 5: 3, 26: 4}, 8_100_002, 250, 35, 160, yaw=(12.0, -6.0)),
]
frames, clip_truth = expression_clip(clip_people, n_frames=clip_frames, width=448, height=240)
path = write_video(frames, "describing/clip.mp4", fps=CLIP_FPS)
video = describe_video(path, au_blip, fps=FPS, beams=beams)
print(
    f"{video.frames} frames sampled, tracks {video.tracks}, {video.frames_per_second:.2f} frames/s on this machine"
)
video.table[["track", "time", "caption", "aus"]].head(8)

# %%
truth_in_time = clip_truth.assign(time=clip_truth.frame / CLIP_FPS)
fig = viz.face_timeline(truth_in_time, by="person", title="what the renderer drew")
fig = viz.face_timeline(video.table, title="what AU-BLIP's captions say, smoothed")
plt.show()

# %% [markdown]
# Frame by frame against the truth (an AU counts as on from intensity A): the mean F1 of the AUs
# each person shows, and the micro F1 over every AU, where AUs named but never shown count
# against it.

# %%
person_scores(video, clip_truth, CLIP_FPS)[["track", "frames", "mean_f1", "micro_f1"]]

# %% [markdown]
# On one clip per basic emotion (`benchmarks/describe_video.py`: the shipped captioners, beam 5,
# 5 frames/s, a person neutral, then at the emotion's prototype, then neutral again), the
# target is a frame-level AU F1 of 0.6, the mean over the AUs each clip shows:

# %%
measured_video = book_measurement("describe-video")
pd.DataFrame(
    {c["checkpoint"].split("/")[-1]: {**{e: v["mean_f1"] for e, v in c["clips"].items()},
     "mean": c["mean_f1"], "micro": c["micro_f1"], "frames/s": c["frames_per_second"]}
     for c in measured_video["captioners"]}
).round(3)  # fmt: skip

# %%
for c in measured_video["captioners"]:
    verdict = "meets" if c["mean_f1"] >= 0.6 else "misses"
    print(
        f"{c['checkpoint'].split('/')[-1]}: mean F1 {c['mean_f1']:.3f} {verdict} the target of 0.6"
    )

# %% [markdown]
# The smoothing window matters. These clips' captions barely flicker from frame to frame (the
# renders have no noise, no blur, no compression to speak of), so the majority can only blur the
# onsets and offsets, and every window costs F1; real clips flicker more. `facecap describe`
# smooths over 3 sampled frames by default (`--smooth`), enough to remove a one-frame slip:

# %%
pd.DataFrame(
    {c["checkpoint"].split("/")[-1]: {f"{w} frames": v["mean_f1"] for w, v in c["by_smoothing_window"].items()}
     for c in measured_video["captioners"]}
).T.round(3)  # fmt: skip

# %% [markdown]
# ## 5. A real photo
#
# No registry package ships labelled photos of real faces, so nothing in this book measures the
# captioners on real faces. One real photo does ship, in scikit-image: the astronaut Eileen
# Collins, smiling. Here is what the shipped captioners say of her:

# %%
astronaut = Image.fromarray(skimage.data.astronaut())
for captioner in (exp_blip, au_blip):
    said = describe_photos([astronaut], captioner, beams=beams)
    print(f"{captioner.name}:", *text_lines(said), sep="\n  ")

# %% [markdown]
# What to expect from a captioner trained on SynthFACS, said plainly:
#
# - **It has seen no real face.** Its encoder, language model and captions come from rendered
#   faces alone. Nothing here measures how often it reads a real face right: the astronaut's
#   broad smile is one expression SynthFACS draws well, and one photo is not a measurement.
#   Subtler actions, other ages, make-up, glasses, beards, strong light and real skin are outside
#   what it has seen, and it answers anyway, in the same confident sentences.
# - **Its emotions are SynthFACS's emotions.** A real-face emotion model (FER2013) agrees with the
#   labels of only a fraction of one-emotion renders (chapter 2, "What is still synthetic"), so
#   an emotion a SynthFACS captioner names for a real face is a guess shaped by the renders.
# - **The detector is not the weak part.** BlazeFace was trained on real photos; on composited
#   renders it finds the share of faces section 1 shows, against the Haar cascade's.
# - **For real use**, train on the datasets you have licensed: chapter 2's loaders read BP4D,
#   DISFA, GFT, RAF-AU, EmotioNet, AffectNet, RAF-DB and FaceME in their own layouts, `facecap run`
#   trains the same recipe, and `facecap describe --checkpoint runs/<run>/exp-blip/final` then
#   describes photos and clips as above.

# %% [markdown]
# ## Summary
#
# - `find_faces` finds every face of a photo with BlazeFace over the photo and its tiles and says
#   which detector found each; the Haar cascade stays as the fallback.
# - Faces are cropped as the captioner's training faces are, eyes level.
# - `describe_photos` gives a row per face: its box, caption, and the AUs and emotions the caption
#   names; `describe_video` follows faces over a clip and smooths what they show.
# - The package ships a tiny Exp-BLIP and AU-BLIP, so `facecap describe photo.jpg` works right
#   after install, with a warning that they have seen SynthFACS renders only.
#
# ## What's next
#
# This is the last chapter. From a shell:
#
# ```bash
# facecap describe group.jpg                                  # every face, as text
# facecap describe photos/*.jpg --format csv --out faces.csv  # one row per face
# facecap describe clip.mp4 --fps 5 --out clip-faces          # a CSV per face track, timeline.png
# facecap describe photo.jpg --checkpoint runs/<run>/exp-blip/final   # your own captioner
# ```
