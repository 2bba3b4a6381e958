"""Evaluation: what generated captions say against what the labels say, caption metrics, probes."""
