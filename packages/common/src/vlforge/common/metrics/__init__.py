"""Evaluation metrics (retrieval, zero-shot, compositional, CHAIR, caption statistics), plots and JSON reports."""

from vlforge.common.metrics.caption_stats import caption_lengths, length_stats, word_frequencies
from vlforge.common.metrics.chair import COCO_OBJECTS, ChairResult, chair, scene_objects
from vlforge.common.metrics.compositional import pairwise_accuracy
from vlforge.common.metrics.plots import (
    plot_length_histograms,
    plot_recall_bars,
    plot_score_bars,
    plot_word_frequencies,
)
from vlforge.common.metrics.report import read_metrics, write_metrics
from vlforge.common.metrics.retrieval import retrieval_metrics
from vlforge.common.metrics.zero_shot import class_embeddings, zero_shot_accuracy

__all__ = ["retrieval_metrics", "zero_shot_accuracy", "class_embeddings", "pairwise_accuracy", "chair",
           "ChairResult", "COCO_OBJECTS", "scene_objects", "caption_lengths", "length_stats", "word_frequencies",
           "plot_recall_bars", "plot_score_bars", "plot_length_histograms", "plot_word_frequencies", "write_metrics",
           "read_metrics"]
