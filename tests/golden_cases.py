"""Every shipped config, run on the tiny model: the cases of the behaviour fixture.

Each case is a shipped YAML from recipes/configs/ with its strategy and tuning sections kept
and the model and data replaced by tiny ones (a few optimizer steps per stage, an evaluation
half-way, so checkpoint selection is exercised). ``tests/golden/*.json`` holds what these runs
gave when the fixture was recorded; tests/test_golden.py checks that a run today gives the same
numbers. Record again (only after a change that is *meant* to change results) with::

    HF_TRANSFER_RECORD_GOLDEN=1 python -m pytest tests/test_golden.py

Float results depend on the CPU kind, even with one thread: the vector width and the vendor's
kernels change the order of float sums, and a 10-step run at learning rate 1e-2 turns a 1e-7
difference into another argmax. Vendor and ISA are not always enough: an Intel AVX-512
machine with AMX (family 6, model 167) differs from the first machines, also Intel AVX-512, in
3 one-process and 2 two-process cases. So a fixture is kept per CPU model, ``tests/golden/<vendor>-<ISA>-<family>.<model>/``,
or per kind, ``tests/golden/<vendor>-<ISA>/`` (:func:`fixture_folder` takes the first that
exists); ``tests/golden/*.json`` is the fixture of the machines the project ran on first (not
recorded by name; CI reproduced it), used where neither exists. Recording writes the folder
compared with, or this CPU model's own folder where that would be the first machines'.
"""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path

from source_assets import write_renamed_data, write_shifted_data, write_topic_data

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "configs"
GOLDEN = Path(__file__).resolve().parent / "golden"

# What a run must reproduce: the eval matrix and the scenario's own numbers.
COMPARED_SECTIONS = ("eval_matrix", "no_adaptation", "forgetting", "adaptation", "languages",
                     "transfer", "confusion_matrix", "auto")
TOLERANCE = 1e-6


def _cpuinfo() -> dict:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_kind() -> str:
    """What decides float results on a CPU: the vendor and the vector ISA torch dispatches to."""
    import torch

    return f"{_cpuinfo().get('vendor_id', platform.machine())}-{torch.backends.cpu.get_cpu_capability()}"


def cpu_model() -> str:
    """``<family>.<model>`` of this CPU (``unknown`` where /proc/cpuinfo does not say)."""
    fields = _cpuinfo()
    return f"{fields.get('cpu family', 'unknown')}.{fields.get('model', 'unknown')}"


def fixture_folder(recording: bool = False) -> Path:
    """The fixture this machine compares with (or records into): its CPU model's folder, else
    its kind's, else the first machines' (``tests/golden/*.json``)."""
    own_model = GOLDEN / f"{cpu_kind()}-{cpu_model()}"
    for folder in (own_model, GOLDEN / cpu_kind()):
        if folder.is_dir():
            return folder
    return own_model if recording else GOLDEN


def write_assets(folder: Path, tiny_data: dict) -> dict:
    """The tiny files every case reads, written once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"source": tiny_data["source"], "target": tiny_data["target"],
            "topics": write_topic_data(folder, tiny_data),
            "renamed": write_renamed_data(folder, tiny_data),
            "shifted": write_shifted_data(folder, tiny_data),
            "languages": write_languages(folder, tiny_data)}


def write_languages(folder: Path, tiny_data: dict) -> Path:
    """The tiny rows in three made-up languages (en: airline rows; xx, yy: apple rows)."""
    source = list(csv.DictReader(Path(tiny_data["source"]).open()))
    target = [json.loads(line) for line in Path(tiny_data["target"]).read_text().splitlines()]
    rows = [{**r, "language": "en", "dialog": f"d{i}"} for i, r in enumerate(source)]
    rows += [{**r, "language": "xx" if i % 2 else "yy", "dialog": f"d{i}"} for i, r in enumerate(target)]
    path = Path(folder) / "languages.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label", "domain", "language", "dialog"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _files(path, **extra) -> dict:
    return {"files": {"train": str(path)}, **extra}


def _languages(assets, languages, **extra) -> dict:
    return _files(assets["languages"], group_column="language", split_key="dialog",
                  filter={"language": languages}, **extra)


def case_overrides(name: str, assets: dict, tiny_model: Path, run_dir: Path) -> dict:
    """Overrides that put shipped config ``name`` on the tiny model and data."""
    common = {
        "model.name_or_path": str(tiny_model), "model.max_length": 32,
        "training.max_steps": 10, "training.eval_strategy": "steps", "training.eval_steps": 5,
        "training.learning_rate": 1e-2,
        "training.batch_size": 8, "training.eval_batch_size": 16, "training.logging_steps": 1,
        "output.dir": str(run_dir), "output.report": False,
    }
    source = _files(assets["source"], group_column="domain")
    target = _files(assets["target"], group_column="domain")
    data = {
        "domain_adaptation": {"data.source": source, "data.target": target},
        "domain_adaptation_sequential": {"data.source": source, "data.target": {**target, "k_shot": 4}},
        "domain_adaptation_multi_task": {"data.source": source, "data.target": {**target, "k_shot": 4}},
        "domain_adaptation_auto": {"data.source": source, "data.target": {**target, "k_shot": 4}},
        "domain_adaptation_linear_probe": {"data.source": source, "data.target": {**target, "k_shot": 4}},
        "domain_adaptation_tapt": {"data.source": source, "data.target": target},
        "domain_adaptation_dapt": {"data.source": source, "data.target": target,
                                   "data.unlabeled": _files(assets["source"])},
        "domain_adaptation_dann": {"data.source": source, "data.target": target},
        "domain_adaptation_coral": {"data.source": source, "data.target": target},
        # The tiny model's 10-step classifier is unsure and favours one class: a threshold it
        # reaches and a cap per class, so the rounds train on pseudo-labels (with the shipped
        # settings they would hold none).
        "domain_adaptation_self_training": {"data.source": source, "data.target": target,
                                            "strategy.pseudo_label_threshold": 0.34,
                                            "strategy.pseudo_labels_per_class": 8},
        "domain_adaptation_semi_supervised": {"data.source": source, "data.target": {**target, "k_shot": 4}},
        "domain_adaptation_baselines": {"data.source": source, "data.target": {**target, "k_shot": 4},
                                        "strategy.baselines": ["target_only", "source_only"]},
        "cross_lingual": {"data.source": _languages(assets, ["en"]),
                          "data.target": _languages(assets, ["xx", "yy"])},
        "cross_lingual_few_shot": {"data.source": _languages(assets, ["en"]),
                                   "data.target": _languages(assets, ["xx", "yy"], k_shot=4)},
        "cross_lingual_multi_source": {"data.source": _languages(assets, ["en", "xx"]),
                                       "data.target": _languages(assets, ["yy"])},
        "label_space": {"data.source": source,
                        "data.target": _files(assets["topics"], label_column="topic", k_shot=8)},
        "label_space_lp_ft": {"data.source": source,
                              "data.target": _files(assets["topics"], label_column="topic", k_shot=8)},
        "label_space_label_map": {"data.source": source,
                                  "data.target": _files(assets["renamed"], k_shot=8)},
        "conditional_shift": {"data.source": source,
                              "data.target": _files(assets["shifted"], group_column="policy")},
        "conditional_shift_l2sp": {"data.source": source,
                                   "data.target": _files(assets["shifted"], group_column="policy")},
    }[name]
    return {**common, **data}


# Case name -> shipped config it starts from (baselines: a case of its own on top of one).
CASES = {
    "domain_adaptation": "domain_adaptation", "domain_adaptation_sequential": "domain_adaptation_sequential",
    "domain_adaptation_multi_task": "domain_adaptation_multi_task",
    "domain_adaptation_auto": "domain_adaptation_auto",
    "domain_adaptation_linear_probe": "domain_adaptation_linear_probe",
    "domain_adaptation_tapt": "domain_adaptation_tapt", "domain_adaptation_dapt": "domain_adaptation_dapt",
    "domain_adaptation_dann": "domain_adaptation_dann", "domain_adaptation_coral": "domain_adaptation_coral",
    "domain_adaptation_self_training": "domain_adaptation_self_training",
    "domain_adaptation_semi_supervised": "domain_adaptation_semi_supervised",
    "domain_adaptation_baselines": "domain_adaptation_sequential",
    "cross_lingual": "cross_lingual", "cross_lingual_few_shot": "cross_lingual_few_shot",
    "cross_lingual_multi_source": "cross_lingual_multi_source",
    "label_space": "label_space", "label_space_lp_ft": "label_space_lp_ft",
    "label_space_label_map": "label_space_label_map",
    "conditional_shift": "conditional_shift", "conditional_shift_l2sp": "conditional_shift_l2sp",
}
# Cases also run under two processes (one launch runs them all): one per scenario, plus the
# strategies that read a second dataset alongside, wrap the model, or pseudo-label the target.
TWO_PROCESS_CASES = ("domain_adaptation_sequential", "domain_adaptation_dann", "cross_lingual_few_shot",
                     "label_space_lp_ft", "conditional_shift_l2sp", "domain_adaptation_self_training")


def recipe_class(config_name: str):
    import hf_transfer

    scenario = config_name.split("_")[0]
    return {"domain": hf_transfer.DomainAdaptationRecipe, "cross": hf_transfer.CrossLingualRecipe,
            "label": hf_transfer.LabelSpaceRecipe, "conditional": hf_transfer.ConditionalShiftRecipe}[scenario]


def run_case(name: str, assets: dict, tiny_model: Path, run_dir: Path, nested: bool = False) -> dict:
    """Run one case in this process; returns its compared sections."""
    from hf_transfer import load_config

    config_name = CASES[name]
    config = load_config(CONFIGS / f"{config_name}.yaml", case_overrides(name, assets, tiny_model, run_dir))
    recipe = recipe_class(config_name)(config)
    # Several cases in one launched process share its process group: only the last may end it.
    recipe.nested = nested
    return compared(recipe.run())


def compared(results: dict) -> dict:
    """The sections of results.json a refactor must reproduce, plus the stages' traces."""
    out = {key: results[key] for key in COMPARED_SECTIONS if key in results}
    out["stages"] = [{"name": s["name"], "steps": s["steps"], "best_step": s["best_step"],
                      "best_metric": s["best_metric"], "history": s["history"]}
                     for s in results["stages"]]
    if "source_model" in results:
        out["source_model_eval"] = results["source_model"].get("eval")
    if "masked_lm" in results:
        out["masked_lm"] = {k: results["masked_lm"][k] for k in ("loss_before", "loss_after")}
    if "self_training" in results:  # which pseudo-labels each round trained on
        out["self_training"] = results["self_training"]["rounds"]
    return out


def differences(expected, actual, path: str = "") -> list[str]:
    """Where two compared structures differ (floats within TOLERANCE count as equal)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing" for k in expected if k not in actual]
        out += [f"{path}.{k}: unexpected" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                out += differences(expected[k], actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items recorded, {len(actual)} now"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{path}[{i}]")]
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) \
                and abs(expected - actual) <= TOLERANCE:
            return []
    elif expected == actual:
        return []
    return [f"{path}: recorded {expected!r}, now {actual!r}"]
