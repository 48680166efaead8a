"""Dataset ingest into the caption store: one reader per format (coco, karpathy, cc3m, llava, jsonl,
webdataset), shared checks for bad input, and the driver ``ingest`` that batches checked records into a
CaptionStore."""

from vlforge.common.ingest.formats import FORMATS, IngestFormat
from vlforge.common.ingest.run import ingest
from vlforge.common.ingest.summary import IngestSummary

__all__ = ["FORMATS", "IngestFormat", "IngestSummary", "ingest"]
