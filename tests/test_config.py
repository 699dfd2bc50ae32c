"""Configuration: YAML + CLI loading, overrides, and one clear message per bad input."""

from pathlib import Path

import pytest

from hf_transfer.config import RunConfig, field_paths, load_config, parse_args
from hf_transfer.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_names_its_launch_command(path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    header = path.read_text().splitlines()[:6]
    assert any(f"--config recipes/configs/{path.name}" in line for line in header), (
        "each YAML's header shows the command that runs it"
    )


def test_cli_overrides_take_dotted_and_unique_short_names():
    config = parse_args(["--tuning.method", "full", "--learning_rate", "1e-4", "--overwrite",
                         "--data.target.k_shot=16", "--log_with", "tensorboard"])
    assert config.tuning.method == "full"
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.output.overwrite is True
    assert config.data.target.k_shot == 16
    assert config.training.log_with == ["tensorboard"]


def test_overrides_apply_on_top_of_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  seed: 7\n  batch_size: 4\ntuning:\n  method: frozen\n")
    config = parse_args(["--config", str(path), "--training.batch_size", "16"])
    assert (config.training.seed, config.training.batch_size, config.tuning.method) == (7, 16, "frozen")


def test_naming_a_data_origin_starts_a_fresh_dataset(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,b\n")
    config = load_config(overrides={"data.source.files": {"train": str(data)}})
    assert config.data.source.builtin is None and config.data.source.filter is None


def _problems(**overrides) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    return str(err.value)


@pytest.mark.parametrize("overrides, expected", [
    ({"tuning.method": "loar"}, "`tuning.method` is 'loar': choose one of full, lora, frozen, top_k. Did you mean `lora`?"),
    ({"training.batch_size": "many"}, "`training.batch_size` must be int"),
    ({"training.num_epochs": 0}, "`training.num_epochs`"),
    ({"training.learning_rate": -1}, "`training.learning_rate`"),
    ({"training.warmup_ratio": 1.5}, "`training.warmup_ratio`"),
    ({"training.metric_for_best": "loss"}, "`training.metric_for_best`"),
    ({"training.mixed_precision": "fp8"}, "`training.mixed_precision`"),
    ({"tuning.lora_r": 0}, "`tuning.lora_r`"),
    ({"tuning.top_k_layers": 0}, "`tuning.top_k_layers`"),
    ({"model.max_length": 2}, "`model.max_length`"),
    ({"data.source.k_shot": 0}, "`data.source.k_shot`"),
    ({"data.target.validation_size": 0.6, "data.target.test_size": 0.5}, "must leave data for training"),
    ({"data.source.files": {"train": "no/such.csv"}}, "`data.source.files.train`: no such file"),
    ({"data.source.hub_id": "x/y", "data.source.builtin": "tweets"}, "needs exactly one of"),
    ({"output.dir": ""}, "`output.dir` is empty"),
])
def test_bad_values_name_the_field(overrides, expected):
    assert expected in _problems(**overrides)


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  learning_rat: 0.1\nmodle: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "`training.learning_rat` is not a known setting. Did you mean `learning_rate`?" in message
    assert "`modle` is not a known setting. Did you mean `model`?" in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_args(["--tuning.method", "x", "--batch_size", "0", "--bogus", "1", "--text_column", "t"])
    message = str(err.value)
    assert message.startswith("4 problem(s)")
    for part in ("`tuning.method`", "`training.batch_size`", "`--bogus`", "`--text_column` is ambiguous"):
        assert part in message


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_help_lists_every_setting(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in field_paths():
        assert f"--{name}" in out


DEFAULT_YAML = CONFIGS[0].parent / "domain_adaptation.yaml"


@pytest.mark.parametrize("argv, method, expected", [
    ([], "lora", 2e-3),  # the shipped config's LoRA rate
    (["--tuning.method", "full"], "full", 3e-5),  # not LoRA's 2e-3: the method's own default
    (["--tuning.method", "frozen"], "frozen", 1e-3),
    (["--tuning.method", "full", "--training.learning_rates.full", "1e-5"], "full", 1e-5),
    (["--tuning.method", "full", "--training.learning_rate", "4e-5"], "full", 4e-5),  # any method
    (["--training.learning_rate", "4e-5"], "lora", 4e-5),
])
def test_learning_rate_follows_the_tuning_method(argv, method, expected):
    config = parse_args(argv, default_config=DEFAULT_YAML)
    assert config.tuning.method == method
    assert config.training.learning_rate_for(method) == pytest.approx(expected)


def test_per_method_learning_rates_are_checked():
    with pytest.raises(ConfigError, match=r"`training.learning_rates.full` is -1.0: use a positive value"):
        load_config(overrides={"training.learning_rates.full": -1})


@pytest.mark.parametrize("learning_rate, warned", [(2e-3, True), (3e-5, False)])
def test_full_tuning_at_a_lora_rate_is_warned_about(tiny_overrides, caplog, learning_rate, warned):
    from hf_transfer import DomainAdaptationRecipe

    overrides = {**tiny_overrides, "tuning.method": "full", "training.learning_rate": learning_rate,
                 "training.max_steps": 1, "output.save_model": False, "output.report": False}
    with caplog.at_level("WARNING", logger="hf_transfer"):
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    messages = [r.getMessage() for r in caplog.records if "fine-tunes the whole model" in r.getMessage()]
    assert len(messages) == (1 if warned else 0)
    if warned:
        assert "Stage 'source'" in messages[0] and "`training.learning_rate`" in messages[0]
