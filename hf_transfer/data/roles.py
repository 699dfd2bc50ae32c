"""The data a run knows, by role — resolved once, before any model loads.

=================  ==========================================================================
role               what it is
=================  ==========================================================================
``source``         the labelled source dataset (train/validation/test)
``target``         the labelled target dataset; its ``train`` split is all the target labels
                   a run trains on (``k_shot`` per class when set)
``target_text``    the target's unlabelled text (``text`` column only, labels never present):
                   ``train`` is what transductive strategies learn from, ``validation`` the
                   target validation split's text (a masked-LM loss, a domain probe)
``corpus``         the unlabelled corpus ``data.unlabeled`` (``dapt``)
=================  ==========================================================================

Where ``target_text.train`` comes from, in this order: ``data.target_unlabeled`` when set;
else the target training rows that ``k_shot`` / ``max_train_samples`` did not sample (labels
dropped); else the target's training split itself, labels dropped (a run without labelled
target examples). ``RunData.target_text_origin`` names which, for results.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import datasets

from ..config import DataConfig
from .columns import column_values
from .unlabeled import load_unlabeled_text, text_only

# Where `target_text.train` came from (results.json → data.target_text.origin).
ORIGIN_GIVEN = "data.target_unlabeled"
ORIGIN_NOT_SAMPLED = "target training rows not sampled (k_shot / max_train_samples), labels dropped"
ORIGIN_TARGET_TRAIN = "target training split, labels dropped"
# The run has unlabelled target text apart from its labelled rows, but no strategy reads it.
ORIGIN_UNUSED = "unused: no strategy of this run reads it"


@dataclass
class RunData:
    """The run's data by role (see the module doc), and the label space they share."""

    source: datasets.DatasetDict
    target: datasets.DatasetDict
    labels: object  # LabelSpace
    sizes: dict
    target_text: Optional[datasets.DatasetDict] = None
    target_text_origin: str = ""
    corpus: Optional[datasets.Dataset] = None

    @property
    def labelled_target(self) -> bool:
        """Whether the target's training rows are labelled examples given for training, apart
        from the unlabelled text (k_shot, or text given as `data.target_unlabeled`)."""
        return self.target_text_origin not in ("", ORIGIN_TARGET_TRAIN)


def evaluation_texts(target: datasets.DatasetDict) -> set:
    """The texts the target is evaluated on: never trained on, not even without labels."""
    return {t for split in ("validation", "test") for t in column_values(target[split], "text")}


def resolve_target_text(data: DataConfig, target: datasets.DatasetDict, not_sampled: Optional[datasets.Dataset],
                        seed: int) -> tuple[datasets.DatasetDict, str]:
    """The ``target_text`` role (train and validation text) and where its training text came
    from. Texts of the target's validation and test splits are never trained on."""
    if data.target_unlabeled.is_set():
        train, origin = load_unlabeled_text(data.target_unlabeled, seed, exclude=evaluation_texts(target),
                                            where="data.target_unlabeled"), ORIGIN_GIVEN
    elif not_sampled is not None and len(not_sampled):
        train, origin = text_only(not_sampled), ORIGIN_NOT_SAMPLED
    else:
        train, origin = text_only(target["train"]), ORIGIN_TARGET_TRAIN
    return datasets.DatasetDict({"train": train, "validation": text_only(target["validation"])}), origin
