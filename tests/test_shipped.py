"""The captioners that ship in the package: their manifest, and describe working with them right
after install, on the one real face photo a registry package ships (scikit-image's astronaut)."""

import json

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from facecap_lib.cli import main
from facecap_lib.describing import shipped


def test_the_shipped_captioners_match_their_manifest():
    manifest = shipped.manifest()
    shipped.verify()
    assert manifest["aspects"] == ["exp-blip", "au-blip"] and manifest["dtype"] == "float16"
    assert manifest["bytes"] <= 10_000_000  # issue 31: at most 10 MB together
    assert manifest["command"].startswith("facecap ship-captioners")
    assert "uncommitted" not in manifest["commit"]
    for aspect in manifest["aspects"]:
        folder = shipped.shipped_captioner(aspect)
        assert json.loads((folder / "training_data.json").read_text())["synthfacs_only"]
        with safe_open(folder / "model.safetensors", "pt") as f:
            floats = {f.get_tensor(k).dtype for k in f.keys()} - {torch.int64}  # position ids
            assert floats == {torch.float16}
    figures = manifest["figures"]
    assert figures["held_out_faces"] == 400 and figures["AU-BLIP: mean per-AU F1"] >= 0.70


def test_verify_names_a_changed_file(tmp_path, tiny_checkpoint):
    data = shipped.ship(
        {"au-blip": tiny_checkpoint}, tmp_path, command="test", run="r", device="cpu"
    )
    assert set(data["files"]) >= {"au-blip/model.safetensors", "au-blip/config.json"}
    shipped.verify(tmp_path)
    (tmp_path / "au-blip" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="config.json does not match"):
        shipped.verify(tmp_path)
    with pytest.raises(ValueError, match="the shipped captioners are"):
        shipped.ship(
            {"general-blip": tiny_checkpoint}, tmp_path, command="test", run="r", device="cpu"
        )


def test_describe_needs_no_checkpoint(tmp_path, capsys):
    import skimage.data as skimage_data

    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    assert main(["describe", str(photo), "--format", "json", "--beams", "2"]) == 0
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()  # one face: the astronaut's
    face = json.loads(line)
    assert face["detector"] == "blazeface" and face["caption"]
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 200
    assert captured.err.count("trained on SynthFACS renders only") == 1


def test_the_shipped_au_blip_follows_a_rendered_clip(tmp_path):
    """Issue 31's check of a clip: the timeline follows the rendered truth, frame-level AU F1
    >= 0.6, with the shipped AU-BLIP (benchmarks/describe_video.py does all six emotions)."""
    from facecap_lib.data.synth.clips import CLIP_FPS, expression_clip, prototype_people
    from facecap_lib.data.video import write_video
    from facecap_lib.describing import describe_video
    from facecap_lib.describing.agreement import frame_au_f1

    person = dict(prototype_people())["surprise"]
    frames, truth = expression_clip([person], n_frames=75)
    path = write_video(frames, tmp_path / "surprise.mp4", fps=CLIP_FPS)
    result = describe_video(path, shipped.shipped_captioner("au-blip"), fps=5, beams=5)
    assert result.tracks == [0]
    score = frame_au_f1(result.track(0), truth, CLIP_FPS)
    assert score["frames"] == 15 and score["mean_f1"] >= 0.6
    neutral = result.track(0).iloc[[0, -1]]  # the clip starts and ends neutral
    assert neutral[["AU1", "AU2", "AU5"]].sum().sum() <= 2
