"""Config fuzzing and safety: any value for any field gives a RunConfig or a ConfigError naming
the field (never another exception); YAML is loaded safely; secrets never reach results.json,
trackers or printed help; no config value reaches a shell."""

import math
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_transfer.config import REDACTED, RunConfig, field_paths, load_config, redact_secrets
from hf_transfer.errors import ConfigError

PATHS = sorted(field_paths())
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "null", "nan", "inf", "-1", "0", "1e400", "true", "[1, 2]", "{a: 1}",
                     "!!python/object/apply:os.system ['echo pwned']", "a,b", "x" * 300]),
    st.binary(max_size=4), st.builds(object),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()),
                                                 inner, max_size=3)), max_leaves=6)


def _load_or_named_error(overrides: dict):
    try:
        return load_config(overrides=overrides)
    except ConfigError as err:
        message = str(err)
        # Only the fields with a problem are named; at least one of those given must be.
        named = [n for n in overrides if isinstance(n, str) and n in message]
        assert named or "is not a setting name" in message, message
        return err


@SETTINGS
@given(path=st.sampled_from(PATHS), value=values)
def test_any_value_for_any_field_is_accepted_or_named(path, value):
    _load_or_named_error({path: value})


WRONG = [object(), b"\x00", [[1]], {"a": {"b": None}}, math.nan, -math.inf, 10**400, -(10**6),
         "", " ", "\x00", "null", "true", 1.5, True]


@pytest.mark.parametrize("path", PATHS)
def test_every_field_with_every_kind_of_wrong_value(path):
    for value in WRONG:
        _load_or_named_error({path: value})


@SETTINGS
@given(overrides=st.dictionaries(st.sampled_from(PATHS), values, min_size=2, max_size=6))
def test_several_bad_fields_at_once(overrides):
    _load_or_named_error(overrides)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=values, sections=st.dictionaries(st.sampled_from(
    ["model", "data", "tuning", "training", "strategy", "output", "data.source"]), values, max_size=3))
def test_any_yaml_document_gives_a_config_or_a_config_error(tmp_path_factory, data, sections):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    for document in (data, sections):
        try:
            path.write_text(yaml.safe_dump(document))
        except yaml.YAMLError:
            continue  # not representable (e.g. object()); nothing to load
        try:
            load_config(path)
        except ConfigError:
            pass


def test_non_finite_numbers_are_rejected():
    for value in (math.nan, math.inf, "nan", "-inf", "1e400"):
        with pytest.raises(ConfigError, match=r"`training.learning_rate` must be a finite number"):
            load_config(overrides={"training.learning_rate": value})


def test_yaml_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"training: !!python/object/apply:os.system ['touch {marker}']\n"
                    "model: !!python/object:collections.OrderedDict {}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_secrets_are_redacted_in_every_config_dict():
    data = {"output": {"hub_token": "hf_abcdefghijklmnopqrstuvwxyz12", "dir": "runs/a"},
            "trackers": {"wandb_api_key": "k", "password": "p", "secret": "s", "apikey": "x",
                         "tokenizer": "bert", "max_tokens": 5, "push_token": None},
            "model": {"name_or_path": "https://user:pass@example.com/m",
                      "revision": "hf_ABCDEFGHIJKLMNOPQRSTUVWXYZ"}}
    out = redact_secrets(data)
    assert out["output"] == {"hub_token": REDACTED, "dir": "runs/a"}
    assert out["trackers"] == {"wandb_api_key": REDACTED, "password": REDACTED, "secret": REDACTED,
                               "apikey": REDACTED, "tokenizer": "bert", "max_tokens": 5,
                               "push_token": None}
    assert out["model"] == {"name_or_path": f"https://{REDACTED}@example.com/m", "revision": REDACTED}
    assert data["output"]["hub_token"].startswith("hf_")  # the input is untouched


def test_results_and_trackers_get_the_redacted_config(tmp_path):
    token = "hf_" + "q" * 34
    config = load_config(overrides={"model.revision": token,
                                    "data.source.filter": {"api_key": "abc", "domain": "x"}})
    dumped = config.to_dict()
    assert token not in repr(dumped) and "abc" not in repr(dumped)
    assert config.model.revision == token  # the object itself keeps the real value

    from hf_transfer.run.results import flat_config as _flat_config

    assert token not in repr(_flat_config(dumped))


def test_no_config_value_reaches_a_shell():
    """The library never starts a process or a shell: nothing to inject into."""
    root = Path(__file__).resolve().parents[1] / "hf_transfer"
    pattern = re.compile(r"\bsubprocess\b|os\.system|os\.popen|shell\s*=\s*True|(?<![.\w])(eval|exec)\(")
    offenders = [f"{path}:{n}" for path in root.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line) and not line.lstrip().startswith("#")]
    assert not offenders, offenders


def test_default_config_round_trips_through_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(RunConfig().to_dict()))
    assert load_config(path) == RunConfig()
