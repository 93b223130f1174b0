"""`export_model`: every architecture exports to ONNX and TorchScript and the files reproduce the PyTorch
model on uint8 NHWC batches of any size, checked here independently of the exporter's own check; the slim
weights file loads safely and strictly; an export that does not reproduce the model is refused.

"Reproduce" is within 1e-4, or within NOISE_FACTOR times PyTorch's own float32 rounding error (measured
against float64) where that is larger: it is, for the deep ResNets (about 1e-4 to 2e-3 on logits near 1)."""

import copy
import functools
import json

import pytest
import torch

from handgesture import export
from handgesture.checkpoints.format import SCHEMA_VERSION, to_bytes
from handgesture.errors import ExportError
from handgesture.export import (
    DEFAULT_OUT,
    FORMATS,
    NOISE_FACTOR,
    TOLERANCE,
    ExportResult,
    PackagedModel,
    export_model,
)
from handgesture.inference import LoadedModel, load_model
from handgesture.labels import HAGRID_TARGETS, LEADING_HANDS
from handgesture.models import ARCHITECTURES, build_model

SIZE = 64  # small, and a multiple of ViT's 32-pixel patches
# Minutes on 2 cores between them: exporting and tracing 25M-88M parameter graphs.
SLOW = {"ResNext50", "ResNext101", "ResNet152", "Vitb32"}
ALL_ARCHITECTURES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ARCHITECTURES]


@functools.cache
def random_model(name: str) -> torch.nn.Module:
    """A randomly initialised model whose outputs have a trained model's scale.

    Fresh BatchNorm statistics (mean 0, var 1) do not fit the activations, and over ResNet152's 50 residual
    blocks its logits reach about 2e6 in eval mode, where float32 rounding alone differs by units. Statistics
    measured on one batch, as training would measure them, keep every architecture's logits around 1."""
    torch.manual_seed(0)
    model = build_model(name, len(HAGRID_TARGETS), image_size=SIZE)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, SIZE, SIZE))
    return model.eval()


def loaded_model(name: str, model: torch.nn.Module | None = None) -> LoadedModel:
    return LoadedModel(
        model=model if model is not None else random_model(name),
        class_names=list(HAGRID_TARGETS),
        image_size=[SIZE, SIZE],
        model_name=name,
        uri="memory",
        epoch=1,
        metrics={},
        sha256="0" * 64,
    )


def reference(model: torch.nn.Module, images: torch.Tensor, dtype=torch.float32) -> list[torch.Tensor]:
    """The PyTorch model on the packaged input, written out here rather than through PackagedModel."""
    with torch.no_grad():
        outputs = model(images.permute(0, 3, 1, 2).to(dtype) / 255.0)
    return [outputs["gesture"], outputs["leading_hand"]]


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b, strict=True))


def run_exported(path, fmt: str):
    """Load an exported file with its own runtime, as a consumer would."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["images"]
        assert [o.name for o in session.get_outputs()] == ["gesture", "leading_hand"]
        return lambda images: [torch.from_numpy(a) for a in session.run(None, {"images": images.numpy()})]
    module = torch.jit.load(str(path))
    return lambda images: list(module(images))


def uint8_batch(batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, SIZE, SIZE, 3), dtype=torch.uint8, generator=generator)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ALL_ARCHITECTURES)
def test_export_reproduces_the_model_at_any_batch_size(name, fmt, tmp_path, capsys):
    loaded = loaded_model(name)
    out = tmp_path / DEFAULT_OUT[fmt]
    result = export_model(loaded, None, fmt, out)
    assert capsys.readouterr().out == ""  # `handgesture export` prints its JSON result on stdout, alone

    assert result.path == out and out.is_file() and result.format == fmt
    assert 0 <= result.max_abs_diff <= result.tolerance
    run = run_exported(out, fmt)
    exact = copy.deepcopy(loaded.model).double()
    for batch, seed in ((1, 11), (4, 12)):
        images = uint8_batch(batch, seed)
        got, expected = run(images), reference(loaded.model, images)
        assert [tuple(t.shape) for t in got] == [(batch, len(HAGRID_TARGETS)), (batch, len(LEADING_HANDS))]
        assert all(t.dtype == torch.float32 for t in got)
        rounding = max_abs_diff(expected, reference(exact, images, torch.float64))
        assert rounding < 1e-2  # so the tolerance stays far below any change of a logit that matters
        diff = max_abs_diff(got, expected)
        assert diff <= max(TOLERANCE, NOISE_FACTOR * rounding), f"{name} {fmt} at batch {batch}"


def test_every_architecture_is_covered_and_formats_have_default_names():
    assert {getattr(p, "values", (p,))[0] for p in ALL_ARCHITECTURES} == set(ARCHITECTURES)
    assert set(DEFAULT_OUT) == set(FORMATS)


def test_packaged_model_takes_uint8_nhwc_rgb():
    model = random_model("ResNet18")
    images = uint8_batch(2, 3)
    got = PackagedModel(model).eval()(images)
    assert isinstance(got, tuple)
    for g, e in zip(got, reference(model, images), strict=True):
        assert torch.equal(g.detach(), e)


def test_sidecar_describes_input_classes_and_source(tmp_path):
    loaded = loaded_model("ResNet18")
    loaded.sha256, loaded.uri, loaded.epoch, loaded.metrics = "ab" * 32, "s3://b/run/best.pth", 7, {"f1": 0.5}
    result = export_model(loaded, None, "onnx", tmp_path / "served" / "model.onnx")

    assert result.sidecar == tmp_path / "served" / "model.json"
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["format"] == "onnx" and sidecar["file"] == "model.onnx"
    assert sidecar["model_name"] == "ResNet18"
    assert sidecar["class_names"] == HAGRID_TARGETS
    assert sidecar["hand_names"] == ["right", "left"]
    assert sidecar["image_size"] == [SIZE, SIZE]
    assert sidecar["input"] == {
        "name": "images",
        "dtype": "uint8",
        "layout": "NHWC",
        "channels": "RGB",
        "shape": ["batch", SIZE, SIZE, 3],
    }
    assert sidecar["outputs"] == ["gesture", "leading_hand"]
    assert sidecar["source"] == {
        "uri": "s3://b/run/best.pth",
        "sha256": "ab" * 32,
        "epoch": 7,
        "metrics": {"f1": 0.5},
    }
    assert sidecar["max_abs_diff"] == result.max_abs_diff <= TOLERANCE == sidecar["tolerance"]
    assert sidecar["exported_at"].endswith("+00:00")
    assert json.loads(json.dumps(result.to_dict()))["sidecar"] == str(result.sidecar)


def full_checkpoint(name: str) -> tuple[dict, torch.nn.Module]:
    """A training checkpoint as the pipeline writes one: weights after an Adam step, and its moments."""
    torch.manual_seed(0)
    model = build_model(name, len(HAGRID_TARGETS), image_size=SIZE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    outputs = model(torch.rand(4, 3, SIZE, SIZE))
    (outputs["gesture"].sum() + outputs["leading_hand"].sum()).backward()
    optimizer.step()
    checkpoint = {
        "schema_version": SCHEMA_VERSION,
        "model_name": name,
        "class_names": list(HAGRID_TARGETS),
        "image_size": [SIZE, SIZE],
        "state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "epoch": 1,
        "metrics": {"f1": 0.25},
        "config": {"model": {"name": name}},
    }
    return checkpoint, model.eval()


def test_weights_file_is_slim_safe_and_loads_strictly(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDGESTURE_CACHE", str(tmp_path / "cache"))
    checkpoint, model = full_checkpoint("ResNet18")
    out = tmp_path / "model_weights.pth"
    result = export_model(loaded_model("ResNet18", model), checkpoint, "weights", out)

    assert result == ExportResult(out, None, "weights", None, None)
    slim = torch.load(out, weights_only=True)
    assert "optimizer_state_dict" not in slim
    assert out.stat().st_size < 0.5 * len(to_bytes(checkpoint))  # Adam's two moments are gone
    fresh = build_model("ResNet18", len(HAGRID_TARGETS), image_size=SIZE)
    fresh.load_state_dict(slim["state_dict"], strict=True)  # HaGRID's classes load by the same keys

    reloaded = load_model(str(out))
    assert (reloaded.model_name, reloaded.class_names, reloaded.epoch) == ("ResNet18", HAGRID_TARGETS, 1)
    images = uint8_batch(2, 5)
    for g, e in zip(reference(reloaded.model, images), reference(model, images), strict=True):
        assert torch.equal(g, e)


def test_weights_need_the_checkpoint_and_must_be_the_models(tmp_path):
    checkpoint, model = full_checkpoint("MobileNetV3_small")
    with pytest.raises(ValueError, match="checkpoint"):
        export_model(loaded_model("MobileNetV3_small", model), None, "weights", tmp_path / "new" / "w.pth")
    assert not (tmp_path / "new").exists()
    other = loaded_model("MobileNetV3_small", random_model("MobileNetV3_small"))
    with pytest.raises(ExportError, match="differ from the model's") as error:
        export_model(other, checkpoint, "weights", tmp_path / "w.pth")
    assert str(tmp_path / "w.pth") in str(error.value)
    assert not (tmp_path / "w.pth").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_that_does_not_reproduce_the_model_is_refused(fmt, tmp_path, monkeypatch):
    """The file written is of a model with one weight changed; the real verification must catch it, and
    a good file already at the target must survive."""
    writer_name = {"onnx": "_write_onnx", "torchscript": "_write_torchscript"}[fmt]
    original_writer = getattr(export, writer_name)

    def write_a_changed_model(packaged, example, path):
        changed = copy.deepcopy(packaged)
        with torch.no_grad():
            changed.model.classifier[0].bias[3] += 0.01
        original_writer(changed, example, path)

    out = tmp_path / DEFAULT_OUT[fmt]
    out.write_bytes(b"the previous, verified export")
    monkeypatch.setattr(export, writer_name, write_a_changed_model)
    with pytest.raises(ExportError) as error:
        export_model(loaded_model("ResNet18"), None, fmt, out)
    message = str(error.value)
    assert str(out) in message and fmt in message and "differ" in message
    assert out.read_bytes() == b"the previous, verified export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file, no sidecar


def test_an_exporter_failure_names_the_architecture(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::something")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(ExportError, match=r"could not export MobileNetV3_small to onnx .*aten::something"):
        export_model(loaded_model("MobileNetV3_small"), None, "onnx", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'tflite' is not one of torchscript, onnx, weights"):
        export_model(loaded_model("ResNet18"), None, "tflite", tmp_path / "model.tflite")
