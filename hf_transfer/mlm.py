"""Masked-LM continued pretraining (TAPT/DAPT, Gururangan et al. 2020) on the shared engine.

* :func:`check_masked_lm` — before any weights load: the architecture has a masked-LM class,
  LoRA targets exist, the tokenizer has a mask token.
* :func:`load_masked_lm` + :func:`apply_mlm_tuning` — the encoder with its masked-LM head.
  Encoders saved without one (the packaged sentence-transformers MiniLM is a bare
  ``BertModel``) get a **newly initialised head**, which the MLM stage trains together with
  the encoder (full) or with the LoRA adapters; its decoder stays tied to the word embeddings.
* :class:`MaskedLM` — the stage's ``loss_fn`` (tokens masked with
  ``DataCollatorForLanguageModeling``: 80% [MASK], 10% random, 10% kept; drawn from the run's
  seeded RNG, which checkpoints save, so a resumed run masks like an uninterrupted one) and
  its ``evaluate_fn``: the masked-LM loss on held-out text with masks fixed per row (seed and
  row index), the same at every evaluation and for any number of processes.
* :func:`save_adapted_encoder` — the adapted encoder as a plain pretrained-encoder folder
  (``mlm_encoder/``): the original checkpoint's tensors with the adapted values, the
  tokenizer; pass it as ``model.name_or_path`` to start other runs from it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import datasets
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling

from .atomic import partial_dir, publish_dir
from .config import ModelConfig, TuningConfig
from .data.tokenize import make_loader
from .errors import ConfigError
from .modeling import copy_sentence_pooling, load_model_config, load_pretrained, peft_deprecation_silenced
from .training.loop import evaluation_loader
from .tuning import check_tuning, head_modules, lora_targets

logger = logging.getLogger(__name__)

MLM_TUNING = ("full", "lora")  # methods that change the encoder in the MLM stage


def check_masked_lm(cfg: ModelConfig, tuning: TuningConfig, tokenizer=None) -> None:
    """Raise ConfigError when the MLM stage cannot run (architecture only, on the meta device)."""
    if tuning.method not in MLM_TUNING:
        raise ConfigError(
            f"`tuning.method` {tuning.method!r}: the masked-LM stage of `tapt`/`dapt` would leave "
            f"the encoder unchanged; use one of {', '.join(MLM_TUNING)}."
        )
    config = load_model_config(cfg)
    try:
        with torch.device("meta"):
            model = AutoModelForMaskedLM.from_config(config, trust_remote_code=cfg.trust_remote_code)
    except ValueError as err:
        raise ConfigError(
            f"`model.name_or_path` {cfg.name_or_path!r} ({config.model_type}) has no masked-LM "
            f"class in transformers, which `tapt`/`dapt` need: use `dann` or another encoder. ({err})"
        ) from err
    check_tuning(model, tuning)
    if tokenizer is not None and tokenizer.mask_token is None:
        raise ConfigError(f"The tokenizer of {cfg.name_or_path!r} has no mask token, which masked-LM "
                          "training needs: use `dann` or another encoder.")


def load_masked_lm(cfg: ModelConfig) -> tuple[torch.nn.Module, list[str]]:
    """The pretrained encoder with its masked-LM head; also the names of the weights the
    checkpoint lacked (initialised at random: the head, for encoders saved without one)."""
    config = load_model_config(cfg)
    model, lacked = load_pretrained(AutoModelForMaskedLM, cfg.name_or_path, cfg, config=config,
                                    revision=cfg.revision)
    new = sorted(lacked)
    if new:
        logger.info("The checkpoint has no masked-LM head: a new one is initialised and trained in "
                    "the MLM stage (%s).", ", ".join(new))
    return model, new


def apply_mlm_tuning(model: torch.nn.Module, cfg: TuningConfig) -> torch.nn.Module:
    """``full``: everything trains. ``lora``: LoRA adapters on the attention projections plus
    the masked-LM head, except its decoder, which is tied to the (frozen) word embeddings."""
    if cfg.method == "full":
        return model.requires_grad_(True)
    from peft import LoraConfig, get_peft_model

    with peft_deprecation_silenced():
        peft_model = get_peft_model(model, LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=lora_targets(model.config.model_type, cfg),
        ))
    base = peft_model.get_base_model()
    embeddings = base.get_input_embeddings().weight
    for name in head_modules(base):
        for param in getattr(base, name).parameters():
            if param is not embeddings:
                param.requires_grad_(True)
    return peft_model


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain transformers model: LoRA adapters folded into the weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


class MaskedLM:
    """The masked-LM loss of a stage and its held-out evaluation."""

    def __init__(self, tokenizer, probability: float):
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=probability)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.mask_id = tokenizer.mask_token_id

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             generator: torch.Generator = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked inputs, labels: the original id where masked, -100 elsewhere), on the CPU.
        Special tokens and padding are never masked; at least one token is."""
        ids = input_ids.detach().cpu()
        keep = torch.isin(ids, self.special_ids) | (attention_mask.detach().cpu() == 0)
        self.collator.generator = generator  # None: the global RNG (seeded, checkpointed)
        try:
            inputs, labels = self.collator.torch_mask_tokens(ids.clone(), special_tokens_mask=keep)
        finally:
            self.collator.generator = None
        if not (labels != -100).any() and not keep.all():
            # A loss over no token is NaN: mask the first maskable one.
            position = tuple(torch.nonzero(~keep)[0].tolist())
            labels[position], inputs[position] = ids[position], self.mask_id
        return inputs, labels

    def loss(self, model, batch: dict, aux_batch=None, progress: float = 0.0) -> torch.Tensor:
        """``Stage.loss_fn``: the masked-LM loss of a batch of text (it has no labels)."""
        inputs, labels = self.mask(batch["input_ids"], batch["attention_mask"])
        device = batch["input_ids"].device
        return model(**{**batch, "input_ids": inputs.to(device), "labels": labels.to(device)}).loss

    def mask_rows(self, input_ids, attention_mask, idx, seed: int):
        """Masks that depend only on each row's tokens, ``seed`` and its row index."""
        inputs, labels = input_ids.detach().cpu().clone(), torch.full(input_ids.shape, -100)
        attention = attention_mask.detach().cpu().bool()
        for r, row in enumerate(idx.tolist()):
            tokens = inputs[r][attention[r]].unsqueeze(0)
            generator = torch.Generator().manual_seed(seed * 1_000_003 + row)
            masked, row_labels = self.mask(tokens, torch.ones_like(tokens), generator)
            inputs[r, attention[r]], labels[r, attention[r]] = masked[0], row_labels[0]
        return inputs, labels

    def evaluator(self, split: datasets.Dataset, batch_size: int, seed: int,
                  pad_to_multiple_of: Optional[int] = None):
        """A ``Stage.evaluate_fn``: :meth:`evaluate` on ``split``."""
        return lambda engine, model: self.evaluate(engine, model, split, batch_size, seed,
                                                   pad_to_multiple_of)

    @torch.no_grad()
    def evaluate(self, engine, model, split: datasets.Dataset, batch_size: int, seed: int,
                 pad_to_multiple_of: Optional[int] = None) -> dict:
        """``{"mlm_loss", "perplexity"}`` on ``split`` (tokenized text, with ``idx``), each row
        counted once across processes (a collective: every process calls it).

        ``pad_to_multiple_of``: batch padding; None takes the engine's evaluation padding
        (``training.pad_to_multiple_of``, like every other loader of the run). The masks do not
        depend on it: they are drawn over each row's real tokens only."""
        acc = engine.accelerator
        if pad_to_multiple_of is None:
            pad_to_multiple_of = engine.pad_to_multiple_of
        batches = make_loader(split, engine.tokenizer, batch_size, shuffle=False,
                              pad_to_multiple_of=pad_to_multiple_of)
        total, count = 0.0, 0
        with evaluation_loader(acc, batches) as loader:  # not part of any checkpoint
            model.eval()
            for batch in loader:
                idx = batch.pop("idx")
                inputs, labels = self.mask_rows(batch["input_ids"], batch["attention_mask"], idx,
                                                seed)
                device = batch["input_ids"].device
                logits = model(**{**batch, "input_ids": inputs.to(device)}).logits
                labels = labels.to(device)
                token_loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                                             ignore_index=-100, reduction="none").view(labels.shape)
                # Per row, so that gather_for_metrics can drop the rows DDP repeats.
                row_loss, row_count = acc.gather_for_metrics(
                    (token_loss.sum(-1), (labels != -100).sum(-1)))
                total += row_loss.sum().item()
                count += row_count.sum().item()
        loss = total / max(count, 1)
        return {"mlm_loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50.0)), 4)}


def save_adapted_encoder(mlm_model: torch.nn.Module, cfg: ModelConfig, tokenizer,
                         folder: Path) -> Path:
    """Write the adapted encoder of ``mlm_model`` (unwrapped, LoRA merged) to ``folder`` as a
    pretrained-encoder checkpoint like ``model.name_or_path``: the same tensors (weights the
    MLM model does not have, e.g. BERT's pooler, keep their pretrained values; weights the
    original checkpoint lacked are left out, so they stay "new" when loaded), and the tokenizer."""
    encoder, missing = load_pretrained(AutoModel, cfg.name_or_path, cfg, revision=cfg.revision)
    outcome = encoder.load_state_dict(mlm_model.base_model.state_dict(), strict=False)
    if outcome.unexpected_keys:  # pragma: no cover - an architecture whose encoders differ
        raise ConfigError(f"The masked-LM encoder of {cfg.name_or_path!r} does not fit its plain "
                          f"encoder: {outcome.unexpected_keys[:5]}")
    state = {k: v.contiguous() for k, v in encoder.state_dict().items() if k not in missing}
    partial = partial_dir(folder)
    encoder.save_pretrained(partial, state_dict=state)
    tokenizer.save_pretrained(partial)
    copy_sentence_pooling(cfg, partial)  # `model.pooling: auto` reads it as it read the model
    publish_dir(partial, folder)
    return Path(folder)
