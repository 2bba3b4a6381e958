"""Training: the stage-2 captioning loop with schedules, checkpoints and exact resume."""
