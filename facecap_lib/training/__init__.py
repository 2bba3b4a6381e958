"""Training: one loop (:mod:`.fit`) for BLIP-2 stage 1, the captioners, pre-training and the
fine-tuning probe, and the paper's three-stage recipe (:mod:`.stages`)."""

# Here, free of torch, so that the CLI can list them and the evaluation can name them.
# The recipe's stages in order (facecap_lib.training.stages).
STAGES = ("language-model", "qformer", "au", "emot", "pseudo", "mix", "cat", "exp")
# The captioners the recipe trains, by name (run folder ``<name>-blip``), with their titles.
CAPTIONERS = {
    "au": "AU-BLIP",
    "emot": "Emot-BLIP",
    "mix": "Mix-BLIP",
    "cat": "Cat-BLIP",
    "exp": "Exp-BLIP",
}
# Every captioner a chapter scores: two baselines, the untrained one (stage 1 only) and a general
# captioner (the same training on captions that never describe the expression:
# captions.general), and the five.
TITLES = {"untrained": "untrained", "general": "general", **CAPTIONERS}
