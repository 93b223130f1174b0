"""HaGRID v2's config files (hukenovs/hagrid configs/<model>.yaml) run as given with --config: every key
mapped or refused, all refusals and unknown keys of a file in one error."""

import pytest
from handgesture_cli.main import main

from handgesture.config import load_config
from handgesture.errors import ConfigError
from handgesture.labels import HAGRID_V2_TARGETS
from tests.hagrid import FIXTURES

V2_CONFIG = FIXTURES / "hagrid_v2_resnet18.yaml"
V2_OPTIMIZER = (
    "    name: SGD\n    params:\n        lr: 0.01\n        weight_decay: 0.0001\n        momentum: 0.9\n"
)
V2_SCHEDULER = "    name: ReduceLROnPlateau\n    params:\n        mode: min\n        factor: 0.1\n"


def v2_file(tmp_path, *replacements, append=""):
    text = V2_CONFIG.read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "ResNet18.yaml").write_text(text + append)
    return tmp_path / "ResNet18.yaml"


def test_v2s_resnet18_config_loads_as_given():
    config = load_config(V2_CONFIG)
    assert config.train_params.epochs == 100 and config.train_params.log_every_n_steps == 100
    assert (config.storage.uri, config.storage.experiment) == ("work_dir", "ResNet18")
    assert (config.train_params.early_stopping.epochs, config.train_params.early_stopping.metric) == (
        10,
        0.01,
    )
    dataset = config.dataset
    assert (dataset.annotations, dataset.val_annotations) == ("<path_to_json_train>", "<path_to_json_val>")
    assert (dataset.test_annotations, dataset.dataset) == ("<path_to_json_test>", "<path_to_dataset_folder>")
    assert dataset.image_size == [224, 224] and dataset.targets == HAGRID_V2_TARGETS and dataset.subset == -1
    assert (config.optimizer.optimizer, config.optimizer.lr) == ("SGD", 0.01)
    assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 0.0001)
    scheduler = config.scheduler
    assert (scheduler.name, scheduler.mode, scheduler.factor, scheduler.patience) == (
        "ReduceLROnPlateau",
        "min",
        0.1,
        10,
    )
    assert scheduler.warmup_steps == 0  # v2 has no warm-up before its scheduler
    params = config.train_params
    assert (params.train_batch_size, params.test_batch_size, params.num_workers, params.prefetch_factor) == (
        128,
        128,
        16,
        3,
    )
    assert config.model.name == "ResNet18" and config.model.pretrained is False
    assert config.model.full_frame is True  # v2's classifiers see full frames; its files never say so


@pytest.mark.parametrize("name", ["ConvNeXt_base", "VitB16", "MobileNetV3_large"])
def test_v2s_other_architectures_load_as_full_frame_ones(tmp_path, name):
    config = load_config(v2_file(tmp_path, ("name: ResNet18", f"name: {name}")))
    assert (config.model.name, config.model.full_frame) == (name, True)


def test_a_v1_architecture_in_a_v2_file_is_refused_naming_v2s(tmp_path):
    with pytest.raises(ConfigError, match="model.name='Vitb32' is not a full-frame architecture.*VitB16"):
        load_config(v2_file(tmp_path, ("name: ResNet18", "name: Vitb32")))


def test_a_v2_file_may_still_ask_for_hand_crops(tmp_path):
    path = v2_file(tmp_path, ("checkpoint: null", "checkpoint: null\n    full_frame: False"))
    assert load_config(path).model.full_frame is False
    assert load_config(V2_CONFIG, ["model.full_frame=false"]).model.full_frame is False


ADAMW = "    name: AdamW\n    params:\n        lr: 0.004\n        eps: 0.00000001\n"
ADAM = "    name: Adam\n    params:\n        betas: [0.8, 0.999]\n"
STEP = "    name: StepLR\n    params:\n        step_size: 30\n        gamma: 0.5\n"
COSINE = "    name: CosineAnnealingLR\n    params:\n        T_max: {}\n"
PLATEAU = "        factor: 0.5\n        patience: 3\n        min_lr: 0.001\n"
VAL_PARAMS = "val_params:\n    num_workers: 16\n    shuffle: False\n    batch_size: 128\n"
TEST_BATCH = ("False\n    batch_size: 128", "False\n    batch_size: 32")  # test_params' (val's comes first)
MAPPINGS = [
    (
        [(V2_OPTIMIZER, ADAMW)],
        {"optimizer.optimizer": "AdamW", "optimizer.lr": 0.004, "optimizer.weight_decay": 0.01},
    ),
    (
        [(V2_OPTIMIZER, ADAM)],
        {"optimizer.optimizer": "Adam", "optimizer.momentum": 0.8, "optimizer.lr": 0.001},
    ),
    ([("        momentum: 0.9\n\nscheduler", "\nscheduler")], {"optimizer.momentum": 0.0}),  # torch's default
    ([(V2_SCHEDULER, STEP)], {"scheduler.name": "StepLR", "scheduler.step_size": 30, "scheduler.gamma": 0.5}),
    (
        [(V2_SCHEDULER, COSINE.format(100))],
        {"scheduler.name": "CosineAnnealingLR", "scheduler.warmup_steps": 0},
    ),
    (
        [("        factor: 0.1\n", PLATEAU)],
        {"scheduler.factor": 0.5, "scheduler.patience": 3, "scheduler.min_lr": 0.001},
    ),
    ([("&img_size 224", "&img_size 160")], {"dataset.image_size": [160, 160]}),
    (
        [(VAL_PARAMS, VAL_PARAMS.replace("    batch_size: 128\n", "")), TEST_BATCH],
        {"train_params.test_batch_size": 32},
    ),
]


@pytest.mark.parametrize(("replacements", "expected"), MAPPINGS)
def test_each_v2_key_maps_onto_ours(tmp_path, replacements, expected):
    path = v2_file(tmp_path, *replacements)
    config = load_config(path)
    for dotted, value in expected.items():
        node = config
        for part in dotted.split("."):
            node = getattr(node, part)
        assert node == value, dotted


@pytest.mark.parametrize(
    ("replacement", "named"),
    [
        (("name: SGD", "name: RMSprop"), "optimizer.name=RMSprop"),
        (("momentum: 0.9\n", "momentum: 0.9\n        nesterov: true\n"), "optimizer.params.nesterov"),
        (("name: ReduceLROnPlateau", "name: OneCycleLR"), "scheduler.name=OneCycleLR"),
        (
            (V2_SCHEDULER, COSINE.format(8)),
            "scheduler.params.T_max=8",
        ),
        (("dataset_val: <path_to_dataset_folder>", "dataset_val: /elsewhere"), "dataset_train|dataset_val"),
        (("[0.54, 0.499, 0.474]", "[0.54, 0.499, 0.473]"), "dataset.img_mean"),
        (("one_class: False", "one_class: True"), "dataset.one_class=true"),
        (("criterion: CrossEntropyLoss", "criterion: FocalLoss"), "criterion=FocalLoss"),
        (("eval_every: 1", "eval_every: 2"), "eval_every=2"),
        (("value: [144,144,144]", "value: [0,0,0]"), "PadIfNeeded.value"),
        (("border_mode: 0", "border_mode: 4"), "PadIfNeeded.border_mode"),
        (("shuffle: True", "shuffle: False"), "train_params.shuffle=false"),
        (("    LongestMaxSize:", "    SmallestMaxSize:"), "train_transforms.SmallestMaxSize"),
        (("max_size: *img_size", "max_size: 256"), "val_transforms.LongestMaxSize: its size differs"),
        (("name: ReduceLROnPlateau", "name: Warmup_Cosine\n    warmup_epochs: 5"), "scheduler.warmup_epochs"),
    ],
)
def test_what_v2_says_that_cannot_be_mapped_is_refused_with_the_reason(tmp_path, replacement, named):
    path = v2_file(tmp_path, replacement)
    with pytest.raises(ConfigError, match=named.replace("|", r"\|")) as info:
        load_config(path)
    assert str(path) in str(info.value)


FLIP = "train_transforms:\n    HorizontalFlip:\n        p: 0.5\n"
EVERYTHING_WRONG = [
    ("value: [144,144,144]", "value: 0"),
    ("train_transforms:\n", FLIP),
    ("epochs: 100\n", "epochs: 100\nlerning_rate: 1\n"),
]


def test_every_refusal_and_unknown_key_of_a_v2_file_is_in_one_error(tmp_path):
    path = v2_file(tmp_path, *EVERYTHING_WRONG)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "PadIfNeeded.value" in message and "train_transforms.HorizontalFlip" in message
    assert "unknown keys lerning_rate" in message and message.count(str(path)) == 1 and "\n" not in message


def test_handgesture_train_refuses_a_v2_file_in_one_error_line_with_status_2(tmp_path, capsys):
    path = v2_file(tmp_path, *EVERYTHING_WRONG)
    assert main(["train", "--config", str(path), "--epochs", "1"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: ") and "PadIfNeeded.value" in line and "lerning_rate" in line
    assert "HorizontalFlip" in line and captured.out == ""
