"""SynthFACS: the renderer, AU sampling, video trajectories, corpora and resumable rendering."""

import numpy as np
import pytest

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_arrays, render_to_files
from facecap_lib.data.synth.corpus import CorpusConfig, synthesize
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import OCCLUDERS, Renderer, Scene, intensity_value, response
from facecap_lib.data.synth.sampling import au_trajectory, emotion_aus, spontaneous_aus


@pytest.fixture(scope="module")
def renderer():
    return Renderer(96, 2)


@pytest.fixture(scope="module")
def person():
    return Identity.from_seed(7)


def diff(a, b):
    return np.abs(a.astype(int) - b.astype(int)).sum()


def test_image_shape_and_determinism(renderer, person):
    scene = Scene.sample(np.random.default_rng(0))
    a = renderer.render({12: 4}, person, scene)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, renderer.render({12: 4}, Identity.from_seed(7), scene))
    assert diff(a, renderer.render({12: 4}, Identity.from_seed(8), scene)) > 0


@pytest.mark.parametrize("au", RENDERED_AUS)
def test_every_au_is_visible_and_graded(renderer, person, au):
    neutral = renderer.render({}, person)
    weak, strong = renderer.render({au: 2}, person), renderer.render({au: 5}, person)
    assert 0 < diff(weak, neutral) < diff(strong, neutral), f"AU{au} is not intensity-graded"


def test_intensity_response_draws_a_trace_at_almost_half_the_maximum():
    levels = [response(level) for level in range(6)]
    assert levels[0] == 0 and levels[5] == 1 and levels == sorted(levels)
    assert levels[1] == pytest.approx(0.447, abs=1e-3)  # A: a trace, yet visible


@pytest.fixture(scope="module")
def corpus_renderer():
    return Renderer(128, 2)  # the corpus's size; the tiny preset reads it at 64 px


@pytest.mark.parametrize("au", RENDERED_AUS)
def test_every_au_at_c_shows_at_the_tiny_presets_64_pixels(corpus_renderer, au):
    """The renderer's promise, at the size the tiny encoder sees: an AU at C changes on average
    at least 8 of 4,096 pixels by more than 20 levels (the first renderer moved AU14, AU17 and
    AU23 by about one pixel, so captioners could not learn them)."""
    from PIL import Image

    def at_64(image):
        return np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BICUBIC), int)

    changed = []
    for seed in (1, 2, 3):
        person = Identity.from_seed(seed)
        moved = np.abs(at_64(corpus_renderer.render({au: 3}, person)) - at_64(
            corpus_renderer.render({}, person)
        ))  # fmt: skip
        changed.append(int((moved.max(-1) > 20).sum()))
    assert np.mean(changed) >= 8, f"AU{au} at C changes {changed} pixels of three faces"


def test_intensity_letters_and_errors(renderer, person):
    assert intensity_value("C") == 3 and intensity_value(" e ") == 5 and intensity_value(2.5) == 2.5
    assert np.array_equal(renderer.render({6: "D"}, person), renderer.render({6: 4}, person))
    with pytest.raises(ValueError, match="outside the FACS range"):
        intensity_value(6)
    with pytest.raises(ValueError, match="neither 0-5 nor a letter"):
        intensity_value("F")
    with pytest.raises(ValueError, match="AU11 cannot be rendered"):
        renderer.render({11: 3}, person)
    assert np.array_equal(renderer.render({11: 0}, person), renderer.render({}, person))


def test_one_sided_action(renderer, person):
    neutral = renderer.render({}, person).astype(int)
    right = np.abs(renderer.render({12: 5}, person, sides={12: "R"}).astype(int) - neutral).sum(
        axis=(0, 2)
    )
    # the subject's right side is the image's left half
    assert right[:48].sum() > 5 * right[48:].sum()
    with pytest.raises(ValueError, match="side 'X'"):
        renderer.render({12: 5}, person, sides={12: "X"})


def test_eyes_closed_versus_widened(renderer, person):
    neutral = renderer.render({}, person)
    closed, wide = renderer.render({43: 5}, person), renderer.render({5: 5}, person)
    eyes = slice(36, 52)
    white = lambda img: (img[eyes].min(axis=2) > 200).sum()  # noqa: E731  sclera pixels
    assert white(closed) < white(neutral) < white(wide)


@pytest.mark.parametrize("occluder", OCCLUDERS)
def test_occluders(renderer, person, occluder):
    plain = renderer.render({}, person)
    assert (
        diff(renderer.render({}, person, Scene(occluder=occluder, occluder_seed=3)), plain) > 1000
    )
    with pytest.raises(ValueError, match="unknown occluder"):
        renderer.render({}, person, Scene(occluder="scarf"))


def test_identities_vary_and_reproduce():
    people = [Identity.from_seed(s) for s in range(40)]
    assert len({p.skin for p in people}) == 40 and len({p.hair_style for p in people}) >= 3
    assert Identity.from_seed(3) == Identity.from_seed(3)


def test_emotions_vary_around_their_prototypes():
    rng = np.random.default_rng(0)
    happy = [emotion_aus("happiness", rng) for _ in range(200)]
    assert len({h.present for h in happy}) > 5
    assert np.mean([12 in h.present for h in happy]) > 0.8
    contempt = emotion_aus("contempt", np.random.default_rng(1))
    assert set(contempt.sides.values()) <= {"L", "R"} and contempt.sides
    assert emotion_aus("neutral", rng).present == frozenset()
    assert emotion_aus("happily surprised", rng).present
    with pytest.raises(ValueError, match="no AU prototype for emotion 'glee'"):
        emotion_aus("glee", rng)
    for _ in range(100):
        action = spontaneous_aus(rng)
        assert set(action.intensities) <= set(RENDERED_AUS) and not {5, 43} <= action.present


def test_trajectories_have_onset_apex_offset():
    levels = au_trajectory(np.random.default_rng(3), 300)
    assert levels.shape == (300, len(RENDERED_AUS)) and levels.min() >= 0 and levels.max() <= 5
    active = levels.max(axis=1) > 0
    assert active.any() and not active.all()
    assert np.abs(np.diff(levels.astype(int), axis=0)).max() <= 2  # gradual, not jumps
    assert np.array_equal(levels, au_trajectory(np.random.default_rng(3), 300))


def test_a_corpus_drawn_by_renderer_3_has_the_same_labels_and_other_images(tmp_path):
    """Same faces, labels and scenes; other pixels. (AffectNet's landmarks are each renderer's
    own, of the mesh it drew.)"""
    cfg = CorpusConfig(images=4, size=48)
    old = synthesize("rafau", tmp_path / "2", cfg, workers=1, progress=False)
    new = synthesize("rafau", tmp_path / "3", cfg, workers=1, progress=False, renderer=3)
    files = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix == ".jpg"]
    labels = [p for p in files if p.suffix not in (".jpg", ".json")]
    assert len(images) == 4 and all(
        (old / p).read_bytes() != (new / p).read_bytes() for p in images
    )
    assert labels and all((old / p).read_bytes() == (new / p).read_bytes() for p in labels)
    with pytest.raises(ValueError, match=r"/2: its images were drawn with .*'renderer': 2"):
        synthesize("rafau", old, cfg, workers=1, progress=False, renderer=3)
    with pytest.raises(ValueError, match=r"unknown renderer 4"):
        synthesize("rafau", tmp_path / "4", cfg, renderer=4)


def test_corpus_is_deterministic_and_resumes(tmp_path):
    cfg = CorpusConfig(subjects=1, sequences=1, frames=6, size=32)
    a = synthesize("bp4d", tmp_path / "a", cfg, workers=1, progress=False)
    b = synthesize("bp4d", tmp_path / "b", cfg, workers=2, progress=False)
    label = "AUCoding/AU_OCC/F001_T1.csv"
    assert (a / label).read_text() == (b / label).read_text()
    images = sorted(p.relative_to(a) for p in a.rglob("*.jpg"))
    assert len(images) == 6 and all((a / p).read_bytes() == (b / p).read_bytes() for p in images)
    specs = [FaceSpec({}, 1, path="x/1.png"), FaceSpec({12: 3}, 2, path="x/2.png")]
    assert render_to_files(specs, tmp_path / "c", size=32, workers=1, progress=False) == 2
    assert render_to_files(specs, tmp_path / "c", size=32, workers=1, progress=False) == 0
    arrays = render_arrays(specs, size=32, workers=1)
    assert arrays.shape == (2, 32, 32, 3)
