"""Caption generation: batched ``generate_captions`` (no Lightning), captioner specs from YAML, the store
pipeline (``generate_into_store``) and the Lightning predict path (``lit_predict``, ``datamodule``)."""

from vlforge.captioner.generation.batched import generate_captions

__all__ = ["generate_captions"]
