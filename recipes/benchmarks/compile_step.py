"""One training step eager vs `torch.compile` (inductor), side by side in one process.

    python recipes/benchmarks/compile_step.py            # tiny random BERT, batch 32, one thread
    python recipes/benchmarks/compile_step.py --threads 0 --hidden 384 --layers 6

Does capturing the step pay where the engine's batches have few shapes? Three copies of the
same model (same initial weights, same optimizer settings) train on the same batches:

* ``eager``: batches padded to their longest row (the engine's CPU default);
* ``compiled_buckets``: ``torch.compile(dynamic=False)`` on batches padded to a multiple of
  ``--bucket`` (few shapes: one compiled graph each);
* ``compiled_dynamic``: ``torch.compile(dynamic=True)`` on the eager batches (one graph with a
  symbolic length).

Every copy first runs each shape once (compilation, reported as ``warm-up s``); then
``--repeats`` rounds, each timing ``--steps`` steps of every copy in an order rotated per
round. Reported: the median milliseconds per step and its ratio to eager. What it does not
count: the engine's loop around the step (vs_trainer.py measures that).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time


def batches(lengths: list[int], batch_size: int, vocab: int, multiple: int, seed: int) -> list[dict]:
    """One batch per length: rows of random lengths up to it, padded to ``multiple``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = []
    for longest in lengths:
        real = torch.randint(max(4, longest // 2), longest + 1, (batch_size,), generator=generator)
        real[0] = longest
        width = math.ceil(longest / multiple) * multiple
        mask = (torch.arange(width)[None, :] < real[:, None]).long()
        ids = torch.randint(1000, vocab, (batch_size, width), generator=generator) * mask
        out.append({"input_ids": ids, "attention_mask": mask,
                    "labels": torch.randint(0, 3, (batch_size,), generator=generator)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--bucket", type=int, default=16, help="pad to a multiple of this (compiled_buckets)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[18, 25, 31, 37, 44, 52, 63],
                        help="longest row of each batch (tweets: ~33 tokens on average)")
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=max(1, args.hidden // 32), intermediate_size=4 * args.hidden,
                        num_labels=3)
    base = BertForSequenceClassification(config).train()
    plain = batches(args.lengths, args.batch_size, config.vocab_size, 1, seed=0)
    bucketed = batches(args.lengths, args.batch_size, config.vocab_size, args.bucket, seed=0)
    copies = {"eager": (copy.deepcopy(base), False, plain),
              "compiled_buckets": (copy.deepcopy(base), "static", bucketed),
              "compiled_dynamic": (copy.deepcopy(base), "dynamic", plain)}
    steps = {}
    for name, (model, compiled, data) in copies.items():
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        forward = torch.compile(model, dynamic=compiled == "dynamic") if compiled else model

        def step(batch, model=model, forward=forward, optimizer=optimizer):
            forward(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        steps[name] = (step, data)

    warm_up = {}
    for name, (step, data) in steps.items():
        started = time.perf_counter()
        for batch in data:  # every shape once: compilation happens here
            step(batch)
        warm_up[name] = time.perf_counter() - started

    names = list(steps)
    timings = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            step, data = steps[name]
            started = time.perf_counter()
            for i in range(args.steps):
                step(data[i % len(data)])
            timings[name].append(1000 * (time.perf_counter() - started) / args.steps)

    eager = statistics.median(timings["eager"])
    print(f"BERT hidden {args.hidden}, {args.layers} layers, batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}, longest rows {args.lengths}, bucket {args.bucket}; "
          f"{args.repeats} rotated rounds of {args.steps} steps, medians\n")
    print("| step | warm-up s | ms/step (min–max) | × eager speed |")
    print("|---|---|---|---|")
    for name in names:
        median = statistics.median(timings[name])
        print(f"| {name} | {warm_up[name]:.1f} | {median:.1f} ({min(timings[name]):.1f}–{max(timings[name]):.1f}) | "
              f"{eager / median:.2f} |")


if __name__ == "__main__":
    main()
