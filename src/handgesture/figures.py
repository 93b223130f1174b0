"""Pictures of an evaluation: a confusion matrix with its counts (TensorBoard and reports) and a contact
sheet of crops with what the model made of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

SHEET_COLUMNS = 8
MIN_TILE = 128  # px: small training crops (the demo's 64) are scaled up so a caption fits under them
CAPTION = 28  # px of caption under each tile: two lines of PIL's default font


class Captioned(Protocol):
    image: torch.Tensor  # uint8 [3, H, W]
    true: str
    predicted: str
    probability: float


def confusion_figure(matrix: list[list[int]], class_names: Sequence[str]) -> Figure:
    # A bare Figure, not pyplot's: no backend is chosen or changed for the process (a notebook keeps its
    # inline plots), and nothing is registered that would need closing.
    size = max(4.0, 0.45 * len(class_names))
    figure = Figure(figsize=(size, size))
    axis = figure.subplots()
    axis.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0)
    for row, counts in enumerate(matrix):  # the counts themselves, readable on light and dark cells
        for column, count in enumerate(counts):
            if count:
                colour = "white" if count > peak / 2 else "black"
                axis.text(column, row, str(count), ha="center", va="center", fontsize=6, color=colour)
    axis.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    axis.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.tight_layout()
    return figure


def save_confusion(matrix: list[list[int]], class_names: Sequence[str], path: Path) -> Path:
    confusion_figure(matrix, class_names).savefig(path, dpi=150)
    return path


def contact_sheet(items: Sequence[Captioned], path: Path) -> Path:
    """The crops in a grid, each captioned "true -> predicted" and the predicted probability."""
    tiles = [_tile(item) for item in items]
    width, height = tiles[0].size
    rows = -(-len(tiles) // SHEET_COLUMNS)
    sheet = Image.new("RGB", (width * min(len(tiles), SHEET_COLUMNS), height * rows), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % SHEET_COLUMNS) * width, (i // SHEET_COLUMNS) * height))
    sheet.save(path)
    return path


def _tile(item: Captioned) -> Image.Image:
    crop = Image.fromarray(item.image.permute(1, 2, 0).numpy())
    scale = max(1, -(-MIN_TILE // max(crop.size)))
    crop = crop.resize((crop.width * scale, crop.height * scale), Image.Resampling.NEAREST)
    tile = Image.new("RGB", (crop.width, crop.height + CAPTION), "white")
    tile.paste(crop, (0, 0))
    draw = ImageDraw.Draw(tile)
    draw.text((2, crop.height + 1), f"{item.true} ->", fill="black")
    draw.text((2, crop.height + 14), f"{item.predicted} {item.probability:.2f}", fill="firebrick")
    return tile
