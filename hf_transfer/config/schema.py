"""The configuration's schema: one dataclass per section, each field with its help text and
each section checking its own values (``problems(path)``: every problem named with its field
and fix, collected, never raised one at a time)."""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError

TUNING_METHODS = ("full", "lora", "frozen", "top_k")
MIXED_PRECISION = ("no", "fp16", "bf16")
MODEL_DTYPES = ("float32", "bfloat16", "float16")
POOLINGS = ("auto", "cls", "mean", "last")
# Tuning methods that leave the pretrained weights frozen: only those may hold them in half
# precision (`model.dtype`); what trains is always float32.
FROZEN_BASE_METHODS = ("lora", "frozen")
EVAL_STRATEGIES = ("epoch", "steps")
METRICS_FOR_BEST = ("accuracy", "macro_f1")
DATASET_ORIGINS = ("builtin", "hub_id", "files")
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
ON_NONFINITE = ("stop", "skip")
# Baselines a run can train beside its strategy (the "when to transfer" comparison).
BASELINES = ("target_only", "source_only")
# A Hub repo id, `owner/name`: letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 chars.
REPO_ID_PATTERN = re.compile(r"(?!.*(--|\.\.))(?=.{3,96}$)[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# Learning rates that work well for each tuning method when the user gives none:
# adapters and fresh heads need a much larger step than full fine-tuning.
DEFAULT_LEARNING_RATES = {"full": 3e-5, "top_k": 5e-5, "lora": 5e-4, "frozen": 1e-3}


def setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field that carries its help text (shown by ``--help``)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def _copy(value: Any) -> Any:
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) else type(value)(value)


@dataclass
class ModelConfig:
    name_or_path: str = setting(
        "sentence-transformers/all-MiniLM-L6-v2",
        "Hub id or local folder of a pretrained encoder. Known ids that ship inside an installed "
        "Python package (see `hf_transfer.modeling.PACKAGED_MODELS`) load offline from there.",
    )
    revision: Optional[str] = setting(None, "Hub revision (branch, tag or commit) of the model.")
    max_length: int = setting(128, "Texts are truncated to this many tokens.")
    text_prefix: str = setting(
        "", "Prepended to every text before tokenizing (e5 models expect `query: `)."
    )
    trust_remote_code: bool = setting(
        False, "Allow code from the model's repository to run. Leave off unless you trust it."
    )
    allow_pickle: bool = setting(
        False, "Allow weights in pickle format (`pytorch_model.bin`) when a model has no "
        "safetensors. Unpickling a file can run arbitrary code: turn on only for models you trust."
    )
    dtype: str = setting(
        "float32", "Precision the pretrained weights are held in, whatever the checkpoint's dtype "
        "(a half-precision checkpoint is upcast). `bfloat16`/`float16` halve the memory of the "
        "frozen base with `tuning.method` lora or frozen; what trains stays float32 (master "
        "weights). Mixed-precision compute is `training.mixed_precision`'s job."
    )
    pooling: str = setting(
        "auto", "The sentence representation the classifier's head reads: `cls` the architecture's "
        "own head (BERT: the pooler over [CLS]; decoders: the last token), `mean` the masked mean "
        "of the last hidden states, `last` the last token. `auto`: what the model folder's "
        "sentence-transformers pooling config says (all-MiniLM-L6-v2, e5: mean), else `cls`."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.pooling not in POOLINGS:
            out.append(choice_problem(f"{path}.pooling", self.pooling, POOLINGS))
        if not self.name_or_path:
            out.append(f"`{path}.name_or_path` is empty: give a Hub id or a local model folder.")
        if self.max_length < 8:
            out.append(f"`{path}.max_length` is {self.max_length}: use at least 8 tokens.")
        if self.dtype not in MODEL_DTYPES:
            out.append(choice_problem(f"{path}.dtype", self.dtype, MODEL_DTYPES))
        return out


@dataclass
class DatasetConfig:
    builtin: Optional[str] = setting(
        None, "Name of a dataset built into hf_transfer (`tweets`). Set exactly one of "
        "`builtin`, `hub_id` and `files`."
    )
    hub_id: Optional[str] = setting(None, "Hub dataset id, loaded with `datasets.load_dataset`.")
    hub_config: Optional[str] = setting(None, "Configuration (subset) name of the Hub dataset.")
    files: Optional[dict] = setting(
        None, "Local files by split, e.g. {train: a.csv, test: b.csv}; csv, json/jsonl, parquet."
    )
    text_column: str = setting("text", "Column holding the document text.")
    label_column: str = setting("label", "Column holding the label (names or integers).")
    group_column: Optional[str] = setting(
        None, "Optional column (e.g. `domain`, `language`) reported as extra rows of the eval matrix."
    )
    filter: Optional[dict] = setting(
        None, "Keep only rows whose column equals a value or is in a list, e.g. {domain: airline}."
    )
    train_split: str = setting("train", "Split used for training.")
    validation_split: str = setting(
        "validation", "Split used for model selection; carved from train when it does not exist."
    )
    test_split: str = setting("test", "Held-out split; carved from train when it does not exist.")
    split_key: Optional[str] = setting(
        None, "Column whose value decides the carved split (seeded hash) instead of stratified "
        "sampling: rows sharing a key — e.g. translations of one dialog — land in the same split "
        "in source and target alike, so no test item was seen in training in another form."
    )
    validation_size: float = setting(
        0.1, "Fraction of train carved out (seeded, stratified, identical texts kept together) "
        "when the validation split is missing."
    )
    test_size: float = setting(
        0.2, "Fraction of train carved out (seeded, stratified, identical texts kept together) "
        "when the test split is missing."
    )
    k_shot: Optional[int] = setting(
        None, "Keep only k training examples per class (seeded) — per class and group when "
        "`group_column` is set. Null keeps all."
    )
    validation_k_shot: Optional[int] = setting(
        None, "With `k_shot` and a validation split carved from train: labelled validation "
        "examples kept per class (at most what a class has). Null: `k_shot`, so few-shot "
        "selection reads no more labels than training does (Perez et al. 2021). A validation "
        "split of the data's own is kept whole."
    )
    max_train_samples: Optional[int] = setting(
        None, "Cap on training examples (seeded, stratified sample). Null keeps all."
    )
    max_eval_samples: Optional[int] = setting(
        None, "Cap on examples in each evaluation split (seeded, stratified sample)."
    )
    encoding: str = setting(
        "utf-8", "Text encoding of csv `files` (e.g. latin-1, cp1252); a file that does not "
        "decode is an error, never silently altered. JSON must be UTF-8; parquet has none."
    )

    def is_set(self) -> bool:
        """Whether the dataset names where it comes from (an optional dataset may not)."""
        return any(getattr(self, name) for name in DATASET_ORIGINS)

    def problems(self, path: str) -> list[str]:
        out = []
        sources = [name for name in DATASET_ORIGINS if getattr(self, name)]
        if len(sources) != 1:
            found = ", ".join(f"`{path}.{s}`" for s in sources) or "none"
            options = ", ".join(f"`{path}.{s}`" for s in DATASET_ORIGINS)
            out.append(f"`{path}` needs exactly one of {options} (found: {found}).")
        if self.files is not None:
            for split, paths in self.files.items():
                for file in paths if isinstance(paths, list) else [paths]:
                    if isinstance(file, str) and Path(file).is_dir():
                        out.append(f"`{path}.files.{split}`: {file!r} is a folder; name the data "
                                   "file(s) in it (a list of files is fine).")
                    elif not isinstance(file, str) or not Path(file).is_file():
                        out.append(f"`{path}.files.{split}`: no such file {file!r}.")
        if self.label_column == self.text_column:
            out.append(f"`{path}.label_column` and `{path}.text_column` are both {self.text_column!r}: "
                       "name the column that holds the labels.")
        try:
            codecs.lookup(self.encoding)
        except (LookupError, ValueError):  # ValueError: e.g. a NUL in the name
            out.append(f"`{path}.encoding` is {self.encoding!r}: not a text encoding Python knows "
                       "(e.g. utf-8, latin-1, cp1252).")
        if self.filter is not None and not all(isinstance(k, str) for k in self.filter):
            out.append(f"`{path}.filter` keys must be column names.")
        for name in ("validation_size", "test_size"):
            value = getattr(self, name)
            if not 0 < value < 1:
                out.append(f"`{path}.{name}` is {value}: use a fraction between 0 and 1.")
        if self.validation_size + self.test_size >= 1:
            out.append(
                f"`{path}.validation_size` + `{path}.test_size` must leave data for training."
            )
        if self.validation_k_shot is not None and self.k_shot is None:
            out.append(f"`{path}.validation_k_shot` is set but `{path}.k_shot` is not: it sizes the "
                       "carved validation split of a few-shot dataset. Set `k_shot`, or remove it.")
        for name in ("k_shot", "validation_k_shot", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                out.append(f"`{path}.{name}` is {value}: use a positive number or null.")
        return out


@dataclass
class DataConfig:
    source: DatasetConfig = setting(
        DatasetConfig(builtin="tweets", filter={"domain": "airline"}, group_column="domain"),
        "The labelled source dataset.",
    )
    target: DatasetConfig = setting(
        DatasetConfig(builtin="tweets", filter={"domain": "apple"}, group_column="domain"),
        "The target dataset; transfer is measured on its test split.",
    )
    unlabeled: DatasetConfig = setting(
        DatasetConfig(), "`dapt`: an unlabelled text corpus for masked-LM pretraining (e.g. "
        "{builtin: tweets, filter: {domain: apple}}). Text only: `text_column`, `filter`, "
        "`train_split` and `max_train_samples` (a seeded random sample) apply; labels are never "
        "read. Texts also in the target's validation or test split are dropped. Unset otherwise.",
    )

    target_unlabeled: DatasetConfig = setting(
        DatasetConfig(), "Unlabelled text of the target domain (the same fields as "
        "`data.unlabeled`), read by every strategy that learns from the target's text (`tapt`, "
        "`dann`, `coral`, `self_training`, `strategy.label_shift`). Unset: the target training "
        "rows `k_shot`/`max_train_samples` left out, labels dropped; without those, the target's "
        "training split, labels dropped. Texts also in the target's validation or test split "
        "are dropped.",
    )

    def problems(self, path: str) -> list[str]:
        out = self.source.problems(f"{path}.source") + self.target.problems(f"{path}.target")
        for role in ("unlabeled", "target_unlabeled"):
            corpus = getattr(self, role)
            if not corpus.is_set():
                continue
            out += corpus.problems(f"{path}.{role}")
            label_fields = [name for name in ("k_shot", "validation_k_shot", "group_column", "split_key")
                            if getattr(corpus, name) is not None]
            if corpus.label_column != DatasetConfig.label_column:
                label_fields.append("label_column")
            for name in label_fields:
                out.append(f"`{path}.{role}.{name}` is set, but unlabelled text has no labels or "
                           "groups (they are never read): remove it.")
        return out


@dataclass
class TuningConfig:
    method: str = setting(
        "lora", "Which parameters train: `full`, `lora` (adapters + head), `frozen` (head only), "
        "`top_k` (last k encoder layers + head)."
    )
    lora_r: int = setting(8, "LoRA rank.")
    lora_alpha: int = setting(16, "LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = setting(0.1, "Dropout on the LoRA branch.")
    lora_target_modules: Optional[list] = setting(
        None, "Module names LoRA wraps; null picks them from the architecture; [all-linear] "
        "wraps every linear layer but the head."
    )
    top_k_layers: int = setting(2, "For `top_k`: how many of the last encoder layers train.")

    def problems(self, path: str) -> list[str]:
        out = []
        if self.method not in TUNING_METHODS:
            out.append(choice_problem(f"{path}.method", self.method, TUNING_METHODS))
        if self.lora_r < 1:
            out.append(f"`{path}.lora_r` is {self.lora_r}: use a rank of at least 1.")
        if not 0 <= self.lora_dropout < 1:
            out.append(f"`{path}.lora_dropout` is {self.lora_dropout}: use a value in [0, 1).")
        if self.top_k_layers < 1:
            out.append(f"`{path}.top_k_layers` is {self.top_k_layers}: use at least 1.")
        return out


@dataclass
class LearningRates:
    """The peak learning rate of each tuning method: switching `tuning.method` switches the
    rate with it (a LoRA rate would wreck full fine-tuning), unless `training.learning_rate`
    sets one for every method."""

    full: float = setting(DEFAULT_LEARNING_RATES["full"], "Peak learning rate of `full` tuning.")
    lora: float = setting(DEFAULT_LEARNING_RATES["lora"], "Peak learning rate of `lora` tuning.")
    frozen: float = setting(DEFAULT_LEARNING_RATES["frozen"], "Peak learning rate of `frozen` tuning.")
    top_k: float = setting(DEFAULT_LEARNING_RATES["top_k"], "Peak learning rate of `top_k` tuning.")

    def problems(self, path: str) -> list[str]:
        return [f"`{path}.{method}` is {getattr(self, method)}: use a positive value."
                for method in TUNING_METHODS if getattr(self, method) <= 0]


@dataclass
class TrainingConfig:
    seed: int = setting(42, "Seed for data sampling, head initialisation, dropout and shuffling.")
    num_epochs: float = setting(1, "Training epochs (fractions allowed).")
    max_steps: Optional[int] = setting(None, "Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = setting(32, "Training batch size per process.")
    eval_batch_size: int = setting(128, "Evaluation batch size per process.")
    gradient_accumulation_steps: int = setting(1, "Micro-batches per optimizer step.")
    group_by_length: bool = setting(
        True, "Batch training rows of similar token length (seeded, re-shuffled every epoch): "
        "far less padding on short texts. False: plain random batches.")
    pad_to_multiple_of: Optional[int] = setting(
        None, "Pad each batch to a multiple of this many tokens (8 suits GPU tensor cores and "
        "`torch.compile`: few distinct shapes); 1 pads to the longest row only; null: 8 on a "
        "CUDA GPU, else 1.")
    learning_rate: Optional[float] = setting(
        None, "Peak learning rate for whichever tuning method runs; null takes the method's own "
        "from `training.learning_rates`."
    )
    learning_rates: LearningRates = setting(
        LearningRates(), "Peak learning rate per tuning method (when `training.learning_rate` is null)."
    )
    weight_decay: float = setting(0.01, "AdamW weight decay (not applied to biases and norms).")
    lr_scheduler: str = setting("linear", f"Learning-rate schedule: {', '.join(LR_SCHEDULERS)}.")
    warmup_ratio: float = setting(0.1, "Fraction of optimizer steps spent warming up.")
    max_grad_norm: Optional[float] = setting(1.0, "Gradient clipping norm; null disables clipping.")
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass instead of keeping them: much less "
        "memory for long texts or large models, about a third more compute; the same numbers.")
    eval_strategy: str = setting("epoch", "Evaluate (and checkpoint) every `epoch` or every `eval_steps`.")
    eval_steps: int = setting(100, "Optimizer steps between evaluations when eval_strategy is `steps`.")
    metric_for_best: str = setting("macro_f1", "Metric that picks the best checkpoint: accuracy, macro_f1.")
    early_stopping_patience: Optional[int] = setting(
        None, "Stop after this many evaluations without improvement; null never stops early."
    )
    save_total_limit: int = setting(
        2, "Checkpoints kept on disk per stage (the best one is always kept)."
    )
    mixed_precision: Optional[str] = setting(
        None, "no, fp16 or bf16; null takes it from the accelerate config (`accelerate launch`)."
    )
    log_with: list = setting([], "Trackers for Accelerate, e.g. [tensorboard].")
    logging_steps: int = setting(10, "Optimizer steps between training-loss log lines.")
    on_nonfinite: str = setting(
        "stop", "A NaN/inf loss or gradient: `stop` (error naming the stage and step; the last "
        "checkpoint stays the last good one) or `skip` (drop that optimizer step, count it)."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        positive = ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "eval_steps",
                    "logging_steps", "save_total_limit")
        for name in positive:
            if getattr(self, name) < 1:
                out.append(f"`{path}.{name}` is {getattr(self, name)}: use a positive integer.")
        if self.num_epochs <= 0 and self.max_steps is None:
            out.append(f"`{path}.num_epochs` is {self.num_epochs}: train for more than 0 epochs.")
        if self.max_steps is not None and self.max_steps < 1:
            out.append(f"`{path}.max_steps` is {self.max_steps}: use a positive number or null.")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            out.append(f"`{path}.pad_to_multiple_of` is {self.pad_to_multiple_of}: use a positive "
                       "integer (e.g. 8) or null.")
        if self.learning_rate is not None and self.learning_rate <= 0:
            out.append(f"`{path}.learning_rate` is {self.learning_rate}: use a positive value.")
        out += self.learning_rates.problems(f"{path}.learning_rates")
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"`{path}.warmup_ratio` is {self.warmup_ratio}: use a fraction in [0, 1).")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            out.append(f"`{path}.early_stopping_patience` must be at least 1 or null.")
        out += _choice_problems(path, self, {
            "lr_scheduler": LR_SCHEDULERS, "eval_strategy": EVAL_STRATEGIES,
            "metric_for_best": METRICS_FOR_BEST, "on_nonfinite": ON_NONFINITE,
        })
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            out.append(choice_problem(f"{path}.mixed_precision", self.mixed_precision, MIXED_PRECISION))
        return out

    def learning_rate_for(self, method: str) -> float:
        return self.learning_rate if self.learning_rate is not None else getattr(self.learning_rates, method)

    def learning_rate_source(self, method: str) -> str:
        """The setting that gives ``method``'s learning rate (for messages)."""
        return "training.learning_rate" if self.learning_rate is not None else f"training.learning_rates.{method}"


LABEL_SHIFTS = ("none", "mean", "em")


@dataclass
class StrategyConfig:
    name: Any = setting(
        "source_only", "Transfer strategy; the recipe lists the ones it knows. A list composes "
        "strategies, run in order on one model, each with its own settings: `[tapt, sequential]` "
        "(masked-LM on the target's text, then source, then the labelled target examples), "
        "`[dann, sequential]`, `[coral, multi_task]`, `[sequential, self_training]`. On the command "
        "line: `--strategy.name [tapt,sequential]`.")
    select_on: str = setting(
        "source", "Which validation split picks the best checkpoint of the source stage: "
        "`source`, or `target` (uses labelled target data; source-language selection is known "
        "to mislead for other languages)."
    )
    label_shift: str = setting(
        "none", "Strategies that train on the source labels only: correct the classifier for the "
        "target's label distribution, estimated from the target's unlabelled training texts after "
        "calibrating on the source validation split: `mean` (the calibrated posteriors' mean) or "
        "`em` (Saerens et al. 2002); folded into the output layer, so the saved model carries it. "
        "`none` keeps the source's. See docs/recipes.md."
    )
    source_model: Optional[str] = setting(
        None, "Label-space/conditional-shift recipes: the source classifier to start from — a model "
        "folder saved by hf_transfer (a full model, or a LoRA adapter: merged into its base first) "
        "or any transformers sequence classifier (Hub id or folder). Null: train the source stage "
        "first, from `model.name_or_path` on `data.source`."
    )
    evaluate_source: bool = setting(
        True, "Label-space/conditional-shift recipes: evaluate the source task on `data.source` "
        "(its labels must be the source classifier's). False: `data.source` is not loaded when "
        "`source_model` is given (no source rows, no forgetting report)."
    )
    # The named strategies' own settings: {strategy: an instance of the options class it
    # registered with} (hf_transfer.strategies). In YAML and on the command line they sit
    # directly under `strategy` (`--strategy.dann_weight 0.5`) and are read once `name` is known.
    options: Any = field(default=None, metadata={"strategy_options": True})
    # --- "when to transfer": baselines run in the same invocation ---
    baselines: list = setting(
        [], "Baselines trained in the same run, each a nested run in `output.dir/baselines/`: "
        "`target_only` (the same encoder and tuning trained only on the labelled target training "
        "data) and, for recipes whose strategy has a target stage, `source_only`. With "
        "`target_only`, results.json gets a `transfer` section: the gain on `target/test` and a "
        "positive/negligible/negative verdict (see docs/transfer.md)."
    )
    baseline_seeds: int = setting(
        1, "Seeds per arm for the baseline comparison: `training.seed`, +1, ... The transfer "
        "strategy itself reruns with the extra seeds too (nested runs, no saved model), so gains "
        "are paired per seed and their spread is measured."
    )

    def __post_init__(self):
        # Each named strategy's options: those given (one options object for one strategy is
        # that strategy's), else its defaults; a strategy no longer named keeps none.
        given = self.options if isinstance(self.options, dict) else \
            ({self.chain[0]: self.options} if self.options is not None and len(self.chain) == 1 else {})
        registry = strategy_registry()
        self.options = {name: given.get(name) if isinstance(given.get(name), type(registry.options_for(name)))
                        else registry.options_for(name) for name in self.chain}

    @property
    def chain(self) -> tuple[str, ...]:
        """The strategies this run composes, in order (one for a plain name)."""
        names = self.name if isinstance(self.name, (list, tuple)) else [self.name]
        return tuple(str(n) for n in names)

    @property
    def label(self) -> str:
        """``tapt+sequential`` for a composition: folder names and summaries."""
        return "+".join(self.chain)

    def problems(self, path: str) -> list[str]:
        out = _choice_problems(path, self, {"select_on": ("source", "target"), "label_shift": LABEL_SHIFTS})
        # Whether `name` is a strategy of the scenario is the recipe's check (it knows which).
        if not self.chain:
            out.append(f"`{path}.name` is an empty list: name a strategy, or a list of them to compose.")
        seen = set()
        for options in self.options.values():
            if id(options) not in seen:
                seen.add(id(options))
                out += options.problems(path)
        if self.source_model is not None and not self.source_model.strip():
            out.append(f"`{path}.source_model` is empty: give a model folder or Hub id, or null.")
        for name in self.baselines:
            if name not in BASELINES:
                out.append(choice_problem(f"{path}.baselines", name, BASELINES))
        if len(set(map(str, self.baselines))) != len(self.baselines):
            out.append(f"`{path}.baselines` lists a baseline twice: {self.baselines}.")
        if self.baseline_seeds < 1:
            out.append(f"`{path}.baseline_seeds` is {self.baseline_seeds}: use at least 1.")
        elif self.baseline_seeds > 1 and not self.baselines:
            out.append(f"`{path}.baseline_seeds` is {self.baseline_seeds} but `{path}.baselines` is "
                       "empty: name the baselines to compare with, e.g. `[target_only]`.")
        return out


@dataclass
class OutputConfig:
    dir: str = setting("outputs/domain_adaptation", "Run folder: results.json, model, checkpoints.")
    overwrite: bool = setting(
        False, "Allow writing into a folder that holds a previous run (its files are replaced)."
    )
    resume_from_checkpoint: Optional[str] = setting(
        None, "`latest` or a checkpoint folder to continue an interrupted run in `dir`."
    )
    save_model: bool = setting(True, "Save the final classifier (or adapter) with tokenizer and labels.")
    report: bool = setting(
        True, "Write a human-readable `report.md` with figures in `report/` (eval-matrix heatmap, "
        "learning curves, target-test confusion matrix, baseline comparison) next to results.json. "
        "Figures need matplotlib (`pip install hf-transfer-recipes[report]`)."
    )
    push_to_hub: bool = setting(
        False, "After the run, push the model (or adapter), tokenizer, label names, results.json and "
        "a model card to `hub_repo_id` (main process only). The token comes from HF_TOKEN or "
        "`hf auth login`, never from the config."
    )
    hub_repo_id: Optional[str] = setting(None, "Hub repo to push to, `owner/name`; created if missing.")
    hub_private: bool = setting(False, "Create the Hub repo as private (an existing repo keeps its visibility).")
    hub_revision: Optional[str] = setting(None, "Branch to push to (created if missing); null pushes to main.")

    def problems(self, path: str) -> list[str]:
        out = []
        if not self.dir:
            out.append(f"`{path}.dir` is empty: name an output folder.")
        if self.hub_repo_id is not None and not REPO_ID_PATTERN.fullmatch(self.hub_repo_id):
            out.append(f"`{path}.hub_repo_id` is {self.hub_repo_id!r}: write it as `owner/name` (letters, "
                       "digits, '-', '_', '.'), e.g. `alice/sentiment-lora`.")
        if self.push_to_hub and not self.hub_repo_id:
            out.append(f"`{path}.push_to_hub` is true but `{path}.hub_repo_id` is not set: name the repo, "
                       f"e.g. `--{path}.hub_repo_id alice/sentiment-lora`.")
        if self.push_to_hub and not self.save_model:
            out.append(f"`{path}.push_to_hub` needs `{path}.save_model` true: there is no model to push.")
        if self.hub_revision is not None and not self.hub_revision.strip():
            out.append(f"`{path}.hub_revision` is empty: name a branch or use null for main.")
        return out


@dataclass
class RunConfig:
    model: ModelConfig = setting(ModelConfig(), "The pretrained encoder.")
    data: DataConfig = setting(DataConfig(), "Source and target datasets.")
    tuning: TuningConfig = setting(TuningConfig(), "Which parameters train.")
    training: TrainingConfig = setting(TrainingConfig(), "Optimisation and evaluation.")
    # A factory, not an instance: a StrategyConfig reads the strategy registry when built.
    strategy: StrategyConfig = field(default_factory=StrategyConfig,
                                     metadata={"help": "The transfer strategy and its options."})
    output: OutputConfig = setting(OutputConfig(), "Where results and models go.")

    def problems(self) -> list[str]:
        out = []
        for f in dataclasses.fields(self):
            out += getattr(self, f.name).problems(f.name)
        return out + self.dtype_problems()

    def dtype_problems(self) -> list[str]:
        """Half-precision weights only where they stay frozen: full or top_k tuning would
        update them in half precision, where small updates round away."""
        half = self.model.dtype in MODEL_DTYPES and self.model.dtype != "float32"
        if not half or self.tuning.method in FROZEN_BASE_METHODS:
            return []
        return [f"`model.dtype` is {self.model.dtype}, but `tuning.method` {self.tuning.method} "
                "trains pretrained weights, which need float32 (half precision rounds small updates "
                f"away): use `model.dtype: float32` (and `training.mixed_precision: bf16` for speed), "
                f"or `tuning.method` {' or '.join(FROZEN_BASE_METHODS)}."]

    def validate(self) -> "RunConfig":
        """Raise one ConfigError listing every problem, or return self."""
        problems = self.problems()
        if problems:
            raise ConfigError(format_problems(problems))
        return self

    def to_dict(self) -> dict:
        """Plain data for results.json, trackers and saved configs: secrets redacted. The
        strategy's own settings sit directly under `strategy`, as in the YAML files."""
        data = dataclasses.asdict(self)
        for options in (data["strategy"].pop("options") or {}).values():
            data["strategy"].update(options)
        return redact_secrets(data)


# Key parts that mark a secret (token, password, api_key, ...); `tokenizer` or `max_tokens` do not.
_SECRET_KEY = re.compile(r"(^|[_.\-])(token|password|passwd|secret|api_?key|access_?key|"
                         r"credentials?|auth)($|[_.\-])", re.IGNORECASE)
# Values shaped like a Hub token (or a URL carrying credentials), wherever they appear.
_SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")
REDACTED = "***"


def redact_secrets(data: Any) -> Any:
    """A copy of ``data`` with the value of every key that looks like a secret (``token``,
    ``hub_token``, ``password``, ``api_key``, ...) and every Hub-token-shaped string replaced
    by ``***``. For anything written to disk, sent to a tracker or printed."""
    if isinstance(data, dict):
        return {key: (REDACTED if isinstance(key, str) and _SECRET_KEY.search(key)
                      and data[key] not in (None, "") else redact_secrets(value))
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_secrets(v) for v in data)
    if isinstance(data, str):
        return _SECRET_VALUE.sub(REDACTED, data)
    return data


def choice_problem(path: str, value: Any, choices: tuple) -> str:
    hint = difflib.get_close_matches(str(value), choices, n=1)
    suggestion = f" Did you mean `{hint[0]}`?" if hint else ""
    return f"`{path}` is {value!r}: choose one of {', '.join(choices)}.{suggestion}"


def _choice_problems(path: str, obj: Any, choices: dict[str, tuple]) -> list[str]:
    return [
        choice_problem(f"{path}.{name}", getattr(obj, name), options)
        for name, options in choices.items()
        if getattr(obj, name) not in options
    ]


def format_problems(problems: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{len(problems)} problem(s) in the configuration:\n{lines}"


def strategy_registry():
    # Imported when first needed: the strategies import this module for their options.
    from ..strategies import registry

    return registry
