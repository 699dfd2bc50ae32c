"""hf_transfer's engine vs `transformers.Trainer` vs a plain Accelerate loop, side by side.

    python recipes/benchmarks/vs_trainer.py                        # LoRA and full, 3 repeats, 4k tweets
    python recipes/benchmarks/vs_trainer.py --scaling 1000 4000 16000   # also: cost vs data size
    python recipes/benchmarks/vs_trainer.py --mixed_precision bf16      # on a GPU (see gpu.py)
    python recipes/benchmarks/vs_trainer.py --model tiny --threads 1 --repeats 2   # host overhead

Every loop trains the same model (packaged MiniLM, seeded head, same tuning), on the same
tokenized rows (built-in `tweets`, all domains, `--n` training rows, max length 128), with the
same hyperparameters (batch 32, 1 epoch, the library's default learning rate for the tuning
method, AdamW with weight decay 0.01 off biases/norms, linear decay with 10 % warm-up,
clipping at 1.0):

* ``hf_transfer``: the library's Engine (length-grouped batches; evaluation longest first).
  Its train call also runs the one validation pass (64 rows) and checkpoint that every
  engine stage ends with: counted against it.
* ``trainer``: ``transformers.Trainer`` with its defaults (random batches, dynamic padding).
* ``trainer_grouped``: the Trainer with ``train_sampling_strategy="group_by_length"``.
* ``accelerate_loop``: the loop of transformers' ``run_glue_no_trainer.py`` (random batches,
  dynamic padding).
* ``bare_steps``: the floor for the engine's batches, not a usable loop: the same batches
  (sampler, padding) built before the clock starts, then only forward, backward, clipping,
  the optimizer and scheduler steps; no loader, logging, guard, evaluation or checkpoint.
  What no loop can beat on these batches without computing less; ``engine ÷ bare`` is the
  share of the engine's time that is the model's own.

``--n`` (and ``--scaling``) beyond the training split's rows repeat them (64k rows: the
26.5k training tweets 2.4 times over): for how cost grows with rows, not for accuracy.

``--model tiny``: a randomly initialised BERT with 2 layers, hidden size 64 (2 heads,
intermediate 256) and the packaged MiniLM's tokenizer, written once into ``--out``: its
compute is so small that the time per step is the loop's host overhead (Python, data
collation, synchronisation), which is what the GPU waits on with a real model.

Each (loop, tuning, repeat) runs in a fresh process (peak memory is per process), in an
order rotated every repeat; before the repeats, one discarded warm-up run of every loop
(file caches, the prepared-data cache, lazy imports). Tokens are counted by a forward pre-hook on the model: "real"
tokens are attention-mask ones, "processed" are the padded batch's. Reported: medians over
repeats (min–max), per-repeat ratios to the default Trainer, and the milliseconds per
training step (train time ÷ optimizer steps, so the engine's includes its validation and
checkpoint). Writes
docs/benchmarks/vs_trainer.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LOOPS = ("hf_transfer", "trainer", "trainer_grouped", "accelerate_loop", "bare_steps")
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# --- one run (in its own process) ------------------------------------------------------------


class TokenCounter:
    """Counts real and padded tokens of every forward call, training and evaluation apart."""

    def __init__(self, model):
        self.counts = {"train": [0, 0, 0], "eval": [0, 0, 0]}  # rows, real tokens, processed tokens
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def reset(self, phase: str) -> None:
        self.counts[phase] = [0, 0, 0]

    def _hook(self, module, args, kwargs):
        mask = kwargs["attention_mask"]
        c = self.counts["train" if module.training else "eval"]
        c[0] += mask.shape[0]
        c[1] += int(mask.sum())
        c[2] += mask.numel()


def load_data(args):
    from hf_transfer.config import DatasetConfig
    from hf_transfer.data.labels import LabelSpace
    from hf_transfer.data.loading import load_splits
    from hf_transfer.data.tokenize import tokenize
    from hf_transfer.modeling import load_tokenizer
    from hf_transfer.config import ModelConfig

    model_cfg = ModelConfig(name_or_path=args.model, max_length=args.max_length)
    raw = load_splits(DatasetConfig(builtin="tweets", max_train_samples=args.n,
                                    max_eval_samples=args.eval_n), seed=0, role="source")
    raw["validation"] = raw["validation"].select(range(min(64, len(raw["validation"]))))
    labels = LabelSpace.from_splits(raw)
    tokenizer = load_tokenizer(model_cfg)
    data = tokenize(labels.encode(raw), tokenizer, args.max_length)
    args.distinct_train_rows = len(data["train"])
    if len(data["train"]) < args.n:
        # More rows than the corpus has (the tweets' training split has 26.5k): its rows
        # repeated. A loop's cost depends on how many rows it trains, not on their novelty.
        import datasets

        copies = math.ceil(args.n / len(data["train"]))
        data["train"] = datasets.concatenate_datasets([data["train"]] * copies).select(range(args.n))
    return model_cfg, labels, tokenizer, data


def run_one(args) -> dict:
    import torch
    from accelerate.utils import set_seed

    from hf_transfer.config import TrainingConfig, TuningConfig
    from hf_transfer.metrics import classification_metrics
    from hf_transfer.modeling import load_classifier_model
    from hf_transfer.tuning import apply_tuning

    if args.threads:
        torch.set_num_threads(args.threads)
    model_cfg, labels, tokenizer, data = load_data(args)
    training = TrainingConfig(seed=args.seed, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                              num_epochs=args.epochs, mixed_precision=args.mixed_precision)
    lr = training.learning_rate_for(args.tuning)
    set_seed(args.seed)
    model, new_modules = load_classifier_model(model_cfg, list(labels.names))
    model = apply_tuning(model, TuningConfig(method=args.tuning), new_modules)
    args.counter = counter = TokenCounter(model)
    with tempfile.TemporaryDirectory() as tmp:
        loop = {"hf_transfer": _hf_transfer, "trainer": _trainer, "trainer_grouped": _trainer,
                "accelerate_loop": _accelerate_loop, "bare_steps": _bare_steps}[args.loop]
        train_seconds, eval_seconds, predictions = loop(args, model, tokenizer, data, labels, training, lr, tmp)
    metrics = classification_metrics(predictions, data["test"]["labels"], list(labels.names))
    rows, real, processed = counter.counts["train"]
    eval_rows, eval_real, eval_processed = counter.counts["eval"]
    out = {
        "loop": args.loop, "tuning": args.tuning, "n_train": len(data["train"]), "repeat": args.repeat,
        "train_seconds": train_seconds, "train_examples_per_s": rows / train_seconds,
        "ms_per_step": 1000 * train_seconds / math.ceil(rows / args.batch_size),
        "loop_examples_per_s": rows / args.loop_seconds if getattr(args, "loop_seconds", None) else None,
        "train_real_tokens_per_s": real / train_seconds, "train_padding_efficiency": real / processed,
        "predict_seconds": eval_seconds, "predict_examples_per_s": len(data["test"]) / eval_seconds,
        "predict_padding_efficiency": eval_real / eval_processed if eval_processed else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"], "n_test": len(data["test"]),
        "train_rows_seen": rows, "eval_rows_seen": eval_rows, "distinct_train_rows": args.distinct_train_rows,
    }
    if torch.cuda.is_available():
        out["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _hf_transfer(args, model, tokenizer, data, labels, training, lr, tmp):
    from accelerate import DataLoaderConfiguration

    from hf_transfer.training import Engine, Stage, make_accelerator

    accelerator = make_accelerator(mixed_precision=args.mixed_precision, dynamo_backend=_dynamo(args),
                                   dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True,
                                                                             data_seed=args.seed,
                                                                             non_blocking=True))
    engine = Engine(accelerator, tokenizer, list(labels.names), Path(tmp))
    stage = Stage(name="train", train=data["train"], training=training, learning_rate=lr,
                  num_epochs=args.epochs, select_on="validation")
    started = _sync_time()
    model, result = engine.train(stage, model, {"validation": data["validation"]})
    train_seconds = _sync_time() - started
    # The loop alone, without the end-of-stage validation and checkpoint the engine adds.
    args.loop_seconds = result.train_seconds
    args.counter.reset("eval")  # only the prediction pass counts
    started = _sync_time()
    predictions, references, indices = engine.predict(model, data["test"], args.eval_batch_size)
    eval_seconds = _sync_time() - started
    by_row = dict(zip(indices, predictions))  # longest-first order back to row order
    return train_seconds, eval_seconds, [by_row[i] for i in range(len(data["test"]))]


def _trainer(args, model, tokenizer, data, labels, training, lr, tmp):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    targs = TrainingArguments(
        output_dir=tmp, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size, num_train_epochs=args.epochs, learning_rate=lr,
        weight_decay=training.weight_decay, warmup_steps=training.warmup_ratio, lr_scheduler_type="linear",
        max_grad_norm=training.max_grad_norm, eval_strategy="no", save_strategy="no", report_to="none",
        seed=args.seed, logging_steps=training.logging_steps, disable_tqdm=True,
        bf16=args.mixed_precision == "bf16", fp16=args.mixed_precision == "fp16",
        train_sampling_strategy="group_by_length" if args.loop == "trainer_grouped" else "random",
        length_column_name="length", torch_compile=args.compile,
        **({"torch_compile_backend": args.compile_backend} if args.compile else {}))
    trainer = Trainer(model=model, args=targs, train_dataset=data["train"], processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer))
    started = _sync_time()
    trainer.train()
    train_seconds = _sync_time() - started
    args.counter.reset("eval")  # only the prediction pass counts
    started = _sync_time()
    output = trainer.predict(data["test"])
    eval_seconds = _sync_time() - started
    return train_seconds, eval_seconds, output.predictions.argmax(-1).tolist()


def _accelerate_loop(args, model, tokenizer, data, labels, training, lr, tmp):
    """The training loop of transformers' examples/pytorch/text-classification/run_glue_no_trainer.py."""
    import math

    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, get_scheduler

    accelerator = Accelerator(mixed_precision=args.mixed_precision, dynamo_backend=_dynamo(args))
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in data["train"].column_names]
    collate = DataCollatorWithPadding(tokenizer)
    train_loader = DataLoader(data["train"].with_format("torch", columns=columns), shuffle=True,
                              collate_fn=collate, batch_size=args.batch_size)
    test_loader = DataLoader(data["test"].with_format("torch", columns=columns), collate_fn=collate,
                             batch_size=args.eval_batch_size)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and not any(nd in n for nd in no_decay)],
         "weight_decay": training.weight_decay},
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and any(nd in n for nd in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    steps = math.ceil(len(train_loader) * args.epochs)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=math.ceil(training.warmup_ratio * steps),
                              num_training_steps=steps)
    model, optimizer, train_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, test_loader, scheduler)
    started = _sync_time()
    model.train()
    for _ in range(math.ceil(args.epochs)):
        for batch in train_loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    train_seconds = _sync_time() - started
    args.counter.reset("eval")  # only the prediction pass counts
    started = _sync_time()
    model.eval()
    predictions = []
    with torch.no_grad():
        for batch in test_loader:
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            predictions += accelerator.gather_for_metrics(logits.argmax(-1)).tolist()
    return train_seconds, _sync_time() - started, predictions


def _bare_steps(args, model, tokenizer, data, labels, training, lr, tmp):
    """The engine's training batches, built before the clock starts; then only the step."""
    import torch
    from transformers import get_scheduler

    from hf_transfer.data.tokenize import make_loader
    from hf_transfer.training.loop import _adamw, _parameter_groups

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.mixed_precision == "bf16")

    loader = make_loader(data["train"], tokenizer, args.batch_size, shuffle=True, seed=args.seed,
                         group_by_length=True)
    batches = [{k: v.to(device) for k, v in batch.items() if k != "idx"} for batch in loader]
    batches *= math.ceil(args.epochs)
    optimizer = _adamw(_parameter_groups(model, training.weight_decay), lr)
    steps = len(batches)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=math.ceil(training.warmup_ratio * steps),
                              num_training_steps=steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    started = _sync_time()
    model.train()
    for batch in batches:
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, training.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    train_seconds = _sync_time() - started
    # `tokenize` gives every split its row indices (`idx`), as the engine's evaluation uses them.
    eval_batches = make_loader(data["test"], tokenizer, args.eval_batch_size, shuffle=False, group_by_length=True)
    eval_batches = [(batch.pop("idx"), {k: v.to(device) for k, v in batch.items() if k != "labels"})
                    for batch in eval_batches]
    args.counter.reset("eval")  # only the prediction pass counts
    started = _sync_time()
    model.eval()
    by_row = {}
    with torch.no_grad(), autocast:
        for idx, batch in eval_batches:
            by_row.update(zip(idx.tolist(), model(**batch).logits.argmax(-1).tolist()))
    eval_seconds = _sync_time() - started
    return train_seconds, eval_seconds, [by_row[i] for i in range(len(data["test"]))]


def _dynamo(args) -> str:
    return getattr(args, "compile_backend", "inductor") if args.compile else "no"


def _sync_time() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


# --- the comparison ----------------------------------------------------------------------------


def run_in_process(args, loop: str, tuning: str, n: int, repeat: int, out_dir: Path) -> dict:
    out = out_dir / f"{loop}_{tuning}_n{n}_r{repeat}.json"
    if out.is_file():  # an earlier invocation's run is reused
        return json.loads(out.read_text())
    command = [sys.executable, __file__, "--worker", "--loop", loop, "--tuning", tuning, "--n", str(n),
               "--repeat", str(repeat), "--out", str(out), "--model", args.model, "--max_length", str(args.max_length),
               "--batch_size", str(args.batch_size), "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--eval_n", str(args.eval_n), "--threads", str(args.threads or 0)]
    if args.mixed_precision:
        command += ["--mixed_precision", args.mixed_precision]
    if args.compile:
        command += ["--compile", "--compile_backend", args.compile_backend]
    print(f"{loop:16} {tuning:5} n={n:<6} repeat {repeat} ...", end=" ", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{loop} failed:\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    print(f"{result['train_examples_per_s']:.1f} ex/s, padding eff. {result['train_padding_efficiency']:.2f}, "
          f"acc {result['test_accuracy']:.3f}", flush=True)
    return result


def _model_name(args) -> str:
    if getattr(args, "tiny", False):
        return "A tiny random BERT (2 layers, hidden 64, the packaged MiniLM's tokenizer)"
    return "Packaged MiniLM (all-MiniLM-L6-v2)" if args.model == MODEL else f"Model `{args.model}`"


WARM_UP = -1  # the repeat number of the (first) discarded warm-up run


def build_tiny_model(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT, hidden size 64, with the packaged MiniLM's
    tokenizer (written once; seeded, so every invocation builds the same weights)."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import BertConfig, BertModel

    from hf_transfer.config import ModelConfig
    from hf_transfer.modeling import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(name_or_path=MODEL))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=256, max_position_embeddings=512))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _stats(values):
    values = [v for v in values if v is not None]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _fmt(s, digits=1):
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})" if s["n"] > 1 \
        else f"{s['median']:.{digits}f}"


METRICS = ("train_examples_per_s", "ms_per_step", "loop_examples_per_s", "train_real_tokens_per_s", "train_padding_efficiency",
           "predict_examples_per_s", "predict_padding_efficiency", "peak_rss_mb", "test_accuracy", "test_macro_f1")


def summarise(runs: list[dict]) -> dict:
    """Per (tuning, n, loop): medians of each metric, and the median over repeats of the paired
    ratio to the default Trainer (same tuning, n, repeat)."""
    out = {}
    keys = sorted({(r["tuning"], r["n_train"], r["loop"]) for r in runs}, key=lambda k: (k[0], k[1], LOOPS.index(k[2])))
    for tuning, n, loop in keys:
        mine = [r for r in runs if (r["tuning"], r["n_train"], r["loop"]) == (tuning, n, loop)]
        entry = {m: _stats([r.get(m) for r in mine]) for m in METRICS if any(r.get(m) is not None for r in mine)}
        base = {r["repeat"]: r for r in runs if (r["tuning"], r["n_train"], r["loop"]) == (tuning, n, "trainer")}
        for metric in ("train_examples_per_s", "loop_examples_per_s", "predict_examples_per_s"):
            # The Trainer's train call has no validation or checkpoint: its "loop" is the call.
            ratios = [r[metric] / base[r["repeat"]][metric.replace("loop_", "train_")] for r in mine
                      if r["repeat"] in base and r.get(metric)]
            entry[f"{metric}_vs_trainer"] = _stats(ratios) if ratios else None
        for other in ("trainer_grouped", "bare_steps"):  # training speed against these, per repeat
            theirs = {r["repeat"]: r for r in runs if (r["tuning"], r["n_train"], r["loop"]) == (tuning, n, other)}
            ratios = [r["train_examples_per_s"] / theirs[r["repeat"]]["train_examples_per_s"] for r in mine
                      if r["repeat"] in theirs]
            entry[f"train_examples_per_s_vs_{other}"] = _stats(ratios) if ratios else None
        out[f"{tuning} n={n} {loop}"] = entry
    return out


def markdown(summary: dict, runs: list[dict], args, environment: dict) -> str:
    lines = ["# hf_transfer vs transformers.Trainer vs a plain Accelerate loop", "",
             f"{_model_name(args)} on built-in `tweets` (all domains), batch {args.batch_size}, "
             f"{args.epochs:g} epoch, max length {args.max_length}, same seed, same initial head, "
             f"test split {args.eval_n} rows. {args.warmups} discarded warm-up run(s) per loop, then medians over "
             f"{args.repeats} repeat(s) in rotated order (min–max); `× Trainer` is the "
             "median of the per-repeat ratios to the default Trainer. Padding efficiency = real tokens ÷ "
             "tokens processed in training batches. `hf_transfer`'s train time includes its end-of-stage "
             "validation pass (64 rows) and checkpoint (weights and optimizer state); `loop only` leaves "
             "them out (for the other loops it is the train call). `× grouped` and `of bare` are the "
             "per-repeat ratios of train ex/s to the length-grouped Trainer and to `bare_steps` (the "
             "engine's batches prebuilt, then only the step: the floor of any loop on them).", "",
             "| tuning | n train | loop | train ex/s | × Trainer | × grouped | of bare | ms/step | loop only: ex/s | "
             "× Trainer | real tok/s | padding eff. | predict ex/s | × Trainer | peak RSS MiB | test acc | test macro-F1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in summary.items():
        tuning, n, loop = name.split(" ")
        value = lambda k, digits=1: _fmt(e[k], digits) if e.get(k) else "—"  # noqa: E731
        lines.append(
            f"| {tuning} | {n[2:]} | {loop} | {value('train_examples_per_s')} | "
            f"{value('train_examples_per_s_vs_trainer', 2)} | {value('train_examples_per_s_vs_trainer_grouped', 2)} | "
            f"{value('train_examples_per_s_vs_bare_steps', 2)} | {value('ms_per_step', 2)} | "
            f"{value('loop_examples_per_s')} | "
            f"{value('loop_examples_per_s_vs_trainer', 2)} | {value('train_real_tokens_per_s', 0)} | "
            f"{value('train_padding_efficiency', 3)} | {value('predict_examples_per_s')} | "
            f"{value('predict_examples_per_s_vs_trainer', 2)} | {value('peak_rss_mb', 0)} | "
            f"{value('test_accuracy', 3)} | {value('test_macro_f1', 3)} |")
    repeated = sorted({(r["n_train"], r["distinct_train_rows"]) for r in runs
                       if r.get("distinct_train_rows", r["n_train"]) < r["n_train"]})
    lines += [f"\nn train {n}: the {distinct} distinct training rows repeated to {n}." for n, distinct in repeated]
    lines += ["", f"Machine: {environment['machine']}; torch {environment['torch']}, transformers "
              f"{environment['transformers']}, accelerate {environment['accelerate']}, peft {environment['peft']}; "
              f"torch threads {environment['threads']}.",
              f"Command: `{environment['command']}`"]
    return "\n".join(lines) + "\n"


def environment_info(args) -> dict:
    from importlib.metadata import version

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return {"machine": f"{device} ({platform.machine()}, Python {platform.python_version()})",
            "torch": torch.__version__, "transformers": version("transformers"), "accelerate": version("accelerate"),
            "peft": version("peft"), "threads": args.threads or torch.get_num_threads(),
            "command": "python recipes/benchmarks/vs_trainer.py " + " ".join(sys.argv[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=LOOPS)
    parser.add_argument("--tunings", nargs="+", default=["lora", "full"])
    parser.add_argument("--n", type=int, default=4000, help="training rows")
    parser.add_argument("--scaling", type=int, nargs="*", default=[],
                        help="also run LoRA with these training sizes (hf_transfer, both Trainers, bare_steps; 1 repeat)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1, help="discarded runs of every loop first")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=128)
    parser.add_argument("--eval_n", type=int, default=2000, help="test rows (and the cap on validation)")
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    parser.add_argument("--mixed_precision", default=None, choices=[None, "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor) in every loop")
    parser.add_argument("--compile_backend", default="inductor",
                        help="the torch.compile backend with --compile (aot_eager: no C++ compiler needed)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_vs_trainer")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "benchmarks" / "vs_trainer")
    # One run in this process (used by the comparison itself).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)
    parser.add_argument("--tuning", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        Path(args.out).write_text(json.dumps(run_one(args)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.tiny = args.model == "tiny"
    if args.tiny:
        args.model = str(build_tiny_model(args.out / "tiny_bert"))
    for warm_up in range(args.warmups):  # discarded: file caches, the prepared-data cache
        for tuning in args.tunings:
            for loop in args.loops:
                run_in_process(args, loop, tuning, args.n, WARM_UP - warm_up, args.out)
    runs = []
    for repeat in range(args.repeats):
        for tuning in args.tunings:
            loops = args.loops[repeat % len(args.loops):] + args.loops[:repeat % len(args.loops)]  # rotate
            runs += [run_in_process(args, loop, tuning, args.n, repeat, args.out) for loop in loops]
    for n in args.scaling:
        if n != args.n:
            runs += [run_in_process(args, loop, "lora", n, 0, args.out)
                     for loop in ("hf_transfer", "trainer", "trainer_grouped", "bare_steps") if loop in args.loops]
    summary = summarise(runs)
    environment = environment_info(args)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".json").write_text(json.dumps(
        {"summary": summary, "runs": runs, "environment": environment}, indent=1))
    text = markdown(summary, runs, args, environment)
    args.report.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
