"""Synthetic department drops for the base datasets (see :mod:`catalog.samples.generator`)."""

from catalog.samples.generator import (
    DATASETS,
    DEFECT_KINDS,
    MAX_DEFECT_RATE,
    DatasetSample,
    SampleReport,
    generate,
)

__all__ = [
    "DATASETS",
    "DEFECT_KINDS",
    "MAX_DEFECT_RATE",
    "DatasetSample",
    "SampleReport",
    "generate",
]
