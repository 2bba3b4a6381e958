"""A BLIP-2 captioner, taken apart: parameter counts per part and the tensor shapes a batch takes
on its way through (image encoder, Q-Former, projection, language model)."""

from __future__ import annotations

import pandas as pd
import torch

PARTS = {
    "vision_model": "image encoder (ViT)",
    "query_tokens": "learned queries",
    "qformer": "Q-Former",
    "language_projection": "projection to the LM",
    "language_model": "language model (OPT)",
}


def parameter_table(model) -> pd.DataFrame:
    """Parameters of each part (millions) and whether stage 2 trains it (``requires_grad``)."""
    rows = []
    for attribute, label in PARTS.items():
        part = getattr(model, attribute)
        params = [part] if isinstance(part, torch.nn.Parameter) else list(part.parameters())
        rows.append(
            {
                "part": label,
                "parameters (M)": sum(p.numel() for p in params) / 1e6,
                "trained": any(p.requires_grad for p in params),
            }
        )
    return pd.DataFrame(rows)


def shape_trace(model, batch: dict[str, torch.Tensor]) -> pd.DataFrame:
    """The output shape of each part for one forward pass of ``batch`` (as made by
    :func:`facecap_lib.models.captions.encode_captions` plus ``pixel_values``)."""
    seen: list[tuple[str, tuple[int, ...]]] = []

    def hook(label):
        def record(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                tensor = output
            elif isinstance(output, tuple):
                tensor = output[0]
            else:
                tensor = getattr(output, "logits", None)
                tensor = output.last_hidden_state if tensor is None else tensor
            seen.append((label, tuple(tensor.shape)))

        return record

    handles = [
        getattr(model, name).register_forward_hook(hook(label))
        for name, label in PARTS.items()
        if name != "query_tokens"
    ]
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        for handle in handles:
            handle.remove()
    rows = [{"tensor": "pixel_values (input)", "shape": tuple(batch["pixel_values"].shape)}]
    rows.append(
        {"tensor": "input_ids (image tokens + caption)", "shape": tuple(batch["input_ids"].shape)}
    )
    rows += [{"tensor": f"{label} output", "shape": shape} for label, shape in seen]
    return pd.DataFrame(rows)
