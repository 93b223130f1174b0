"""The tiny training set-up the tests share: trains in seconds on 2 cores."""

from pathlib import Path


def tiny_dotlist(dataset: dict) -> list[str]:
    """Dotlist overrides for a small synthetic `dataset` (from generate_synthetic), without storage."""
    return [
        f"dataset.annotations={dataset['annotations']}",
        f"dataset.dataset={dataset['dataset']}",
        f"dataset.cache_dir={Path(dataset['annotations']).parent / 'cache'}",
        "dataset.image_size=[32,32]",
        "model.name=MobileNetV3_small",
        "train_params.epochs=2",
        "train_params.train_batch_size=16",
        "train_params.num_workers=0",
        "scheduler.warmup_steps=5",
        "synthetic.generate_if_missing=false",
    ]
