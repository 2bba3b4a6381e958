"""Training: BLIP-2 stage 1 and stage 2, pre-training, and the paper's three-stage recipe."""

# The recipe's stages in order (facecap_lib.training.stages); here so the CLI can list them
# without importing torch.
STAGES = ("language-model", "qformer", "au", "emot", "pseudo", "mix", "cat", "exp")
