"""Describing faces with a trained captioner: ``describe(images, checkpoint)``.

Images may be paths or PIL images of any size, grey, RGBA or EXIF-rotated. With ``crop="face"``
(the default, for photos) every face is found (:func:`facecap_lib.data.detection.find_faces`:
BlazeFace over the photo and its tiles, the Haar cascade when it finds none) and cropped as the
training faces are (eyes level, SynthFACS's framing); each face gets its own description, in
reading order, and an image where none is found gets one with an error. ``crop="none"`` uses the
whole image (SynthFACS renders and dataset crops are already faces). A corrupt file gets an
error; the rest of the batch is still described. Captions come from batched beam search
(5 beams, the paper's setting) or sampling.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image, ImageOps

from facecap_lib.data.detection import DETECTORS, face_crop, find_faces
from facecap_lib.data.images import load_rgb, to_tensor
from facecap_lib.data.table import image_files
from facecap_lib.models.beam_cache import BeamCache
from facecap_lib.models.captions import prompt_ids
from facecap_lib.models.device import resolve_device
from facecap_lib.models.stem import from_pretrained
from facecap_lib.models.tokenizer import load_tokenizer
from facecap_lib.progress import progress_bar

TRAINING_DATA_FILE = "training_data.json"  # in a captioner's final folder: what it was trained on


@dataclass(frozen=True)
class Description:
    """The caption of one face of an input, or why there is none."""

    source: str
    caption: str | None
    error: str | None = None
    face_box: tuple[int, int, int, int] | None = None  # x, y, width, height in the input image
    face: int | None = None  # which face of the input, 0 the leftmost (None: the whole image)
    detector: str | None = None  # which detector found it (facecap_lib.data.detection)
    score: float | None = None  # the detector's confidence


def default_dtype(device: torch.device) -> torch.dtype:
    """The weights' dtype for captioning on ``device``: bf16 on a GPU, fp32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_captioner(checkpoint: str | Path, device: str = "auto", dtype: torch.dtype | None = None):
    """Model and tokenizer saved by the trainer (``save_pretrained`` folder), weights in ``dtype``
    (default: bf16 on a GPU, where beam search at paper scale ran 4.1 times faster than in fp32,
    ``benchmarks/generate_throughput.py``; fp32 on a CPU)."""
    from transformers import Blip2ForConditionalGeneration

    path = Path(checkpoint)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no captioner checkpoint (config.json) in {path}")
    where = resolve_device(device)
    dtype = dtype or default_dtype(where)
    model = from_pretrained(Blip2ForConditionalGeneration, path).to(where, dtype).eval()
    return model, load_tokenizer(path)


def _prepare(
    item, crop: str, detector: str, size: int
) -> list[tuple[Image.Image | None, Description]]:
    """The crops of one input to caption, each with its description so far: one per face found
    (aligned where the detector gave keypoints), the whole image with ``crop="none"``, or one
    error."""
    source = str(item) if not isinstance(item, Image.Image) else "<image>"
    try:
        image = (
            load_rgb(item)
            if not isinstance(item, Image.Image)
            else ImageOps.exif_transpose(item).convert("RGB")
        )
    except ValueError as error:
        return [(None, Description(source, None, str(error)))]
    if crop == "none":
        return [(image, Description(source, None))]
    faces = find_faces(image, detector)
    if not faces:
        return [(None, Description(source, None, f"no face found in {source}"))]
    return [
        (face_crop(image, face, size), Description(source, None, None, face.box, i, face.detector, face.score))
        for i, face in enumerate(faces)
    ]  # fmt: skip


DECODINGS = ("beam-cache", "dynamic", "compiled")


def decoding_options(decoding: str, model, capacity: int, beams: int) -> dict:
    """``generate`` options of one way to keep the language model's keys and values, for
    ``beams`` beams and ``capacity`` tokens (prompt and new tokens) per row:

    - ``"beam-cache"``: for beam search, :class:`~facecap_lib.models.beam_cache.BeamCache`
      (buffers allocated once; a reorder copies only the tokens after the prompt); otherwise as
      ``"dynamic"``;
    - ``"dynamic"``: transformers' default ``DynamicCache`` (grown by concatenation, reordered
      whole);
    - ``"compiled"``: a static cache and transformers' automatic ``torch.compile`` of the decoding
      step, with CUDA graphs on a GPU.

    All three write the same captions (tested on tiny models, greedy and beam 5)."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    if decoding == "compiled":
        from transformers import CompileConfig

        cuda = next(model.parameters()).device.type == "cuda"
        config = CompileConfig(mode="reduce-overhead" if cuda else "default")
        config._compile_all_devices = True  # transformers compiles on GPUs only unless told
        return {"cache_implementation": "static", "compile_config": config}
    if decoding == "beam-cache" and beams > 1:
        layers = model.config.text_config.num_hidden_layers
        return {"cache": BeamCache(layers, capacity)}
    return {}


def describe(
    images: Sequence[str | Path | Image.Image],
    checkpoint=None,
    *,
    model=None,
    tokenizer=None,
    crop: str = "face",
    detector: str = "auto",
    beams: int = 5,
    max_new_tokens: int = 60,
    do_sample: bool = False,
    top_p: float = 0.9,
    temperature: float = 1.0,
    batch_size: int | None = None,
    device: str = "auto",
    decoding: str = "beam-cache",
    progress: bool = False,
) -> list[Description]:
    """Caption every face of every image (see the module docstring): one description per face
    found (one per image with ``crop="none"``), in the order of the inputs.

    Give either ``checkpoint`` (a folder) or ``model`` and ``tokenizer``. ``batch_size`` defaults
    to 128 images on a GPU (beam search at small batches is bound by per-token overhead: at paper
    scale on an H100, 27 captions/s at batch 32 and 38 at 128) and 16 on a CPU.
    ``decoding`` chooses how the language model's keys and values are kept
    (:func:`decoding_options`); the captions are the same whichever is chosen. At paper scale on
    an H100 (bf16, beam 5, batch 256) the default ``"beam-cache"`` gave 61.8 captions/s and
    transformers' ``"dynamic"`` cache 40.6 in one run; ``"compiled"`` gave 36.1 in another
    (``book/performance.md``). ``progress``: a bar over the inputs.
    """
    if crop not in ("face", "none"):
        raise ValueError(f"crop must be 'face' or 'none', got {crop!r}")
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    if model is None:
        model, tokenizer = load_captioner(checkpoint, device)
    size = model.config.vision_config.image_size
    queries = model.config.num_query_tokens
    device_ = next(model.parameters()).device
    batch_size = batch_size or (128 if device_.type == "cuda" else 16)
    out: list[Description] = []
    starts = range(0, len(images), batch_size)
    bar = progress_bar(total=len(images), desc="describe", unit="image", disable=not progress)
    for start in starts:  # decoded a batch at a time
        prepared = [
            one
            for item in images[start : start + batch_size]
            for one in _prepare(item, crop, detector, size)
        ]
        ready = [(image, d) for image, d in prepared if image is not None]
        captions = iter(
            _generate(
                model,
                tokenizer,
                [image for image, _ in ready],
                size,
                queries,
                beams=1 if do_sample else beams,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                top_p=top_p,
                temperature=temperature,
                decoding=decoding,
            )  # fmt: skip
            if ready
            else []
        )
        for image, d in prepared:
            caption = next(captions) if image is not None else None
            out.append(replace(d, caption=caption))
        bar.update(len(images[start : start + batch_size]))
    bar.close()
    return out


def _generate(
    model, tokenizer, images, size, queries, *, beams, max_new_tokens, do_sample, top_p,
    temperature, decoding,
) -> list[str]:  # fmt: skip
    """Captions of one batch of prepared images."""
    device = next(model.parameters()).device
    pixels = to_tensor(images, size).to(device, dtype=next(model.parameters()).dtype)
    prompt = {k: v.to(device) for k, v in prompt_ids(tokenizer, len(images), queries).items()}
    capacity = prompt["input_ids"].shape[1] + max_new_tokens
    options = decoding_options(decoding, model, capacity, beams)
    with torch.no_grad():
        generated = model.generate(
            pixel_values=pixels,
            **prompt,
            num_beams=beams,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            **({"top_p": top_p, "temperature": temperature} if do_sample else {}),
            **options,
        )
    texts = tokenizer.batch_decode(
        generated[:, prompt["input_ids"].shape[1] :], skip_special_tokens=True
    )
    return [t.strip() for t in texts]


def training_data(checkpoint: str | Path) -> dict | None:
    """What a captioner was trained on, as its run recorded it
    (:func:`facecap_lib.training.stages.training_data`, in :data:`TRAINING_DATA_FILE`), or
    ``None`` for a checkpoint that records nothing (trained elsewhere, or before facecap
    recorded it)."""
    path = Path(checkpoint) / TRAINING_DATA_FILE
    return json.loads(path.read_text()) if path.exists() else None


def synthfacs_warning(checkpoint: str | Path) -> str | None:
    """A one-line warning when a captioner has seen SynthFACS renders only (its captions of
    photos then show the method, not a model measured on real faces); ``None`` otherwise."""
    data = training_data(checkpoint)
    if not data or not data.get("synthfacs_only"):
        return None
    names = ", ".join(data["datasets"])
    return (
        f"warning: this captioner was trained on SynthFACS renders only ({names}); on photos its "
        "captions show the method at work, not a model measured on real faces"
    )


def checkpoint_digest(checkpoint: str | Path) -> str:
    """16 hex digits naming a checkpoint by the bytes of its weights and its ``config.json``: the
    same weights give the same digest wherever the folder lies, and retraining changes it. The
    one identity of a checkpoint (caption, feature and pseudo-caption caches key on it); each file
    is read once per process and version (size and modification time)."""
    folder = Path(checkpoint)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not files:
        raise FileNotFoundError(f"no weights (*.safetensors, *.bin) in {folder}")
    digest = hashlib.sha256()
    for path in [*files, folder / "config.json"]:
        stat = path.stat()
        digest.update(
            f"{path.name}:{_file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}".encode()
        )
    return digest.hexdigest()[:16]


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def caption_faces(
    faces,
    checkpoint: str | Path,
    *,
    beams: int = 5,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    cache: str | Path | None = None,
) -> list:
    """Captions of every row of a face table (rows carry ``data_root``; images are faces already,
    so no crop). A row whose image fails raises, naming it: a table is not a batch of photos.
    Weights in ``dtype`` (:func:`load_captioner`'s default: bf16 on a GPU, fp32 on a CPU).
    With ``cache`` (a folder), captions are kept there under a key of the checkpoint's weights,
    their dtype, the images and the beam size, and read back instead of generated again."""
    import hashlib
    import json

    dtype = dtype or default_dtype(resolve_device(device))
    path = None
    if cache is not None:
        ids = json.dumps([image_files(faces), beams, str(dtype)])
        key = hashlib.sha256((checkpoint_digest(checkpoint) + ids).encode()).hexdigest()[:16]
        path = Path(cache) / f"{Path(checkpoint).parent.name}-{key}.json"
        if path.exists():
            return json.loads(path.read_text())
    captions = _caption_faces(faces, checkpoint, beams=beams, device=device, dtype=dtype)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(captions))
        partial.replace(path)
    return captions


def _caption_faces(faces, checkpoint, *, beams: int, device: str, dtype: torch.dtype) -> list:
    model, tokenizer = load_captioner(checkpoint, device, dtype)
    out = describe(
        image_files(faces),
        model=model,
        tokenizer=tokenizer,
        crop="none",
        beams=beams,
        device=device,
    )
    failed = [d for d in out if d.caption is None]
    if failed:
        raise RuntimeError(f"{failed[0].source}: {failed[0].error}")
    return [d.caption for d in out]
