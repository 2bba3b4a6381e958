"""Stage 3's pseudo-captions: AU-BLIP describes the emotion-labelled faces and Emot-BLIP the
AU-labelled ones, for fusion into Mix, Cat and Exp. Captions are saved per chunk, so that an
interrupted run resumes without captioning a face twice."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from facecap_lib.data.table import image_ids
from facecap_lib.inference import checkpoint_digest, describe, load_captioner
from facecap_lib.progress import progress_bar

PSEUDO = {"au": "au", "emotion": "emot"}  # fusion's aspect -> the captioner that writes it


class ModelPseudoCaptioner:
    """AU-BLIP and Emot-BLIP as the pseudo-captioners of fusion (a
    :data:`facecap_lib.captions.fusion.PseudoCaptioner`): ``aspect="au"`` asks AU-BLIP,
    ``"emotion"`` Emot-BLIP. Captions are saved per chunk in ``folder`` and reused."""

    def __init__(
        self,
        checkpoints: dict[str, Path],
        folder: Path,
        files: Callable[[pd.DataFrame], list[str]],
        *,
        beams: int = 5,
        chunk: int = 256,
        batch_size: int = 64,
        device: str = "auto",
        progress: bool = True,
        saved_only: bool = False,
    ):
        self.checkpoints, self.batch_size = checkpoints, batch_size
        # True: never caption (a dry run); a face without a saved caption is a LookupError
        self.saved_only = saved_only
        self.folder = Path(folder)
        self.files = files
        self.beams, self.chunk, self.device, self.progress = beams, chunk, device, progress
        digest = hashlib.sha256()
        for aspect in sorted(checkpoints):
            digest.update(f"{aspect}={checkpoint_digest(checkpoints[aspect])};".encode())
        self.name = f"model-{digest.hexdigest()[:10]}"  # changes when a captioner is retrained

    def __call__(self, faces: pd.DataFrame, aspect: str) -> list[str]:
        if aspect not in self.checkpoints:
            raise ValueError(f"aspect must be one of {sorted(self.checkpoints)}, got {aspect!r}")
        ids = list(image_ids(faces))
        store = self.folder / f"{self.name}-{aspect}.parquet"
        done = pd.read_parquet(store) if store.exists() else pd.DataFrame(columns=["id", "text"])
        known = dict(zip(done["id"], done["text"], strict=True))
        todo = [i for i, image in enumerate(ids) if image not in known]
        if todo and self.saved_only:
            raise LookupError(f"{len(todo)} of {len(ids)} {aspect} pseudo-captions are not saved")
        if todo:
            model, tokenizer = load_captioner(self.checkpoints[aspect], self.device)
            paths = self.files(faces)
            chunks = range(0, len(todo), self.chunk)
            if self.progress:
                chunks = progress_bar(chunks, desc=f"pseudo-captions ({aspect})", unit="chunk")
            for start in chunks:
                part = todo[start : start + self.chunk]
                out = describe(
                    [paths[i] for i in part],
                    model=model,
                    tokenizer=tokenizer,
                    crop="none",
                    beams=self.beams,
                    batch_size=self.batch_size,
                    device=self.device,
                )
                failed = [d for d in out if d.caption is None]
                if failed:
                    raise RuntimeError(
                        f"pseudo-captioning failed: {failed[0].source}: {failed[0].error}"
                    )
                for i, d in zip(part, out, strict=True):
                    known[ids[i]] = d.caption
                self.folder.mkdir(parents=True, exist_ok=True)
                tmp = store.with_suffix(".tmp")
                pd.DataFrame({"id": list(known), "text": list(known.values())}).to_parquet(tmp)
                tmp.replace(store)
        return [known[i] for i in ids]
