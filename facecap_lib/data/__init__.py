"""Data: the canonical face table, dataset loaders, the SynthFACS renderer and writers, curation."""
