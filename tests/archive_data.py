"""Datasets in the layouts HaGRID and the tutorial ship, built from a small synthetic dataset: real zips,
and the same files uploaded to the moto S3 server."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zip_folder(folder, archive, top: str = "", method=zipfile.ZIP_STORED) -> Path:
    """Every file under ``folder`` into ``archive``, named ``<top>/<path relative to folder>``."""
    folder, archive = Path(folder), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", method) as out:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = path.relative_to(folder).as_posix()
            out.write(path, f"{top}/{name}" if top else name)
    return archive


def tutorial_zips(data: dict, out) -> dict[str, Path]:
    """The tutorial's two zips: ``subsample.zip`` holding ``<gesture>/<id>.jpg`` and
    ``subsample-annotations.zip`` holding ``ann_subsample/<gesture>.json``."""
    out = Path(out)
    return {
        "dataset": zip_folder(data["dataset"], out / "subsample.zip"),
        "annotations": zip_folder(
            data["annotations"], out / "subsample-annotations.zip", "ann_subsample", zipfile.ZIP_DEFLATED
        ),
    }


def per_gesture_zips(images, out) -> Path:
    """HaGRID's distribution: ``<gesture>.zip`` each holding ``<gesture>/<id>.jpg``."""
    out = Path(out)
    for gesture in sorted(p for p in Path(images).iterdir() if p.is_dir()):
        zip_folder(gesture, out / f"{gesture.name}.zip", gesture.name)
    return out


def upload(client, bucket: str, prefix: str, path) -> str:
    """A file, or every file under a folder, to ``s3://bucket/prefix[/...]``; returns that URI."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        key = prefix if path.is_file() else f"{prefix}/{file.relative_to(path).as_posix()}"
        client.upload_file(str(file), bucket, key)
    return f"s3://{bucket}/{prefix}"
