"""Evaluation metrics (retrieval, zero-shot, compositional, CHAIR, caption statistics), plots and JSON reports."""

from vlforge.common.metrics.retrieval import retrieval_metrics

__all__ = ["retrieval_metrics"]
