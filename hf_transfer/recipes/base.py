"""The run skeleton every recipe shares: config -> data -> model -> stages -> eval -> outputs.

A recipe subclass names its scenario and strategies and says which training stages a
strategy runs (:meth:`Recipe.stages`) and which labels must be shared. Everything else —
checking the output folder, loading and checking data before any model loads, seeding,
tokenizing, tuning, the Accelerate engine, the eval matrix, ``results.json`` and the saved
classifier — happens here, once.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import datasets
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed

from ..atomic import remove_tree
from ..baselines import NEGATIVE, format_transfer, run_comparison
from ..config import ModelConfig, RunConfig, _choice_problem, format_problems, parse_args
from ..data.labels import LabelSpace
from ..data.loading import label_counts, load_splits
from ..data.tokenize import tokenize
from ..engine import (Engine, Stage, StageResult, _write_json, full_state_dict, make_accelerator,
                      resume_plan, unwrap)
from ..errors import ConfigError, HfTransferError, Preempted
from ..hub import push_run_from_config
from ..modeling import build_on_meta, describe_model, load_classifier_model, load_tokenizer
from ..report import write_report_safely
from ..saving import save_classifier
from ..tuning import apply_tuning, check_tuning
from ..version import __version__

logger = logging.getLogger("hf_transfer")

RESULTS_FILE = "results.json"
# What a run writes into its folder; `--overwrite` replaces these and nothing else.
RUN_OUTPUTS = ("results.json", "model", "checkpoints", "logs", "baselines", "report.md", "report",
               "mlm_encoder")  # mlm_encoder: the encoder adapted by `tapt`/`dapt`


@dataclass
class RunData:
    """Tokenized source and target splits and the label space they share."""

    source: datasets.DatasetDict
    target: datasets.DatasetDict
    labels: LabelSpace
    sizes: dict


class Recipe:
    """Base of the scenario recipes. Subclasses set ``scenario`` and ``strategies`` and
    implement :meth:`stages`."""

    scenario: str = ""
    strategies: tuple[str, ...] = ()
    # Baselines (`strategy.baselines`) this recipe can run, and the strategies that are
    # themselves "the source stage only" (a `source_only` baseline would repeat them).
    baseline_choices: tuple[str, ...] = ("target_only", "source_only")
    source_only_strategies: tuple[str, ...] = ()

    def __init__(self, config: RunConfig):
        self.config = config
        # One message with every problem: the generic settings and this recipe's own rules.
        problems = config.problems()
        if config.strategy.name not in self.strategies:
            problems.append(_choice_problem("strategy.name", config.strategy.name, self.strategies))
        else:
            problems += self.baseline_problems() + self.config_problems()
        if problems:
            raise ConfigError(format_problems(problems))
        self.run_dir = Path(config.output.dir)
        self.results: Optional[dict] = None
        # Set on the nested runs of the baseline comparison (hf_transfer.baselines): which
        # baseline this run is (None: the strategy itself), and that it is nested (no report,
        # no end_training, a one-line summary).
        self.baseline: Optional[str] = None
        self.nested = False

    def config_problems(self) -> list[str]:
        """Hook: this recipe's own rules about the configuration (field named, fix given)."""
        return []

    def baseline_problems(self) -> list[str]:
        s = self.config.strategy
        out = []
        for name in s.baselines:
            if name not in self.baseline_choices:
                out.append(f"`strategy.baselines` has {name!r}, which {type(self).__name__} cannot run: "
                           f"choose from {', '.join(self.baseline_choices)}.")
            elif name == "source_only" and s.name in self.source_only_strategies:
                out.append(f"`strategy.baselines` has `source_only`, but strategy {s.name!r} already "
                           "trains on the source only: drop it (the run itself is that baseline).")
        return out

    # --- what subclasses define -------------------------------------------------------

    def stages(self, data: RunData) -> list[Stage]:
        raise NotImplementedError

    def align_labels(self, source: datasets.DatasetDict, target: datasets.DatasetDict):
        """Hook to restrict source and target before the label check. Default: unchanged."""
        return source, target

    def check_labels(self, source: datasets.DatasetDict, target: datasets.DatasetDict) -> LabelSpace:
        """Default: one shared space; target labels must all be source labels."""
        labels = LabelSpace.from_splits(source)
        labels.require_covers(target, "data.target")
        return labels

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        """Hook: scenario-specific sections added to results.json."""
        return {}

    # --- stages shared by the recipes ----------------------------------------------------

    @property
    def learning_rate(self) -> float:
        return self.config.training.learning_rate_for(self.config.tuning.method)

    def source_stage(self, data: RunData) -> Stage:
        """Train on the labelled source; pick the best checkpoint on `strategy.select_on`."""
        cfg = self.config
        return Stage(name="source", train=data.source["train"], training=cfg.training,
                     learning_rate=self.learning_rate, num_epochs=cfg.training.num_epochs,
                     select_on=f"{cfg.strategy.select_on}/validation")

    def target_stage(self, data: RunData) -> Stage:
        """Continue on the labelled target training data; select on `target/validation`."""
        cfg = self.config.strategy
        return Stage(name="target", train=data.target["train"], training=self.config.training,
                     learning_rate=cfg.target_learning_rate or self.learning_rate,
                     num_epochs=cfg.target_num_epochs, select_on="target/validation")

    def baseline_stages(self, data: RunData) -> list[Stage]:
        """The stages of a nested baseline run (``self.baseline``), from the pretrained encoder.

        ``target_only`` trains on the labelled target data as the strategy's stage named
        ``target`` would (`strategy.target_num_epochs`, `strategy.target_learning_rate`); when
        the strategy has no such stage (it never trains on labelled target data) it gets the
        source stage's budget (`training.num_epochs`, learning rate) instead. ``source_only`` is
        the source stage alone.
        """
        if self.baseline == "source_only":
            return [self.source_stage(data)]
        if any(stage.name == "target" for stage in self.stages(data)):
            return [self.target_stage(data)]
        return [Stage(name="target", train=data.target["train"], training=self.config.training,
                      learning_rate=self.learning_rate, num_epochs=self.config.training.num_epochs,
                      select_on="target/validation")]

    def build_classifier(self, data: RunData, model_config: Optional[ModelConfig] = None):
        """The pretrained encoder (``model_config``, default `model`) with a fresh head for the
        run's labels, tuned by `tuning.method`."""
        cfg = self.config
        model_config = model_config or cfg.model
        # Build the model after seeding, so the new head's initial weights are reproducible.
        set_seed(cfg.training.seed)
        model, new_modules = load_classifier_model(model_config, list(data.labels.names))
        model = apply_tuning(model, cfg.tuning, new_modules)
        logger.info("Model %s, tuning %s: %s", model_config.name_or_path, cfg.tuning.method,
                    describe_model(model))
        return model

    def train_stages(self, engine: Engine, stages: list[Stage], plan: dict, eval_sets: dict,
                     data: RunData) -> tuple[torch.nn.Module, list[StageResult]]:
        """Build the classifier and run ``stages`` on it in order; returns the final model
        and each stage's result. Hook for strategies whose stages need other models."""
        model = self.build_classifier(data)
        results_of_stages: list[StageResult] = []
        for stage in stages:
            model, result = engine.train(stage, model, eval_sets, resume=plan[stage.name])
            results_of_stages.append(result)
        return model, results_of_stages

    # --- the run ------------------------------------------------------------------------

    def run(self) -> dict:
        """Train and evaluate; write ``results.json`` and the model. Returns the results."""
        cfg = self.config
        started = time.perf_counter()
        self._check_output_dir()
        accelerator = self._start()
        with accelerator.main_process_first():
            raw = self._load_data()
            # Architecture only (meta device): a wrong LoRA target fails before weights load.
            check_tuning(build_on_meta(cfg.model, len(raw.labels)), cfg.tuning)
            tokenizer = load_tokenizer(cfg.model)
            data = self._tokenize(raw, tokenizer)
        stages = self.baseline_stages(data) if self.baseline else self.stages(data)
        plan = resume_plan(self.run_dir, [s.name for s in stages], cfg.output.resume_from_checkpoint)
        data_seconds = time.perf_counter() - started

        if cfg.training.log_with:
            accelerator.init_trackers(self.scenario, config=_flat_config(cfg.to_dict()))

        engine = Engine(accelerator, tokenizer, list(data.labels.names), self.run_dir,
                        cfg.training.pad_to_multiple_of)
        eval_sets = self.eval_sets(data)
        model, results_of_stages = self.train_stages(engine, stages, plan, eval_sets, data)
        return self._finish(accelerator, engine, model, tokenizer, data, eval_sets,
                            results_of_stages, started, data_seconds)

    def _start(self) -> Accelerator:
        """The Accelerator of the run, logging set up, seeds fixed."""
        cfg = self.config
        accelerator = make_accelerator(
            mixed_precision=cfg.training.mixed_precision,
            log_with=cfg.training.log_with or None,
            project_dir=str(self.run_dir / "logs"),
            # Shuffling seeded per epoch: resumed runs see the same batches.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True,
                                                      data_seed=cfg.training.seed),
        )
        _setup_logging(accelerator)
        set_seed(cfg.training.seed)
        return accelerator

    def save_model(self, model, tokenizer, data: RunData, state_dict: Optional[dict]) -> None:
        """Write the final classifier (main process). ``model`` is unwrapped."""
        cfg = self.config
        save_classifier(model, tokenizer, self.run_dir / "model", data.labels.names,
                        cfg.model.name_or_path, cfg.model.max_length, cfg.tuning.method,
                        state_dict=state_dict, text_prefix=cfg.model.text_prefix)

    def _finish(self, accelerator, engine: Engine, model, tokenizer, data: RunData,
                eval_sets: dict, results_of_stages: list[StageResult], started: float,
                data_seconds: float) -> dict:
        """Final evaluation, results.json, the saved model, the optional push."""
        cfg = self.config
        eval_started = time.perf_counter()
        # The prepared (DDP/FSDP) model: each process evaluates its shard of every split.
        matrix = engine.evaluate(model, eval_sets, cfg.training.eval_batch_size)
        eval_seconds = time.perf_counter() - eval_started
        # Collective: under FSDP the full weights are gathered before the main process saves.
        state_dict = full_state_dict(accelerator, model) if cfg.output.save_model else None
        results = self._results(data, matrix, results_of_stages, accelerator, {
            "data_seconds": round(data_seconds, 3),
            "train_seconds": round(sum(r.train_seconds for r in results_of_stages), 3),
            "final_eval_seconds": round(eval_seconds, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
            **_peak_memory(accelerator),
        })
        confusion = confusion_of(engine.predictions, list(data.labels.names))
        if confusion is not None:
            results = _insert_after(results, "eval_matrix", "confusion_matrix", confusion)
        if accelerator.is_main_process:
            if cfg.output.save_model:
                self.save_model(unwrap(accelerator, model), tokenizer, data, state_dict)
            _write_json(self.run_dir / RESULTS_FILE, results)
            print(format_summary(results) if not self.nested else _one_line(self, results))
        accelerator.wait_for_everyone()
        self.results = results
        if not self.nested and cfg.strategy.baselines:
            # Nested runs of this recipe (every process takes part), then the verdict.
            transfer = run_comparison(self, results)
            results = _insert_after(results, "confusion_matrix" if confusion else "eval_matrix",
                                    "transfer", transfer)
            self.results = results
            if accelerator.is_main_process:
                _write_json(self.run_dir / RESULTS_FILE, results)
                print(format_transfer(transfer))
                if transfer["verdict"] == NEGATIVE:
                    logger.warning("NEGATIVE TRANSFER: %s The target-only baseline is better; see "
                                   "%s", transfer["summary"], self.run_dir / "report.md")
            accelerator.wait_for_everyone()
        if accelerator.is_main_process and cfg.output.report and not self.nested:
            write_report_safely(self.run_dir, results)
        if not self.nested:  # it destroys the process group that nested runs still share
            accelerator.end_training()
        if cfg.output.push_to_hub and accelerator.is_main_process:  # results.json and model are written
            push_run_from_config(self.run_dir, cfg.output)
        return results

    def eval_sets(self, data: RunData) -> dict[str, datasets.Dataset]:
        """Every split that is not trained on, named ``role/split``."""
        return {f"{role}/{split}": getattr(data, role)[split]
                for role in ("source", "target") for split in ("validation", "test")}

    # --- steps of the run ---------------------------------------------------------------

    def _check_output_dir(self) -> None:
        out = self.config.output
        previous = [name for name in RUN_OUTPUTS if (self.run_dir / name).exists()]
        if not previous or out.resume_from_checkpoint:
            if out.resume_from_checkpoint and not (self.run_dir / "checkpoints").is_dir():
                raise ConfigError(
                    f"`output.resume_from_checkpoint` is set but {str(self.run_dir)!r} has no "
                    "checkpoints/ folder: check `output.dir`, or drop the option to start anew."
                )
            return
        if not out.overwrite:
            raise ConfigError(
                f"`output.dir` {str(self.run_dir)!r} already holds a run ({', '.join(previous)}). "
                "Pass `--output.overwrite true` to replace it, `--output.resume_from_checkpoint "
                "latest` to continue it, or choose another `--output.dir`."
            )
        _remove_run_outputs(self.run_dir)

    def _load_data(self) -> RunData:
        cfg = self.config
        seed = cfg.training.seed
        source = load_splits(cfg.data.source, seed, "source")
        target = load_splits(cfg.data.target, seed, "target")
        source, target = self.align_labels(source, target)
        labels = self.check_labels(source, target)
        sizes = {role: {"splits": {k: len(v) for k, v in dd.items()},
                        "label_counts": {k: label_counts(v) for k, v in dd.items()}}
                 for role, dd in (("source", source), ("target", target))}
        return RunData(source, target, labels, sizes)

    def _tokenize(self, raw: RunData, tokenizer) -> RunData:
        def prepare(dd: datasets.DatasetDict) -> datasets.DatasetDict:
            # `group` stays: evaluation reports per group; the loaders never feed it to the model.
            return tokenize(raw.labels.encode(dd), tokenizer, self.config.model.max_length,
                            self.config.model.text_prefix)

        return RunData(prepare(raw.source), prepare(raw.target), raw.labels, raw.sizes)

    def _results(self, data: RunData, matrix: dict, stages: list[StageResult], accelerator,
                 timings: dict) -> dict:
        cfg = self.config
        return {
            "hf_transfer_version": __version__,
            "scenario": self.scenario,
            "strategy": cfg.strategy.name,
            "labels": list(data.labels.names),
            "eval_matrix": matrix,
            **self.extra_results(data, matrix),
            "best_step": {s.name: s.best_step for s in stages},
            "stages": [asdict(s) for s in stages],
            "data": data.sizes,
            "timings": timings,
            "environment": {
                "num_processes": accelerator.num_processes,
                "distributed_type": str(accelerator.distributed_type.value),
                "mixed_precision": accelerator.mixed_precision,
                "device": str(accelerator.device),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": _version("transformers"),
                "accelerate": _version("accelerate"),
                "peft": _version("peft"),
                "datasets": datasets.__version__,
            },
            "config": cfg.to_dict(),
        }


def run_from_command_line(recipe_class: type, default_config: Path, description: str,
                          argv: Optional[list] = None) -> int:
    """What every script in recipes/ does: parse the command line over the script's default
    YAML, run the recipe, and turn a user-fixable error into one message and exit code 2
    (75 after SIGTERM, once a checkpoint is saved: resume with `--output.resume_from_checkpoint
    latest`)."""
    try:
        config = parse_args(argv, default_config=default_config, description=description)
        recipe_class(config).run()
    except HfTransferError as err:
        print(f"{'stopped' if isinstance(err, Preempted) else 'error'}: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def _remove_run_outputs(run_dir: Path) -> None:
    # Renamed away before deletion: a kill midway never leaves a half-deleted checkpoint.
    for name in RUN_OUTPUTS:
        remove_tree(run_dir / name)


def _peak_memory(accelerator) -> dict:
    """Peak resident memory of this process (and peak GPU memory on CUDA), in MiB."""
    import resource

    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)}
    if accelerator.device.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(accelerator.device) / 2**20, 1)
    return out


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _flat_config(data: dict, prefix: str = "") -> dict:
    """Trackers take flat scalar values."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("files", "filter"):
            out.update(_flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _setup_logging(accelerator: Accelerator) -> None:
    """INFO from hf_transfer on the main process only; libraries stay at warnings."""
    import transformers

    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("hf_transfer").setLevel(level)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()  # our own log lines say what the data steps did
    # PEFT still calls a transformers API that warns about its own deprecation.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def confusion_of(predictions: dict, labels: list[str]) -> Optional[dict]:
    """The confusion matrix of ``target/test`` (else the first ``*/test`` split) from the
    final evaluation's predictions: rows are the gold labels, columns the predicted ones."""
    names = [n for n in predictions if n == "target/test"] or [n for n in predictions if n.endswith("/test")]
    if not names:
        return None
    predicted, gold = predictions[names[0]]
    matrix = [[0] * len(labels) for _ in labels]
    for p, g in zip(predicted, gold):
        matrix[g][p] += 1
    return {"split": names[0], "labels": list(labels), "rows": "gold", "columns": "predicted",
            "matrix": matrix}


def _insert_after(data: dict, key: str, new_key: str, value) -> dict:
    out = {}
    for k, v in data.items():
        if k != new_key:
            out[k] = v
        if k == key:
            out[new_key] = value
    if new_key not in out:
        out[new_key] = value
    return out


def _one_line(recipe: "Recipe", results: dict) -> str:
    row = results["eval_matrix"].get("target/test") or next(iter(results["eval_matrix"].values()))
    arm = recipe.baseline or "transfer"
    return (f"[{arm}, seed {recipe.config.training.seed}] target/test accuracy {row['accuracy']:.4f}, "
            f"macro-F1 {row['macro_f1']:.4f} ({recipe.run_dir})")


def format_summary(results: dict) -> str:
    """A small table of the eval matrix, printed at the end of a run."""
    rows = [f"{'split':<32} {'n':>6} {'accuracy':>9} {'macro_f1':>9}"]
    for name, m in results["eval_matrix"].items():
        rows.append(f"{name:<32} {m['n']:>6} {m['accuracy']:>9.4f} {m['macro_f1']:>9.4f}")
    header = f"{results['scenario']} / {results['strategy']}  (best step: {results['best_step']})"
    return "\n".join([header, *rows])
