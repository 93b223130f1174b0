"""HaGRID data: annotation reading, person split, crop geometry, synthetic data, datasets and loaders."""

from handgesture.data.annotations import (
    HAGRID_TARGETS,
    AnnotationSet,
    DataError,
    Sample,
    read_annotations,
    split_by_user,
)
from handgesture.data.dataset import EpochSampler, HandCropDataset, collate_skipping, make_loader
from handgesture.data.synthetic import generate_synthetic

__all__ = [
    "HAGRID_TARGETS",
    "AnnotationSet",
    "DataError",
    "EpochSampler",
    "HandCropDataset",
    "Sample",
    "collate_skipping",
    "generate_synthetic",
    "make_loader",
    "read_annotations",
    "split_by_user",
]
