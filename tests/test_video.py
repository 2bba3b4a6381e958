"""Clips: PyAV decoding at a sampling rate, face tracks, smoothing over time, SynthFACS clips with
their truth, describe_video, its files and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facecap_lib.cli import main
from facecap_lib.data.detection import Tracker
from facecap_lib.data.detection.recall import match
from facecap_lib.data.synth.clips import Person, expression_clip, time_course
from facecap_lib.data.video import probe, sample_frames, write_video
from facecap_lib.describing import describe_video, save, smooth_track
from facecap_lib.viz import face_timeline


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two people for 20 frames at 10 frames/s, then 6 frames of the empty background."""
    people = [
        Person({6: 4, 12: 5}, 7_000_001, 10, 20, 150),
        Person({1: 4, 2: 4, 26: 4}, 7_000_002, 190, 30, 120, yaw=(10.0, -5.0)),
    ]
    frames, truth = expression_clip(people, n_frames=20, width=320, height=200)
    empty, _ = expression_clip([], n_frames=6, width=320, height=200)
    path = write_video([*frames, *empty], tmp_path_factory.mktemp("clip") / "clip.mp4", fps=10)
    return path, truth


def test_frames_are_sampled_at_the_rate_asked(tmp_path):
    frames = [Image.fromarray(np.full((48, 64, 3), 8 * i, np.uint8)) for i in range(30)]
    path = write_video(frames, tmp_path / "ramp.mp4", fps=15)
    assert probe(path).duration == pytest.approx(2.0) and probe(path).fps == pytest.approx(15)
    sampled = list(sample_frames(path, 5))
    assert [i for i, _, _ in sampled] == list(range(10))
    assert [t for _, t, _ in sampled] == pytest.approx([k / 5 for k in range(10)], abs=1e-3)
    grey = [int(np.asarray(im)[24, 32].mean()) for _, _, im in sampled]
    assert grey == pytest.approx([8 * 3 * k for k in range(10)], abs=6)  # every third frame
    assert len(list(sample_frames(path, 100))) == 30  # no frame twice
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        list(sample_frames(tmp_path / "broken.mp4", 5))
    with pytest.raises(ValueError, match="fps must be positive"):
        list(sample_frames(path, 0))


def test_tracks_follow_faces_and_end_after_patience():
    tracker = Tracker(patience=2)
    assert tracker.update([(0, 0, 10, 10), (50, 0, 10, 10)]) == [0, 1]
    assert tracker.update([(52, 1, 10, 10), (1, 0, 10, 10)]) == [1, 0]  # order of the detector
    assert tracker.update([(2, 0, 10, 10)]) == [0]
    assert tracker.update([(3, 0, 10, 10), (90, 50, 10, 10)]) == [0, 2]  # 1 unseen twice
    assert tracker.update([(53, 1, 10, 10), (3, 0, 10, 10)]) == [1, 0]  # back within patience
    for _ in range(3):
        tracker.update([(3, 0, 10, 10)])
    assert tracker.update([(53, 1, 10, 10), (3, 0, 10, 10)]) == [3, 0]  # 1 ended: a new track


def test_smoothing_is_a_majority_over_seen_frames():
    frame = pd.DataFrame(
        {"caption": ["a", "a", "a", None, "a", "a"], "AU12": [1, 0, 1, None, 1, 1]}
    ).astype({"AU12": "Int64"})
    for column in ("AU1", "happiness"):
        frame[column] = pd.array([0, 0, 0, None, 0, 0], dtype="Int64")
    out = smooth_track(frame, 3)
    assert out["AU12"].tolist() == [1, 1, 1, pd.NA, 1, 1]  # the one-frame drop is gone
    assert smooth_track(frame, 1)["AU12"].tolist() == frame["AU12"].tolist()
    slips = frame.assign(AU12=pd.array([0, 0, 1, None, 1, 0], dtype="Int64"))
    assert smooth_track(slips, 3)["AU12"].tolist() == [0, 0, 1, pd.NA, 1, 0]  # ties stay
    blip = frame.assign(AU12=pd.array([0, 1, 0, None, 0, 0], dtype="Int64"))
    assert smooth_track(blip, 3)["AU12"].tolist() == [0, 0, 0, pd.NA, 0, 0]  # a blip goes
    with pytest.raises(ValueError, match="at least 1"):
        smooth_track(frame, 0)


def test_a_clip_rises_to_its_apex_and_falls_back(clip):
    course = time_course(41, neutral=0.2, onset=0.15, apex=0.3)
    assert (course[:9] == 0).all() and (course[-9:] == 0).all() and course[20] == 1
    assert 0 < course[10] < course[13] < 1 and course.max() == 1
    with pytest.raises(ValueError, match="leave no offset"):
        time_course(10, neutral=0.4, onset=0.2, apex=0.2)
    _, truth = clip
    first = truth[truth.person == 0].set_index("frame")
    assert first.loc[0, "AU12"] == 0 and first["AU12"].max() == 5 and first.loc[19, "AU12"] == 0
    assert set(truth.person) == {0, 1} and len(truth) == 40


def test_describe_video_tracks_each_person_over_the_whole_clip(clip, tiny_checkpoint, tmp_path):
    path, truth = clip
    result = describe_video(path, tiny_checkpoint, fps=5, beams=1, max_new_tokens=4, tiles=())
    assert result.frames == 13 and result.tracks == [0, 1]
    table = result.table
    assert len(table) == 2 * 13  # every sampled frame, for each track
    for track, person in ((0, 0), (1, 1)):
        seen = result.track(track).dropna(subset=["caption"])
        assert len(seen) >= 9  # faces in the 10 sampled frames before the empty tail
        for r in seen.itertuples():
            frame = int(round(r.time * 10))
            want = truth[(truth.person == person) & (truth.frame == frame)]
            box = tuple(want[["x", "y", "width", "height"]].iloc[0])
            assert match([(r.x, r.y, r.width, r.height)], [box]) == [0]
    from facecap_lib.describing.agreement import person_scores

    scores = person_scores(result, truth, clip_fps=10)  # tracks matched to people by box
    assert scores.index.tolist() == [0, 1] and scores["track"].tolist() == [0, 1]
    assert (scores["frames"] >= 9).all()
    tail = result.track(0).iloc[-2:]
    assert tail["caption"].isna().all() and (tail["error"] == "face 0 not seen").all()
    assert tail[["AU12", "happiness"]].isna().all(axis=None)
    written = save(result, tmp_path / "out")
    assert [p.name for p in written] == [
        "track-0.csv",
        "track-1.csv",
        "timeline.png",
        "summary.json",
    ]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["tracks"] == [0, 1] and summary["frames"] == 13
    assert len(pd.read_csv(tmp_path / "out" / "track-1.csv")) == 13


def test_describe_cli_writes_a_clips_folder(clip, tiny_checkpoint, tmp_path, capsys):
    path, _ = clip
    command = ["describe", str(path), "--checkpoint", str(tiny_checkpoint), "--beams", "1",
               "--max-new-tokens", "4", "--fps", "2", "--out", str(tmp_path / "faces")]  # fmt: skip
    assert main(command) == 0
    assert "2 face track(s)" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "faces").iterdir()} == {
        "track-0.csv", "track-1.csv", "timeline.png", "summary.json"
    }  # fmt: skip
    assert main([*command, "--sample"]) == 1
    assert "are for photos, not clips" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    batch = ["describe", str(broken), str(path), str(path), "--checkpoint", str(tiny_checkpoint),
             "--beams", "1", "--max-new-tokens", "4", "--fps", "1", "--out", str(tmp_path / "all")]  # fmt: skip
    assert main(batch) == 0  # the broken clip is reported, the others are described
    captured = capsys.readouterr()
    assert f"error: {broken}: cannot read video" in captured.err
    assert {p.name for p in (tmp_path / "all").iterdir()} == {"clip-faces", "clip-2-faces"}


def test_the_timeline_draws_truth_and_description_alike(clip):
    _, truth = clip
    fig = face_timeline(truth.assign(time=truth.frame / 10), by="person")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["AU6", "AU12"]
    with pytest.raises(ValueError, match="no track to draw"):
        face_timeline(pd.DataFrame({"track": [pd.NA], "time": [0.0]}))


def test_frame_f1_counts_each_sampled_frame_against_its_truth():
    from facecap_lib.describing.agreement import frame_au_f1

    truth = pd.DataFrame({"frame": [0, 5, 10, 15], "AU12": [0, 2, 4, 0], "AU6": [0, 1, 3, 0]})
    described = pd.DataFrame(
        {"time": [0.0, 0.2, 0.4, 0.6, 0.8], "caption": ["x", "x", "x", "x", None],
         "AU12": [0, 1, 1, 1, None], "AU6": [0, 0, 1, 0, None], "AU4": [1, 0, 0, 0, None]}
    )  # fmt: skip
    for column in ("AU1",):
        described[column] = 0
    score = frame_au_f1(described, truth, clip_fps=25)
    assert score["frames"] == 4
    assert score["per_au"] == {"AU6": pytest.approx(2 / 3), "AU12": pytest.approx(0.8)}
    assert score["mean_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert score["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # AU4's false one counts


def test_prototype_clips_cover_the_six_basic_emotions():
    from facecap_lib.data.synth.clips import prototype_people

    people = dict(prototype_people())
    assert set(people) == {"happiness", "sadness", "surprise", "fear", "anger", "disgust"}
    assert people["happiness"].apex == {6: 4, 12: 4}
