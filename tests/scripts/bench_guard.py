"""Measure what the non-finite/SIGTERM guard costs per optimizer step in the real engine.

    python tests/scripts/bench_guard.py [tiny|minilm ...] [--steps N] [--rounds R] [--no-clip]
    accelerate launch --multi_gpu --num_processes 2 tests/scripts/bench_guard.py tiny

Variants, interleaved round by round so that background load hits them alike:
``off`` (guard calls replaced by no-ops), ``stop`` (default: flags recorded on the device,
read one update later) and ``skip`` (one host sync, plus an all-reduce under DDP, per update).
Prints the median seconds per optimizer step of each and the overhead against ``off``.
``minilm`` is a randomly initialised BERT with all-MiniLM-L6-v2's shapes (6 layers, hidden
384, 12 heads, vocab 30522), batch 32 x 128 tokens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import datasets
import torch
from transformers import BertConfig, BertForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hf_transfer.training.loop as loop  # noqa: E402
from hf_transfer.config import TrainingConfig  # noqa: E402
from hf_transfer.training import Engine, Stage, make_accelerator  # noqa: E402
from hf_transfer.training.faults import FaultGuard  # noqa: E402
from tiny_assets import build_tiny_tokenizer, build_vocab, tiny_bert_config  # noqa: E402

SHAPES = {
    # name: (config kwargs, batch size, sequence length)
    "tiny": (None, 8, 32),
    "minilm": (dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512), 32, 128),
}


class _Off(FaultGuard):
    """The guard with every check removed: the baseline."""

    def nonfinite(self, loss, grad_norm, params):
        return None

    def record(self, bad, step):
        pass

    def agree_now(self, bad, at_end=False):
        return False

    def poll(self):
        return False, False

    def check_now(self, model):
        return None, False


def _model_and_tokenizer(shape: str):
    """Randomly initialised (same seed on every process): nothing is read from disk."""
    vocab = build_vocab()
    tokenizer = build_tiny_tokenizer(vocab)
    kwargs = SHAPES[shape][0]
    config = tiny_bert_config(len(vocab), 3) if kwargs is None else BertConfig(num_labels=3, **kwargs)
    torch.manual_seed(0)
    return BertForSequenceClassification(config), tokenizer


def _data(shape: str, rows: int, vocab: int) -> datasets.Dataset:
    _, _, length = SHAPES[shape]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (rows, length), generator=g)
    return datasets.Dataset.from_dict({
        "input_ids": ids.tolist(), "attention_mask": [[1] * length] * rows,
        "labels": torch.randint(0, 3, (rows,), generator=g).tolist(), "idx": list(range(rows)),
    })


def _direct_costs(acc, model, train, tokenizer, batch: int, repeats: int = 300) -> dict:
    """Seconds per update spent in the guard's own calls, timed alone on real gradients."""
    import time

    from hf_transfer.data.tokenize import make_loader

    model = acc.prepare(acc.unwrap_model(model))
    model.train()
    loader = make_loader(train.select(range(batch)), tokenizer, batch, shuffle=False)
    inputs = {k: v.to(acc.device) for k, v in next(iter(loader)).items() if k != "idx"}
    loss = model(**inputs).loss
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    out = {}
    for name, mode, given_norm in (("stop, clipping on", "stop", norm),
                                   ("stop, no clipping", "stop", None),
                                   ("skip, clipping on", "skip", norm)):
        guard = FaultGuard(acc, mode)
        start = time.perf_counter()
        for step in range(repeats):
            bad = guard.nonfinite(loss.detach(), given_norm, params)
            if guard.skip:
                guard.agree_now(bad)
            else:
                guard.record(bad, step + 1)
            guard.poll()
        out[name] = (time.perf_counter() - start) / repeats
    model.zero_grad(set_to_none=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shapes", nargs="*", default=["tiny", "minilm"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-clip", action="store_true")
    args = parser.parse_args()
    acc = make_accelerator()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for shape in args.shapes:
        steps = args.steps or (100 if shape == "tiny" else 8)
        batch = SHAPES[shape][1]
        # One folder for all processes (checkpoints are shared), removed at the end.
        with tempfile.TemporaryDirectory() as own:
            tmp = Path(tempfile.gettempdir()) / f"bench_guard_{os.environ.get('MASTER_PORT', Path(own).name)}"
            model, tokenizer = _model_and_tokenizer(shape)
            train = _data(shape, batch * steps * acc.num_processes, model.config.vocab_size)
            evalset = _data(shape, batch, model.config.vocab_size)
            initial = {k: v.clone() for k, v in model.state_dict().items()}
            times: dict[str, list[float]] = {"off": [], "stop": [], "skip": []}
            for round_ in range(args.rounds):
                for variant in times:
                    loop.FaultGuard = _Off if variant == "off" else FaultGuard
                    model.load_state_dict(initial)
                    training = TrainingConfig(
                        max_steps=steps, batch_size=batch, eval_batch_size=batch,
                        eval_strategy="steps", eval_steps=10**6, logging_steps=10**6,
                        on_nonfinite="stop" if variant == "off" else variant,
                        max_grad_norm=None if args.no_clip else 1.0, warmup_ratio=0.0)
                    stage = Stage(name=f"{variant}{round_}", train=train, training=training,
                                  learning_rate=1e-4, num_epochs=1, select_on="eval")
                    eng = Engine(acc, tokenizer, ["a", "b", "c"], Path(tmp) / "run")
                    _, result = eng.train(stage, model, {"eval": evalset})
                    model = acc.unwrap_model(model)
                    # the first update carries one-off costs: time the rest
                    times[variant].append(result.train_seconds / steps)
            loop.FaultGuard = FaultGuard
            direct = _direct_costs(acc, model, train, tokenizer, batch)
            if acc.is_main_process:
                base = statistics.median(times["off"])
                clip = "no clipping" if args.no_clip else "clipping 1.0"
                print(f"{shape}: {steps} steps x {args.rounds} rounds, batch {batch}, "
                      f"{acc.num_processes} process(es), {acc.device}, {clip}")
                for variant, values in times.items():
                    m = statistics.median(values)
                    print(f"  {variant:5s} {1000 * m:9.2f} ms/step  {100 * (m / base - 1):+6.1f}%  "
                          f"(rounds: {', '.join(f'{1000 * v:.1f}' for v in values)})")
                for name, seconds in direct.items():
                    print(f"  guard calls alone, {name}: {1e6 * seconds:8.1f} us/step "
                          f"({100 * seconds / base:.2f}% of a step)")
            acc.wait_for_everyone()
            if acc.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
