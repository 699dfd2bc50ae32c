"""One label space shared by source and target: ``label2id`` / ``id2label``."""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from ..errors import DataError


@dataclass(frozen=True)
class LabelSpace:
    """Label names in id order. Ids are positions: ``names[i]`` has id ``i``."""

    names: tuple[str, ...]

    @classmethod
    def from_splits(cls, *splits: datasets.DatasetDict) -> "LabelSpace":
        """Sorted union of the labels in every split of every dataset given."""
        labels = {label for dd in splits for split in dd.values() for label in split.unique("label")}
        return cls(tuple(sorted(labels)))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def __len__(self) -> int:
        return len(self.names)

    def require_covers(self, data: datasets.DatasetDict, where: str) -> None:
        """Raise DataError when ``data`` has labels outside this space."""
        seen = {label for split in data.values() for label in split.unique("label")}
        unknown = sorted(seen - set(self.names))
        if unknown:
            folded = {name.casefold(): name for name in self.names}
            near = [f"{u!r} vs {folded[u.casefold()]!r}" for u in unknown if u.casefold() in folded]
            case = f" Labels are case-sensitive: {', '.join(near)}." if near else ""
            raise DataError(
                f"`{where}` has labels the source never had: {unknown}. This scenario needs one "
                f"shared label space (source labels: {list(self.names)}). Map or filter those "
                f"labels, or use the label-space recipe for a new label set.{case}"
            )

    def encode(self, data: datasets.DatasetDict) -> datasets.DatasetDict:
        """Replace label names by ids (``labels`` column, the name models expect)."""
        from .tokenize import derived_fingerprint

        ids = self.label2id
        return datasets.DatasetDict({
            name: split.map(lambda batch: {"labels": [ids[label] for label in batch["label"]]},
                            batched=True, remove_columns=["label"],
                            new_fingerprint=derived_fingerprint(split, ("labels", self.names)))
            for name, split in data.items()})
