"""Build a transformers config from YAML fields, refusing unknown fields (transformers keeps them silently)."""

from __future__ import annotations

from typing import Any

from vlforge.common.errors import VLForgeError


def make_config(config_class: type, where: str, fields: dict[str, Any] | None, **fixed: Any):
    """``config_class(**fixed, **fields)``; a field the class does not define is a VLForgeError naming ``where``
    (the YAML key, e.g. ``model.vision``)."""
    fields = dict(fields or {})
    known = set(config_class().to_dict()) | set(getattr(config_class, "attribute_map", {}))
    unknown = sorted(set(fields) - known)
    if unknown:
        raise VLForgeError(f"unknown key '{where}.{unknown[0]}' for {config_class.__name__}")
    return config_class(**fixed, **fields)
