"""Memory of a `dapt` run's unlabelled-corpus data path as the corpus grows.

For each size, a JSON-lines corpus of generated text (about 1% empty lines, a few lines equal
to the target's evaluation texts) is written to a temporary folder, and a **fresh process**
runs the data path of a `dapt` run on it: the recipe's own data preparation (read, filter,
exclude the target's evaluation texts, a seeded sample of `max_train_samples` = 90% of the
lines, tokenize) and one epoch of the masked-LM stage's training loader, built and prepared
exactly as the engine builds it. No model trains (only the tokenizer and the configuration
load). Each child has its own datasets cache, so every size tokenizes from scratch.

Reported per size: peak resident memory (`ru_maxrss`: everything, including pages of
memory-mapped Arrow files the kernel may drop at any time), peak *anonymous* resident memory
(`RssAnon` of /proc/self/status sampled every 5 ms: what the process itself holds), and the
seconds of preparation and of the epoch.

    python recipes/benchmarks/unlabeled_memory.py --sizes 10000 100000 1000000 [--format csv]

`--model` is any encoder folder or Hub id available offline (default: the packaged MiniLM);
`--batches N` stops the epoch after N batches (the loader's order is still built in full).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WORDS = ("the of and to in is was for on that with as by at from it battery screen flight crew "
         "delay gate phone update app store music ticket price service good bad great awful "
         "love hate new old fast slow again never always today tomorrow really very").split()
LABELS = ("positive", "negative", "neutral")


def _line(rng: random.Random, words: tuple[int, int] = (4, 40)) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words)))


def write_labelled(path: Path, rows: int, seed: int) -> list[str]:
    """A small labelled split (the run's source or target); its texts."""
    rng = random.Random(seed)
    texts = [f"{_line(rng)} {i}" for i in range(rows)]
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"text": text, "label": LABELS[i % 3]}) + "\n")
    return texts


def write_corpus(path: Path, lines: int, evaluation_texts: list[str], seed: int = 0,
                 words: tuple[int, int] = (4, 40)) -> None:
    """``lines`` texts of ``words`` words, ~1% empty, every 1000th one a target text; JSON
    lines (``{"text": ...}``) or, for a ``.csv`` path, a ``text`` column."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as f:
        rows = csv.writer(f) if path.suffix == ".csv" else None
        if rows:
            rows.writerow(["text"])
        for i in range(lines):
            if i % 100 == 7:
                text = ""
            elif i % 1000 == 500:
                text = evaluation_texts[(i // 1000) % len(evaluation_texts)]
            else:
                text = _line(rng, words)
            if rows:
                rows.writerow([text])
            else:
                f.write(json.dumps({"text": text}) + "\n")


class AnonPeak:
    """The peak of RssAnon (kB), sampled in a thread."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0  # pragma: no cover - not Linux

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def data_path(folder: Path, model: str, batches: int | None) -> dict:
    """In this process: the `dapt` data path on ``folder``'s corpus; memory and time."""
    from hf_transfer import DomainAdaptationRecipe, load_config
    from hf_transfer.data.tokenize import make_loader

    corpus = next(folder.glob("corpus.*"))
    lines = sum(1 for _ in open(corpus, "rb")) - (corpus.suffix == ".csv")
    labelled = {"files": {"train": str(folder / "labelled.jsonl")}}
    config = load_config(overrides={
        "model.name_or_path": model, "model.max_length": 64, "strategy.name": "dapt",
        "data.source": labelled, "data.target": labelled,
        "data.unlabeled": {"files": {"train": str(corpus)},
                           "max_train_samples": lines * 9 // 10},
        "training.batch_size": 32, "output.dir": str(folder / "run")})
    start_kb = AnonPeak.now()
    started = time.perf_counter()
    with AnonPeak() as prepare_peak:
        recipe = DomainAdaptationRecipe(config)
        accelerator = recipe._start()
        recipe._prepare_output_dir(accelerator)
        with accelerator.main_process_first():  # as Recipe.run
            data, tokenizer, _ = recipe._prepare_data()
        stage = recipe.chain[0].mlm_stage(recipe.context)
    prepared = time.perf_counter()
    with AnonPeak() as epoch_peak:
        cfg = stage.training  # the training loader as Engine._prepare builds it
        loader = accelerator.prepare(make_loader(
            stage.train, tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed,
            group_by_length=cfg.group_by_length, num_processes=accelerator.num_processes,
            pad_to_multiple_of=cfg.pad_to_multiple_of))
        loader.set_epoch(0)
        rows = seen = 0
        for seen, batch in enumerate(loader, start=1):
            rows += len(batch["input_ids"])
            if batches and seen >= batches:
                break
    done = time.perf_counter()
    mib = 1 / 1024
    return {"lines": lines, "texts": len(stage.train), "batches": seen, "rows": rows,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * mib,
            "peak_anon_mib": max(prepare_peak.peak, epoch_peak.peak) * mib,
            "start_anon_mib": start_kb * mib, "prepare_peak_anon_mib": prepare_peak.peak * mib,
            "epoch_peak_anon_mib": epoch_peak.peak * mib,
            "prepare_s": prepared - started, "epoch_s": done - prepared,
            "cache_files": [f["filename"] for f in stage.train.cache_files]}


def measure(lines: int, model: str, batches: int | None = None, suffix: str = ".jsonl",
            words: tuple[int, int] = (4, 40)) -> dict:
    """Write a corpus of ``lines`` lines and run :func:`data_path` on it in a fresh process
    with a datasets cache of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        evaluation = write_labelled(folder / "labelled.jsonl", 60, seed=1)
        write_corpus(folder / f"corpus{suffix}", lines, evaluation, words=words)
        return in_fresh_process(folder, model, batches, cache=folder / "cache")


def in_fresh_process(folder: Path, model: str, batches: int | None, cache: Path,
                     hash_seed: int = 0) -> dict:
    """:func:`data_path` on ``folder`` (``labelled.jsonl``, ``corpus.jsonl`` or ``.csv``) in a new
    Python process using the datasets cache ``cache``."""
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONHASHSEED": str(hash_seed)}
    command = [sys.executable, __file__, "--child", str(folder), "--model", model]
    if batches:
        command += ["--batches", str(batches)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"the child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                        help="the corpus file's format (datasets reads each its own way)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(data_path(Path(args.child), args.model, args.batches)))
        return
    print("| lines | texts kept | batches | peak RSS (MiB) | peak anonymous RSS (MiB): preparing / "
          "epoch | prepare (s) | epoch (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for lines in args.sizes:
        r = measure(lines, args.model, args.batches, suffix=f".{args.format}")
        print(f"| {lines:,} | {r['texts']:,} | {r['batches']:,} | {r['peak_rss_mib']:.0f} | "
              f"{r['prepare_peak_anon_mib']:.0f} / {r['epoch_peak_anon_mib']:.0f} | {r['prepare_s']:.1f} | {r['epoch_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
