"""Damaged weights of a saved classifier: one clear error naming the folder, not a raw
SafetensorError or NaN predictions. (Bad inputs to a run are in the catalogue,
tests/test_catalogue.py.)"""

import pytest

from hf_transfer.errors import ConfigError


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
