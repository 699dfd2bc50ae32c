"""Safety of what a run loads and writes: safetensors only unless pickle is allowed, remote code
off by default, the saved model folder written atomically."""

import json
import shutil

import pytest
import torch
from transformers import AutoTokenizer, BertModel

from hf_transfer import load_classifier, save_classifier
from hf_transfer.config import ModelConfig, RunConfig
from hf_transfer.errors import ConfigError
from hf_transfer.modeling import load_classifier_model

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def pickle_only_model(tiny_model, tmp_path_factory):
    """The tiny encoder with its weights as pytorch_model.bin (pickle) only."""
    folder = tmp_path_factory.mktemp("pickled")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    (folder / "model.safetensors").unlink()
    torch.save(BertModel.from_pretrained(tiny_model).state_dict(), folder / "pytorch_model.bin")
    return folder


def test_unsafe_options_are_off_by_default():
    assert RunConfig().model.trust_remote_code is False
    assert RunConfig().model.allow_pickle is False


def test_pickle_weights_are_refused_unless_allowed(pickle_only_model):
    with pytest.raises(ConfigError, match=r"no safetensors weights .*arbitrary code.* "
                                          r"`model.allow_pickle` true"):
        load_classifier_model(ModelConfig(name_or_path=str(pickle_only_model)), LABELS)
    model, new_modules = load_classifier_model(
        ModelConfig(name_or_path=str(pickle_only_model), allow_pickle=True), LABELS)
    assert new_modules == ["classifier"]


def test_a_saved_classifier_with_pickle_weights_needs_allow_pickle(tiny_model, tmp_path):
    model, _ = load_classifier_model(ModelConfig(name_or_path=str(tiny_model)), LABELS)
    folder = save_classifier(model, AutoTokenizer.from_pretrained(tiny_model), tmp_path / "m",
                             LABELS, str(tiny_model), 32, "full")
    state = model.state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="`allow_pickle` true"):
        load_classifier(folder)
    assert load_classifier(folder, allow_pickle=True).labels == LABELS


def test_model_folder_is_replaced_atomically(tiny_model, tmp_path, monkeypatch):
    """A save that dies midway leaves the previous model folder untouched; the next save
    clears the leftover."""
    model, _ = load_classifier_model(ModelConfig(name_or_path=str(tiny_model)), LABELS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    folder = save_classifier(model, tokenizer, tmp_path / "model", LABELS, "base", 32, "full")
    before = json.loads((folder / "hf_transfer.json").read_text())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(tokenizer), "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        save_classifier(model, tokenizer, folder, ["a", "b", "c"], "base", 32, "full")
    assert json.loads((folder / "hf_transfer.json").read_text()) == before
    assert (tmp_path / "model.partial").is_dir()  # never under the name that loads
    monkeypatch.undo()
    save_classifier(model, tokenizer, folder, ["a", "b", "c"], "base", 32, "full")
    assert json.loads((folder / "hf_transfer.json").read_text())["labels"] == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
