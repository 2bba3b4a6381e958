"""BLIP-2 models: presets from CPU-tiny to the paper's shapes, tokenizers, caption encoding."""
