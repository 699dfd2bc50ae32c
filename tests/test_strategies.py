"""The strategy seam: the registry, what each strategy declares, the docs that list them, and
a strategy written outside the library running through a scenario unchanged."""

import dataclasses
import re
from dataclasses import dataclass

import pytest

from conftest import REPO
from hf_transfer import DomainAdaptationRecipe, Strategy, StrategyOptions, load_config, register_strategy
from hf_transfer.config import setting
from hf_transfer.errors import ConfigError
from hf_transfer.scenarios import (ConditionalShiftRecipe, CrossLingualRecipe, LabelSpaceRecipe)
from hf_transfer.strategies import FAMILIES, registry

SCENARIOS = {
    "domain_adaptation": (DomainAdaptationRecipe, ("source_only", "sequential", "linear_probe", "multi_task", "tapt", "dapt", "dann",
                                                 "coral", "self_training", "auto")),
    "cross_lingual": (CrossLingualRecipe, ("zero_shot", "few_shot", "multi_source", "auto")),
    "label_space": (LabelSpaceRecipe, ("linear_probe", "new_head", "lp_ft", "label_map", "auto")),
    "conditional_shift": (ConditionalShiftRecipe, ("linear_probe", "finetune", "l2sp", "auto")),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_accepts_the_strategies_that_declare_it(scenario):
    recipe_class, names = SCENARIOS[scenario]
    assert recipe_class.strategy_names() == names


@pytest.mark.parametrize("name", registry.names())
def test_every_strategy_declares_what_the_docs_and_help_show(name):
    cls = registry.get(name)
    assert cls.name == name and cls.scenarios and cls.summary and cls.family in FAMILIES
    options = cls.options_class()
    assert dataclasses.is_dataclass(options) and options.problems("strategy") == []
    for f in dataclasses.fields(options):
        assert f.metadata.get("help"), f"{name}: option {f.name} has no help text"


def test_readme_strategy_table_matches_the_registry():
    """One README row per registered strategy, with its family and an existing config file."""
    rows = re.findall(r"^\| ([a-z -]+) \| `(\w+)` \| (\w+) \| .* \| `(\w+\.yaml)` \|$",
                      (REPO / "README.md").read_text(), flags=re.MULTILINE)
    table = {name: (scenario, family, config) for scenario, name, family, config in rows}
    assert sorted(table) == sorted(registry.names())
    for name, (scenario, family, config) in table.items():
        cls = registry.get(name)
        assert scenario.replace(" ", "_").replace("-", "_") in cls.scenarios, name
        assert family == cls.family, name
        assert (REPO / "recipes" / "configs" / config).is_file(), config


def test_option_names_are_unique_across_strategies_unless_shared_by_class():
    """An option name means one thing: one options class defines it (others may inherit it,
    e.g. the target-stage settings every strategy with a target stage has)."""
    by_name = {}
    for name in registry.names():
        cls = registry.get(name).options_class
        for f in dataclasses.fields(cls):
            owner = next(c for c in reversed(cls.__mro__) if f.name in getattr(c, "__dataclass_fields__", {}))
            by_name.setdefault(f.name, set()).add(owner)
    assert all(len(classes) == 1 for classes in by_name.values()), by_name


# --- a strategy written outside the library ------------------------------------------------------


@dataclass
class TwiceOptions(StrategyOptions):
    second_epochs: float = setting(1, "`source_twice`: epochs of the second pass over the source.")

    def problems(self, path):
        return [f"`{path}.second_epochs` must be positive."] if self.second_epochs <= 0 else []


class SourceTwice(Strategy):
    """Two source stages in a row, the second at a tenth of the learning rate."""

    name = "source_twice"
    scenarios = ("domain_adaptation",)
    summary = "the source stage, then a second, gentler pass over the source"
    options_class = TwiceOptions

    def plan(self, ctx, stages):
        first = stages[0]  # the scenario's source stage
        second = dataclasses.replace(first, name="source_again", learning_rate=first.learning_rate / 10,
                                     num_epochs=self.options.second_epochs)
        return [first, second, *stages[1:]]

    def results(self):
        return {"source_twice": {"second_epochs": self.options.second_epochs}}


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setattr(registry, "_STRATEGIES", dict(registry._STRATEGIES))
    register_strategy(SourceTwice)
    return SourceTwice


def test_a_new_strategy_is_one_class_and_one_registration(plugin, tiny_overrides):
    overrides = {**tiny_overrides, "strategy.name": "source_twice", "strategy.second_epochs": 1,
                 "training.num_epochs": 1}
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    assert [s["name"] for s in results["stages"]] == ["source", "source_again"]
    assert results["source_twice"] == {"second_epochs": 1}
    assert results["config"]["strategy"]["second_epochs"] == 1
    with pytest.raises(ConfigError, match="`strategy.second_epochs` must be positive"):
        DomainAdaptationRecipe(load_config(overrides={**overrides, "strategy.second_epochs": 0}))
    # Other scenarios do not accept it.
    with pytest.raises(ConfigError, match="`strategy.name` is 'source_twice': choose one of linear_probe, finetune, l2sp, auto"):
        ConditionalShiftRecipe(load_config(overrides={**overrides}))


def test_registering_a_taken_name_or_options_of_the_wrong_kind_fails(plugin):
    with pytest.raises(ValueError, match="taken"):
        register_strategy(SourceTwice)

    class Bad(Strategy):
        name = "bad_options"
        options_class = dict

    with pytest.raises(TypeError, match="must subclass StrategyOptions"):
        register_strategy(Bad)
