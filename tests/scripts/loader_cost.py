"""Host time of one epoch of training batches: the engine's array batches (PaddedBatches)
against the per-row path they replaced (``with_format("torch")`` rows collated by
``DataCollatorWithPadding``), over the same length-grouped batches, in one process,
alternating, a discarded warm-up pass each, medians.

    python tests/scripts/loader_cost.py [--n 4000] [--batch_size 32] [--repeats 5]

Also checks that both give identical batches. Built-in tweets, packaged MiniLM's tokenizer.
"""

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from hf_transfer.config import DatasetConfig, ModelConfig
from hf_transfer.data.labels import LabelSpace
from hf_transfer.data.loading import load_splits
from hf_transfer.data.tokenize import LengthGroupedSampler, make_loader, row_lengths, tokenize
from hf_transfer.modeling import load_tokenizer


def per_row_loader(split, tokenizer, batch_size, seed):
    """make_loader as it was: rows as dicts of tensors, collated in Python."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels", "idx")
               if c in split.column_names]
    return DataLoader(split.with_format("torch", columns=columns), batch_size=batch_size,
                      sampler=LengthGroupedSampler(row_lengths(split), batch_size, seed),
                      collate_fn=DataCollatorWithPadding(tokenizer),
                      generator=torch.Generator().manual_seed(seed))


def epoch_seconds(loader) -> tuple[float, int]:
    started = time.perf_counter()
    batches = sum(1 for _ in loader)
    return time.perf_counter() - started, batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw = load_splits(DatasetConfig(builtin="tweets", max_train_samples=args.n), seed=0, role="source")
    tokenizer = load_tokenizer(ModelConfig(name_or_path="sentence-transformers/all-MiniLM-L6-v2"))
    train = tokenize(LabelSpace.from_splits(raw).encode(raw), tokenizer, 128)["train"]
    loaders = {
        "per-row collation": lambda: per_row_loader(train, tokenizer, args.batch_size, 1),
        "array batches": lambda: make_loader(train, tokenizer, args.batch_size, shuffle=True, seed=1,
                                             group_by_length=True),
    }
    for old, new in zip(loaders["per-row collation"](), loaders["array batches"]()):
        assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    times = {name: [] for name in loaders}
    for repeat in range(args.repeats + 1):  # repeat 0: warm-up, discarded
        names = list(loaders) if repeat % 2 else list(loaders)[::-1]
        for name in names:
            seconds, batches = epoch_seconds(loaders[name]())
            if repeat:
                times[name].append(1000 * seconds / batches)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:18} {medians[name]:8.3f} ms/batch (median of {len(t)}; {min(t):.3f}-{max(t):.3f})")
    print(f"ratio: {medians['per-row collation'] / medians['array batches']:.0f}x less host time per batch; "
          f"identical batches: yes ({len(train)} rows, batch {args.batch_size})")


if __name__ == "__main__":
    main()
