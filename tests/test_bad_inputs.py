"""Bad inputs that used to crash or mislead: each ends in one clear error naming the file,
line or field and the fix, before any weights load."""

import json

import pytest

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.errors import ConfigError, DataError

ROWS = ([{"text": f"great flight {i}", "label": "positive"} for i in range(20)]
        + [{"text": f"bad flight {i}", "label": "negative"} for i in range(20)])


def _jsonl(path, rows) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


@pytest.fixture
def no_weights(monkeypatch):
    """Fail the test if any weights load: every error here must come first."""
    import hf_transfer.run.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_classifier_model", lambda *a, **k: pytest.fail("weights loaded"))


def _run(tiny_overrides, **changes):
    DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, **changes})).run()


def test_latin1_jsonl_names_the_file_and_line(tiny_overrides, tmp_path, no_weights):
    path = tmp_path / "latin1.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in ROWS]
    lines[5] = json.dumps({"text": "caf\u00e9 ok", "label": "positive"}, ensure_ascii=False)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl is not valid UTF-8 \(line 6, byte b'\\xe9'\); "
                                        r"JSON files must be UTF-8"):
        _run(tiny_overrides, **{"data.target": {"files": {"train": str(path)}}})


def test_a_broken_jsonl_line_is_named(tiny_overrides, tmp_path, no_weights):
    lines = [json.dumps(r) for r in ROWS]
    lines[7] = '{"text": "broken", "label": '
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl line 8 is not valid JSON \(Expecting value at "
                                        r"column \d+\): fix or remove that line"):
        _run(tiny_overrides, **{"data.target": {"files": {"train": str(path)}}})


def test_a_folder_given_as_a_file(tiny_overrides, tmp_path):
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"`data.target.files.train`: '.*data.jsonl' is a folder; "
                                          r"name the data file\(s\) in it"):
        load_config(overrides={**tiny_overrides, "data.target": {"files": {"train": str(folder)}}})


def test_label_column_equal_to_text_column(tiny_overrides):
    with pytest.raises(ConfigError, match=r"`data.source.label_column` and `data.source.text_column` "
                                          r"are both 'text'"):
        load_config(overrides={**tiny_overrides, "data.source.label_column": "text"})


def test_one_class_is_refused_before_any_model(tiny_overrides, tmp_path, no_weights):
    one = _jsonl(tmp_path / "one.jsonl", [r for r in ROWS if r["label"] == "positive"] * 2)
    with pytest.raises(DataError, match=r"one class only \(\['positive'\]\): a classifier needs at least two"):
        _run(tiny_overrides, **{"data.source": {"files": {"train": one}},
                                "data.target": {"files": {"train": one}}})


def test_max_length_beyond_the_models_positions(tiny_overrides, no_weights):
    # The tiny BERT has 128 positions.
    with pytest.raises(ConfigError, match=r"`model.max_length` is 100000, but .* reads at most 128 "
                                          r"tokens: use at most 128"):
        _run(tiny_overrides, **{"model.max_length": 100000})


def test_an_output_dir_that_cannot_be_created_fails_before_any_model(tiny_overrides, tmp_path, no_weights):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"`output.dir` '.*a_file/run' cannot be written \(Not a directory\)"):
        _run(tiny_overrides, **{"output.dir": str(tmp_path / "a_file" / "run")})


# --- damaged weights --------------------------------------------------------------------------


def _damage(folder, tmp_path, how: str):
    import shutil

    copy = tmp_path / how / "model"
    shutil.copytree(folder, copy)
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    if how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif how == "random":
        weights.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(len(data))))
    else:  # a valid header, every float32 of the tensors NaN
        header = 8 + int.from_bytes(data[:8], "little")
        weights.write_bytes(data[:header] + b"\xff\xff\xff\x7f" * ((len(data) - header) // 4)
                            + data[header + 4 * ((len(data) - header) // 4):])
    return copy


@pytest.mark.parametrize("how, message", [
    ("truncated", r"safetensors weights of '.*truncated/model' are damaged \(.*\): the file is truncated"),
    ("random", r"safetensors weights of '.*random/model' are damaged"),
    ("nan", r"'.*nan/model' has non-finite \(NaN/inf\) weights in \d+ tensor\(s\), e\.g\. "),
])
def test_damaged_weights_name_the_model_instead_of_loading_or_crashing(tiny_model, tiny_data, tmp_path,
                                                                    tmp_path_factory, how, message):
    from hf_transfer import load_classifier
    from source_assets import shared_source_classifier

    saved = shared_source_classifier(tmp_path_factory, tiny_model, tiny_data["source"])
    with pytest.raises(ConfigError, match=message):
        load_classifier(_damage(saved, tmp_path, how))
