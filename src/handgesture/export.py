"""Export a trained model for serving: TorchScript, ONNX, or the slim weights file.

The TorchScript and ONNX files take what a camera gives, uint8 RGB images [N, H, W, 3], and do HaGRID's
preprocessing inside (`PackagedModel`), so a consumer needs no Python and cannot get the input wrong.
Each file is written beside the target, loaded back, run on random batches of two sizes (the batch is
dynamic) and compared with the PyTorch model before it replaces the target: an export that does not
reproduce the model is an `ExportError`, and a file already at the target is kept. A JSON sidecar describes
the input and the classes, and records the file's sha256.

Where it writes is checked first (`export_target.check_target`): never inside a run folder, beside a best
pointer or over a file that is not an export of ours.

torch.jit is deprecated in torch 2.14 (a FutureWarning on trace, save and load). It still works and is what
libtorch and TorchServe load, so those warnings are silenced here, around our own jit calls only
(`_quiet_jit`). ONNX needs the optional packages onnx, onnxscript and onnxruntime, imported for it alone.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from handgesture.checkpoints.format import to_bytes
from handgesture.checkpoints.weights import slim_weights
from handgesture.errors import ExportError
from handgesture.export_target import EXPORTED_BY, FORMATS, check_target, sha256_of, sidecar_path
from handgesture.full_frame import V2_PAD_VALUE
from handgesture.inference import LoadedModel
from handgesture.labels import LEADING_HANDS
from handgesture.models import preprocess

log = logging.getLogger(__name__)

# Distinct stems, so the two sidecars (model.json, model.torchscript.json) of one folder never collide.
DEFAULT_OUT = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx", "weights": "model_weights.pth"}
TOLERANCE = 1e-4  # max absolute difference of any logit between the exported file and the PyTorch model...
NOISE_FACTOR = 4.0  # ...or this many times PyTorch's own float32 rounding error, where larger (see verify)
INPUT_NAME = "images"
OUTPUT_NAMES = ("gesture", "leading_hand")
FULL_FRAME_OUTPUTS = ("gesture",)  # HaGRID v2's full-frame classifiers have one head
# torch.export specialises a dimension whose example size is 0 or 1, so the example batch must be larger.
EXAMPLE_BATCH = 2
VERIFY_BATCHES = (1, 3)  # neither is the example's size: they prove the batch dimension really is dynamic


Runner = Callable[[torch.Tensor], list[torch.Tensor]]


class PackagedModel(nn.Module):
    """A model with its preprocessing inside: uint8 RGB [N, H, W, 3] -> its heads' logits, (gesture,
    leading_hand) or a full-frame model's (gesture,). A tuple, not a dict: TorchScript and ONNX consumers
    address outputs by position or name."""

    def __init__(self, model: nn.Module, heads: tuple[str, ...] = OUTPUT_NAMES):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(preprocess(images.permute(0, 3, 1, 2)))
        return tuple(outputs[head] for head in self.heads)


def heads_of(loaded: LoadedModel) -> tuple[str, ...]:
    return FULL_FRAME_OUTPUTS if loaded.full_frame else OUTPUT_NAMES


@dataclass
class ExportResult:
    path: Path
    sidecar: Path | None
    format: str
    max_abs_diff: float | None  # None for weights: they are compared tensor for tensor, exactly
    tolerance: float | None = None  # what max_abs_diff was held to (see verify)

    def to_dict(self) -> dict[str, Any]:
        sidecar = str(self.sidecar) if self.sidecar else None
        return {
            "path": str(self.path),
            "sidecar": sidecar,
            "format": self.format,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
        }


def export_model(
    loaded: LoadedModel, checkpoint: dict[str, Any] | None, fmt: str, out: Path, *, force: bool = False
) -> ExportResult:
    """Write `loaded`'s model to `out` as `fmt` (one of FORMATS), verified; `checkpoint` (the dict the model
    was loaded from) is needed for `weights` only. `force` replaces an earlier export of ours at `out`."""
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "weights" and checkpoint is None:
        raise ValueError("the weights format needs the checkpoint dict the model was loaded from (got None)")
    out = Path(out)
    check_target(out, fmt, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "weights":
        return _export_weights(loaded, checkpoint, out)
    # A copy on the CPU, in eval mode: the caller's model keeps its device and mode.
    packaged = PackagedModel(copy.deepcopy(loaded.model).cpu(), heads_of(loaded)).eval()
    with _partial_file(out) as partial:
        _write(packaged, fmt, partial, loaded, target=out)
        diff, tolerance = verify(packaged, partial, fmt, loaded.image_size, name=out)
        description = describe(loaded, fmt, out, diff, tolerance, sha256=sha256_of(partial))
    sidecar = sidecar_path(out)
    with _partial_file(sidecar) as partial:
        partial.write_text(json.dumps(description, indent=2) + "\n")
    log.info("exported %s as %s to %s (max abs diff %.3g)", loaded.model_name, fmt, out, diff)
    return ExportResult(out, sidecar, fmt, diff, tolerance)


@contextlib.contextmanager
def _partial_file(out: Path) -> Iterator[Path]:
    """A sibling path to write and verify; it replaces `out` only once verified, else it is removed."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _write(packaged: PackagedModel, fmt: str, path: Path, loaded: LoadedModel, target: Path) -> None:
    height, width = loaded.image_size
    example = torch.zeros(EXAMPLE_BATCH, height, width, 3, dtype=torch.uint8)
    writer = _write_onnx if fmt == "onnx" else _write_torchscript
    try:
        writer(packaged, example, path)
    except Exception as exc:  # the exporters raise many kinds; say which model and format failed
        raise ExportError(f"could not export {loaded.model_name} to {fmt} ({target}): {exc}") from exc


def _write_onnx(packaged: nn.Module, example: torch.Tensor, path: Path) -> None:
    _require_onnx()
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(
        packaged,
        (example,),
        str(path),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=list(packaged.heads),
        dynamic_shapes=({0: batch},),
        external_data=False,  # one self-contained file: protobuf's 2 GB limit is far above our largest model
        verbose=False,  # its progress lines go to stdout, where the `handgesture` command prints JSON
    )


def _write_torchscript(packaged: nn.Module, example: torch.Tensor, path: Path) -> None:
    # check_trace=False: the check re-traces and re-runs the model several times, and with autograd enabled it
    # fails for ViT ("Graphs differed across invocations", from torchvision's torch._assert on the image size)
    # although the trace is right. verify() is the stronger check: it compares outputs on other batch sizes.
    with torch.no_grad(), _quiet_jit():
        torch.jit.trace(packaged, example, check_trace=False).save(str(path))


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
        # ViT turns its input's size into a Python bool to assert it: the packaged input size is fixed anyway.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def verify(
    packaged: PackagedModel, path: Path, fmt: str, image_size: list[int], name: Path | None = None
) -> tuple[float, float]:
    """(max abs diff, tolerance) of the file at `path` against `packaged` on seeded random uint8 batches;
    ExportError (naming `name`, the target, else `path`) when it does not run or differs by more.

    The tolerance is TOLERANCE, or NOISE_FACTOR times PyTorch's own float32 rounding error (its distance from
    a float64 run of the same model) where that is larger. Deep ResNets with logits around 1 round by 1e-4
    to 2e-3 in float32 (measured: ResNext50, ResNext101, ResNet152), in PyTorch and ONNX Runtime alike, so a
    fixed 1e-4 would refuse correct exports; a real export bug is orders of magnitude above rounding."""
    name = name or path
    try:
        run = _load_runner(path, fmt, packaged.heads)
    except Exception as exc:  # a truncated or malformed file: each runtime says so in its own way
        raise ExportError(f"{name}: the written {fmt} file does not load: {exc}") from exc
    exact = copy.deepcopy(packaged.model).double()
    generator = torch.Generator().manual_seed(0)
    height, width = image_size
    diffs, noise = [], 0.0
    for batch in VERIFY_BATCHES:
        images = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8, generator=generator)
        with torch.no_grad():
            expected = packaged(images)
        try:
            got = run(images)
        except Exception as exc:
            raise ExportError(f"{name}: the {fmt} export does not run on a batch of {batch}: {exc}") from exc
        diffs.append(_max_abs_diff(got, expected, name, fmt))
        noise = max(noise, _float32_error(exact, images, expected, packaged.heads))
    diff, tolerance = _worst(diffs), max(TOLERANCE, NOISE_FACTOR * noise)
    if math.isnan(diff):
        raise ExportError(
            f"{name}: the {fmt} export's logits, or the PyTorch model's, are NaN on random uint8 batches of "
            f"{VERIFY_BATCHES} (expected finite logits); it was not written"
        )
    if not diff <= tolerance:
        raise ExportError(
            f"{name}: the {fmt} export's logits differ from the PyTorch model's by up to {diff:.3g} "
            f"(tolerance {tolerance:.3g}) on random uint8 batches of {VERIFY_BATCHES}; it was not written"
        )
    return diff, tolerance


def _float32_error(
    exact: nn.Module, images: torch.Tensor, expected: tuple[torch.Tensor, ...], heads: tuple[str, ...]
) -> float:
    """How far PyTorch's float32 logits are from a float64 run of the same model: its rounding error."""
    with torch.no_grad():
        outputs = exact(images.permute(0, 3, 1, 2).double() / 255.0)  # models.preprocess, in float64
    return max((e.double() - outputs[key]).abs().max().item() for e, key in zip(expected, heads, strict=True))


def _max_abs_diff(got: list[torch.Tensor], expected: tuple[torch.Tensor, ...], name: Path, fmt: str) -> float:
    got_shapes, expected_shapes = [tuple(t.shape) for t in got], [tuple(t.shape) for t in expected]
    if got_shapes != expected_shapes:
        raise ExportError(f"{name}: the {fmt} export returns shapes {got_shapes}, expected {expected_shapes}")
    return _worst((g.float() - e).abs().max().item() for g, e in zip(got, expected, strict=True))


def _worst(diffs: Iterable[float]) -> float:
    """The largest of `diffs`, or NaN if any is: Python's max keeps whichever of a number and NaN comes
    first (max(0.0, nan) is 0.0), and torch's max gives NaN for a tensor holding one."""
    diffs = list(diffs)
    return math.nan if any(math.isnan(d) for d in diffs) else max(diffs)


def _load_runner(path: Path, fmt: str, heads: tuple[str, ...]) -> Runner:
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda images: [
            torch.from_numpy(array) for array in session.run(list(heads), {INPUT_NAME: images.numpy()})
        ]
    with _quiet_jit():
        module = torch.jit.load(str(path), map_location="cpu")

    def run(images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return list(module(images))

    return run


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"the onnx format needs the packages onnx, onnxscript and onnxruntime ({exc}); "
            "install them with the versions pinned in requirements.lock"
        ) from None


def describe(
    loaded: LoadedModel, fmt: str, out: Path, diff: float, tolerance: float, sha256: str
) -> dict[str, Any]:
    """The sidecar: what a consumer needs to feed the file and read its outputs, and where it came from."""
    height, width = loaded.image_size
    return {
        "exported_by": EXPORTED_BY,
        "format": fmt,
        "file": out.name,
        "sha256": sha256,
        "model_name": loaded.model_name,
        "class_names": list(loaded.class_names),
        "hand_names": [] if loaded.full_frame else list(LEADING_HANDS),
        "image_size": [height, width],
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "layout": "NHWC",
            "channels": "RGB",
            "shape": ["batch", height, width, 3],
            # A full-frame model takes the whole frame, longest side scaled to the size and centred on
            # v2's grey (what `data.full_frames.letterbox` does); a hand-crop model takes a square crop.
            **({"frame": {"letterbox": True, "pad_value": V2_PAD_VALUE}} if loaded.full_frame else {}),
        },
        "outputs": list(heads_of(loaded)),  # logits; a softmax over each gives probabilities
        "source": {
            "uri": loaded.uri,
            "sha256": loaded.sha256,
            "epoch": loaded.epoch,
            "metrics": loaded.metrics,
        },
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _export_weights(loaded: LoadedModel, checkpoint: dict[str, Any], out: Path) -> ExportResult:
    slim = {**slim_weights(checkpoint), "exported_by": EXPORTED_BY}  # how --force knows the file is ours
    with _partial_file(out) as partial:
        partial.write_bytes(to_bytes(slim))
        _verify_weights(loaded.model, partial, name=out)
    return ExportResult(out, None, "weights", None)


def _verify_weights(model: nn.Module, path: Path, name: Path) -> None:
    """The written file loads safely and holds exactly the model's tensors."""
    written = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    if written.keys() != own.keys():
        raise ExportError(
            f"{name}: the weights file's state_dict keys are not the model's; it was not written"
        )
    differing = [key for key, tensor in own.items() if not torch.equal(written[key], tensor.cpu())]
    if differing:
        raise ExportError(
            f"{name}: {len(differing)} tensors of the weights file differ from the model's "
            f"(e.g. {', '.join(differing[:3])}): the checkpoint is not the one the model was loaded from"
        )
