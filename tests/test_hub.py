"""Sharing on the Hub: push, model card, load back, merge, CLI and errors.

Everything goes through the real huggingface_hub client against the local fake Hub of
tests/fake_hub.py (its `fake_hub` fixture turns offline mode off for one test and restores it).
"""

import hashlib
import json
import logging
import re
import shutil

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, constants
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fake_hub import fake_hub  # noqa: F401  (the fixture)
from hf_transfer import (DomainAdaptationRecipe, load_classifier, load_config, merge_adapter,
                         push_to_hub, save_classifier)
from hf_transfer.cli import main as cli
from hf_transfer.config import ModelConfig, TuningConfig, field_paths
from hf_transfer.errors import ConfigError
from hf_transfer.hub import (HubAuthError, HubError, HubPermissionError, HubPushError,
                             build_model_card)
from hf_transfer.modeling import load_classifier_model
from hf_transfer.tuning import apply_tuning

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["great flight and friendly crew", "the battery is broken", "my phone update is okay"]
TOKEN = "hf_TESTSECRET_" + "q7Zx" * 6  # must never appear in a file or a log
BASE = "acme/tiny-bert"  # the tiny BERT, served by the fake Hub under a Hub id


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    """A LoRA adapter and a fully tuned classifier after one training step, saved with the Hub
    id BASE as their base model. Tests push copies (a push writes the card into the folder)."""
    root = tmp_path_factory.mktemp("saved")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    out = {}
    for method in ("lora", "full"):
        torch.manual_seed(0)
        model, new_modules = load_classifier_model(ModelConfig(name_or_path=str(tiny_model)), LABELS)
        model = apply_tuning(model, TuningConfig(method=method, lora_r=4), new_modules)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
        model(**batch, labels=torch.tensor([2, 0, 1])).loss.backward()
        optimizer.step()
        out[method] = save_classifier(model.eval(), tokenizer, root / method, LABELS, BASE, 32, method)
    return out


def _copy(folder, tmp_path, name=None):
    return shutil.copytree(folder, tmp_path / (name or folder.name))


def _digest(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@torch.no_grad()
def _logits(classifier):
    batch = classifier.tokenizer(TEXTS, padding=True, return_tensors="pt")
    return classifier.model(**batch).logits


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _assert_token_nowhere(tmp_path, hub, *texts):
    secret = TOKEN.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"token written to {path}"
    assert not any(secret in stored for stored in hub.all_stored_bytes()), "token stored on the Hub"
    for text in texts:
        assert TOKEN not in text
    assert hub.cdn_auth_headers == [], "credentials sent to the storage host"


def test_run_pushes_at_the_end_and_the_repo_loads_back(fake_hub, tiny_model, tiny_overrides, tmp_path,
                                                       monkeypatch, caplog, capfd):
    """A LoRA run on a Hub base model pushes itself (output.push_to_hub); the card is complete,
    and its how-to-load snippet rebuilds the same classifier from the Hub alone."""
    caplog.set_level(logging.DEBUG)
    fake_hub.seed(BASE, tiny_model)
    fake_hub.add_user("alice", TOKEN)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run_dir = tmp_path / "run"
    overrides = {**tiny_overrides, "model.name_or_path": BASE, "training.max_steps": 4,
                 "output.push_to_hub": True, "output.hub_repo_id": "alice/tiny-sentiment"}
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()

    remote = fake_hub.files("alice/tiny-sentiment")
    assert {"adapter_config.json", "adapter_model.safetensors", "hf_transfer.json", "tokenizer.json",
            "results.json", "README.md"} <= set(remote)
    assert {"config.json", "model.safetensors"} <= set(remote)  # the classifier under the adapter
    assert not any(p.startswith("checkpoints") for p in remote)
    assert remote["results.json"] == (run_dir / "results.json").read_bytes()
    # The card that was pushed replaced PEFT's README in the local model folder too.
    assert remote["README.md"] == (run_dir / "model" / "README.md").read_bytes()

    card = ModelCard.load("alice/tiny-sentiment")  # through the client, from the fake Hub
    assert card.data.base_model == BASE
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "text-classification"
    assert {"hf-transfer", "domain_adaptation", "source_only", "text-classification"} <= set(card.data.tags)
    metrics = {(r.dataset_name.split()[0], r.metric_type): r.metric_value for r in card.data.eval_results}
    for role in ("target", "source"):
        row = results["eval_matrix"][f"{role}/test"]
        assert metrics[(role, "accuracy")] == round(row["accuracy"], 4)
        assert metrics[(role, "f1")] == round(row["macro_f1"], 4)
    for split, row in results["eval_matrix"].items():
        assert f"| {split} | {row['n']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} |" in card.text
    assert "Transfer verdict" not in card.text  # results.json has no `transfer` section
    config_block = [b for b in _code_blocks(card.text, "yaml") if "tuning:" in b][0]
    assert yaml.safe_load(config_block) == results["config"]

    # A fresh cache: the snippet downloads the adapter, and the base model through it.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh_cache"))
    snippet = [b for b in _code_blocks(card.text, "python") if "load_classifier" in b][0]
    namespace = {}
    exec(snippet, namespace)
    from_hub, local = namespace["classifier"], load_classifier(run_dir / "model")
    torch.testing.assert_close(_logits(from_hub), _logits(local), rtol=0, atol=1e-6)
    assert from_hub.labels == local.labels == LABELS

    captured = capfd.readouterr()
    _assert_token_nowhere(tmp_path, fake_hub, caplog.text, captured.out, captured.err)


def test_push_model_folder_private_branch_and_stale_files(fake_hub, saved, tiny_model, tmp_path,
                                                          monkeypatch):
    fake_hub.seed(BASE, tiny_model)
    fake_hub.add_user("alice", TOKEN)
    lora, full = _copy(saved["lora"], tmp_path), _copy(saved["full"], tmp_path)
    push_to_hub(lora, "alice/clf", private=True, token=TOKEN)
    result = push_to_hub(full, "alice/clf", token=TOKEN)

    # The repo now holds exactly the full classifier, byte for byte; the adapter files are gone.
    remote = fake_hub.files("alice/clf")
    assert sorted(result.deleted) == ["adapter_config.json", "adapter_model.safetensors"]
    assert set(remote) == {".gitattributes", *(p.name for p in full.iterdir())}
    for path in full.iterdir():
        assert remote[path.name] == path.read_bytes()
    assert fake_hub.repos["alice/clf"].private
    card = ModelCard.load(full / "README.md")
    assert card.data.library_name == "transformers" and card.data.base_model == BASE
    assert card.data.eval_results is None and "## Evaluation" not in card.text  # no results.json

    with pytest.raises(ConfigError, match="private repo"):  # anonymous: the repo is invisible
        load_classifier("alice/clf")
    classifier = load_classifier("alice/clf", token=TOKEN)
    torch.testing.assert_close(_logits(classifier), _logits(load_classifier(full)), rtol=0, atol=1e-6)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model = AutoModelForSequenceClassification.from_pretrained("alice/clf")  # the card's 2nd snippet
    assert model.config.id2label == dict(enumerate(LABELS))

    # A branch: main keeps the full model, the branch gets the adapter.
    push_to_hub(lora, "alice/clf", token=TOKEN, revision="experiment")
    assert "adapter_config.json" not in fake_hub.files("alice/clf")
    branch = fake_hub.files("alice/clf", "experiment")
    assert "adapter_model.safetensors" in branch
    # The pushed adapter's base is the repo itself (the local folder's names the folder).
    assert json.loads(branch["adapter_config.json"])["base_model_name_or_path"] == "alice/clf"
    adapter = load_classifier("alice/clf", revision="experiment")
    torch.testing.assert_close(_logits(adapter), _logits(load_classifier(lora)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", ["missing", "invalid", "read_only"])
def test_token_problems_say_how_to_fix_them(fake_hub, saved, tmp_path, case):
    fake_hub.add_user("alice", TOKEN, role="read" if case == "read_only" else "write")
    folder = _copy(saved["full"], tmp_path)
    before = _digest(folder)
    token = {"missing": None, "invalid": "hf_not_a_valid_token", "read_only": TOKEN}[case]
    with pytest.raises(HubAuthError) as err:
        push_to_hub(folder, "alice/clf", token=token)
    message = str(err.value)
    assert "HF_TOKEN" in message and "hf auth login" in message and TOKEN not in message
    assert not fake_hub.repos and _digest(folder) == before


def test_someone_elses_repo_is_refused_clearly(fake_hub, saved, tmp_path):
    fake_hub.add_user("alice", TOKEN)
    for repo_id, private in (("bob/sentiment", False), ("bob/secret", True)):
        fake_hub.seed(repo_id, saved["full"], private=private)
        head = fake_hub.head(repo_id)
        folder = _copy(saved["lora"], tmp_path, repo_id.replace("/", "_"))
        before = _digest(folder)
        with pytest.raises(HubPermissionError) as err:
            push_to_hub(folder, repo_id, token=TOKEN)
        name = repo_id.split("/")[1]
        assert "belongs to 'bob'" in str(err.value) and f" alice/{name}`" in str(err.value)
        assert fake_hub.head(repo_id) == head and _digest(folder) == before


@pytest.mark.parametrize("failure", ["drop", 500])
def test_failure_mid_push_leaves_everything_and_a_retry_succeeds(fake_hub, saved, tmp_path, failure):
    """The weights are uploaded, then the commit breaks off (connection lost / server error)."""
    fake_hub.add_user("alice", TOKEN)
    folder = _copy(saved["lora"], tmp_path)
    before = _digest(folder)
    fake_hub.fail_next("POST", r"/commit/main$", failure)
    with pytest.raises(HubPushError, match="run the same push again"):
        push_to_hub(folder, "alice/clf", token=TOKEN)
    assert _digest(folder) == before  # even PEFT's README is still there
    assert set(fake_hub.files("alice/clf")) == {".gitattributes"}  # no partial commit
    lfs_files = len(list(folder.glob("*.safetensors")))  # the adapter and the classifier under it
    assert fake_hub.count("PUT", r"^/upload/", server="cdn") == lfs_files

    result = push_to_hub(folder, "alice/clf", token=TOKEN)
    assert "adapter_model.safetensors" in fake_hub.files("alice/clf")
    assert fake_hub.count("PUT", r"^/upload/", server="cdn") == lfs_files  # not uploaded twice
    assert fake_hub.head("alice/clf") == result.commit_oid


def test_offline_mode_is_respected(fake_hub, saved, tmp_path, monkeypatch):
    fake_hub.add_user("alice", TOKEN)
    folder = _copy(saved["full"], tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push_to_hub(folder, "alice/clf", token=TOKEN)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        load_classifier("alice/clf")
    assert fake_hub.requests == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    push_to_hub(folder, "alice/clf", token=TOKEN)
    expected = _logits(load_classifier("alice/clf"))  # downloaded into the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen = len(fake_hub.requests)
    torch.testing.assert_close(_logits(load_classifier("alice/clf")), expected, rtol=0, atol=0)
    assert len(fake_hub.requests) == seen  # from the cache alone


def test_merge_adapter_gives_the_same_logits(fake_hub, saved, tiny_model, tmp_path, capsys):
    fake_hub.seed(BASE, tiny_model)  # the adapter's base model comes from the (fake) Hub
    out = merge_adapter(saved["lora"], tmp_path / "merged")
    meta = json.loads((out / "hf_transfer.json").read_text())
    assert meta["format"] == "transformers" and meta["labels"] == LABELS and meta["base_model"] == BASE
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    merged, adapter = load_classifier(out), load_classifier(saved["lora"])
    assert not hasattr(merged.model, "peft_config") and merged.labels == LABELS
    torch.testing.assert_close(_logits(merged), _logits(adapter), rtol=1e-4, atol=1e-5)

    with pytest.raises(ConfigError, match="not empty"):
        merge_adapter(saved["lora"], out)
    with pytest.raises(ConfigError, match="nothing to merge"):
        merge_adapter(out, tmp_path / "again")
    assert not (tmp_path / "again").exists()
    assert cli(["merge", str(saved["lora"]), str(tmp_path / "by_cli")]) == 0
    assert (tmp_path / "by_cli" / "model.safetensors").is_file()
    assert cli(["merge", str(saved["lora"]), str(out)]) == 1
    assert "error:" in capsys.readouterr().err


def test_cli_push(fake_hub, saved, tmp_path, monkeypatch, capsys):
    fake_hub.add_user("alice", TOKEN)
    folder = _copy(saved["full"], tmp_path)
    args = ["push", str(folder), "alice/cli-model", "--private", "--revision", "v1"]
    assert cli(args) == 1
    assert "error: No Hugging Face token" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli(args) == 0
    assert "Pushed" in capsys.readouterr().out
    assert fake_hub.repos["alice/cli-model"].private
    assert "model.safetensors" in fake_hub.files("alice/cli-model", "v1")
    assert "model.safetensors" not in fake_hub.files("alice/cli-model")  # main untouched
    assert cli(["push", str(tmp_path / "nowhere"), "alice/x"]) == 1
    assert "neither a finished run folder" in capsys.readouterr().err
    assert cli(["push", str(folder), "no-owner"]) == 1
    assert "owner/name" in capsys.readouterr().err
    assert cli([]) == 2


def test_config_checks_the_hub_settings():
    with pytest.raises(ConfigError, match="hub_repo_id` is not set"):
        load_config(overrides={"output.push_to_hub": True})
    with pytest.raises(ConfigError, match="owner/name"):
        load_config(overrides={"output.hub_repo_id": "no-owner"})
    with pytest.raises(ConfigError, match="save_model"):
        load_config(overrides={"output.push_to_hub": True, "output.hub_repo_id": "a/b",
                               "output.save_model": False})
    config = load_config(overrides={"output.push_to_hub": "true", "output.hub_repo_id": "alice/m",
                                    "output.hub_private": "true", "output.hub_revision": "exp"})
    assert (config.output.push_to_hub, config.output.hub_private) == (True, True)
    assert not any("token" in name for name in field_paths())  # never part of the config


def test_card_with_transfer_section_and_hub_datasets():
    results = {
        "scenario": "domain_adaptation", "strategy": "sequential",
        "eval_matrix": {"target/test": {"accuracy": 0.81234, "macro_f1": 0.7, "n": 10}},
        "transfer": {"verdict": "positive transfer", "gain_macro_f1": 0.12},
        "config": {"data": {"source": {"hub_id": "org/reviews", "hub_config": "en"},
                            "target": {"builtin": "tweets", "filter": {"domain": "apple"}}},
                   "tuning": {"method": "full"}},
    }
    meta = {"format": "transformers", "base_model": "/home/me/local-model", "labels": LABELS, "tuning": "full"}
    card = ModelCard(str(build_model_card(meta, results, "alice/m")))
    assert card.data.base_model is None  # a local path is not a Hub id
    assert card.data.datasets == ["org/reviews"]
    assert [r.metric_value for r in card.data.eval_results] == [0.8123, 0.7]  # target only
    assert "**positive transfer**" in card.text and "gain_macro_f1: 0.12" in card.text
