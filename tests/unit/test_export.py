"""`export_model`: every architecture exports to ONNX and TorchScript and the files reproduce the PyTorch
model on uint8 NHWC batches of any size, checked here independently of the exporter's own check; the slim
weights file loads safely and strictly; an export that does not reproduce the model is refused.

"Reproduce" is within 1e-4, or within NOISE_FACTOR times PyTorch's own float32 rounding error (measured
against float64) where that is larger: it is, for the deep ResNets (about 1e-4 to 2e-3 on logits near 1)."""

import copy
import functools
import hashlib
import json
import math

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
from handgesture.export_target import ExportTargetError, check_target
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
    assert sidecar["exported_by"] == "handgesture export"  # what --force looks for before replacing it
    assert sidecar["sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest()
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
    the good export already at the target (replaced with force) must survive, sidecar included."""
    writer_name = {"onnx": "_write_onnx", "torchscript": "_write_torchscript"}[fmt]
    original_writer = getattr(export, writer_name)

    def write_a_changed_model(packaged, example, path):
        changed = copy.deepcopy(packaged)
        with torch.no_grad():
            changed.model.classifier[0].bias[3] += 0.01
        original_writer(changed, example, path)

    out = tmp_path / DEFAULT_OUT[fmt]
    previous = export_model(loaded_model("ResNet18"), None, fmt, out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {out.name, previous.sidecar.name}
    monkeypatch.setattr(export, writer_name, write_a_changed_model)
    with pytest.raises(ExportError) as error:
        export_model(loaded_model("ResNet18"), None, fmt, out, force=True)
    message = str(error.value)
    assert str(out) in message and fmt in message and "differ" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no partial file either


def nan_head(head: str) -> torch.nn.Module:
    """ResNet18 whose `head` ("gesture", first of the outputs, or "leading_hand", second) gives NaN logits."""
    model = copy.deepcopy(random_model("ResNet18"))
    with torch.no_grad():
        getattr(model, {"gesture": "classifier", "leading_hand": "leading_hand"}[head])[0].bias[0] = math.nan
    return model


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("head", ["gesture", "leading_hand"])
def test_an_export_of_a_model_whose_logits_are_nan_is_refused(head, tmp_path):
    """NaN in any logit fails verification: Python's max(0.0, nan) is 0.0, which once let it pass."""
    out = tmp_path / "model.pt"
    with pytest.raises(ExportError, match=r"model\.pt: the torchscript export's logits.* are NaN"):
        export_model(loaded_model("ResNet18", nan_head(head)), None, "torchscript", out)
    assert list(tmp_path.iterdir()) == []


def test_verification_takes_nan_as_the_worst_difference_wherever_it_comes():
    assert math.isnan(export._worst([0.0, math.nan, 1.0])) and math.isnan(export._worst([math.nan, 2.0]))
    assert export._worst([0.5, 0.25]) == 0.5


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


def refusal(out, fmt="onnx", force=False) -> str:
    with pytest.raises(ExportTargetError) as error:
        check_target(out, fmt, force)
    message = str(error.value)
    assert "\n" not in message and "expected" in message and "nothing was written" in message
    return message


@pytest.mark.parametrize("record", ["manifest.json", "lease.json"])
def test_a_run_folder_is_known_by_its_manifest_or_lease_at_any_depth_and_through_links(record, tmp_path):
    run = tmp_path / "runs" / "exp" / "run"
    run.mkdir(parents=True)
    (run / record).write_text(json.dumps({"checkpoints": [], "owner": "flow-run-1"}))
    for out in (run / "model.onnx", run / "a" / "b" / "model.onnx"):
        for force in (False, True):
            assert f"inside the run folder {run} ({record})" in refusal(out, force=force)
    (tmp_path / "link").symlink_to(run)
    assert str(run) in refusal(tmp_path / "link" / "model.onnx")
    (run / record).write_text('{"checkpoints": [')  # torn: still the run's record
    assert str(run) in refusal(run / "model.onnx")
    (run / record).write_text('{"name": "a web app manifest"}')  # not a run's record
    check_target(run / "model.onnx", "onnx")


def test_a_best_pointer_and_the_store_s_record_names_are_never_written(tmp_path):
    (tmp_path / "best.json").write_text("{}")
    assert f"beside the best pointer {tmp_path / 'best.json'}" in refusal(tmp_path / "model.onnx", force=True)
    check_target(tmp_path / "exports" / "model.onnx", "onnx")  # below the experiment, outside its runs: fine
    for out in ("best.pt", "manifest.onnx", "lease.json", "best.json"):
        assert "the name of a run store's record" in refusal(tmp_path / "elsewhere" / out, force=True)
    check_target(tmp_path / "elsewhere" / "best.json.pth", "weights")


def test_force_replaces_only_what_its_sidecar_or_mark_says_is_our_export(tmp_path):
    out, sidecar = tmp_path / "model.onnx", tmp_path / "model.json"
    ours = {"exported_by": "handgesture export", "format": "onnx", "file": "model.onnx"}
    sidecar.write_text(json.dumps(ours))  # our sidecar, its file gone: both may go
    assert "exists; expected a new path (or --force" in refusal(out)
    check_target(out, "onnx", force=True)
    sidecar.write_text(json.dumps({**ours, "file": "other.onnx"}))  # another export's description
    assert str(sidecar) in refusal(out, force=True)
    out.mkdir()
    assert "not a regular file" in refusal(out, force=True)
    weights = tmp_path / "w.pth"
    weights.write_bytes(to_bytes({"schema_version": SCHEMA_VERSION, "weights_only": True, "state_dict": {}}))
    assert "not a weights file written by handgesture export" in refusal(weights, "weights", force=True)
    weights.write_bytes(to_bytes({"state_dict": {}, "exported_by": "handgesture export"}))
    check_target(weights, "weights", force=True)
