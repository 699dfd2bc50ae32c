"""Reading a whole column of a :class:`datasets.Dataset` at once.

Since datasets 4, ``split["text"]`` is a lazy ``Column``: iterating it, or indexing it with
one row, reads the Arrow table one row at a time (the quick start made ~180k such reads,
seconds of pure Python). :func:`column_values` reads the column in one Arrow conversion.
"""

from __future__ import annotations

import datasets


def as_list(column) -> list:
    """A column's values as a list: ``column`` is a ``Dataset[name]`` (read in one go), or
    already a sequence (returned as a list)."""
    if isinstance(column, datasets.arrow_dataset.Column):
        return column[:]  # one slice: one Arrow read, not one per row
    return column if isinstance(column, list) else list(column)


def column_values(split: datasets.Dataset, name: str) -> list:
    """The values of column ``name`` of ``split`` as a Python list (whatever the split's
    format), in one Arrow read."""
    return split.with_format(None)[name][:]
