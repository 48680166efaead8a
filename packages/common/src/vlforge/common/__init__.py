"""vlforge.common: the caption store, ShapesWorld, text utilities, the CLI base, strategies, metrics and model
presets."""

__version__ = "0.1.0"
