"""vlforge.rewriter."""

__version__ = "0.1.0"
