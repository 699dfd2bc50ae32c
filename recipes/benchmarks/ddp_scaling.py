"""Strong scaling on the CPU: one process against two DDP processes (gloo), same data, epochs
and per-process batch, through `accelerate launch` and the domain-adaptation recipe.

    python recipes/benchmarks/ddp_scaling.py                      # tiny model, 8,000 tweets, 3 repeats
    python recipes/benchmarks/ddp_scaling.py --model sentence-transformers/all-MiniLM-L6-v2 --n 2000

Each run is the quick start's `source_only` on airline + other-domain tweets (`--n` training
rows, one epoch, batch `--batch_size` per process, one torch thread per process, no saved
model or report), evaluated once at the end. A third arm starts two independent one-process
runs at the same time: what the machine's cores give without DDP (two busy cores can each run
slower than one alone), so the report can split the gap to perfect scaling into the machine's
share and DDP's own. Before the repeats, one discarded warm-up run per process count; then
`--repeats` rounds in rotated order. Reported: training examples/s from
the run's own `train_seconds` (the stage's loop with its end-of-stage validation and
checkpoint; not the start-up, data preparation or final evaluation), medians (min-max), the
median of the per-round ratios two processes ÷ one (2.0 is perfect scaling on two cores), and
the test scores (two processes take half the optimizer steps with twice the global batch, so
the scores differ by that, not by a bug: the exactness of DDP is the tests' business,
tests/test_recipe.py).

Writes docs/benchmarks/ddp_scaling.md and .json (or --report).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything used here ships in packages

TINY = "tiny"


def launch(args, processes: int, out: Path) -> dict:
    return finish(start(args, processes, out))


def start(args, processes: int, out: Path) -> tuple:
    """The recipe started under `accelerate launch` with ``processes`` processes (not waited for)."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--num_processes", str(processes),
                "--multi_gpu" if processes > 1 else "--cpu"]
    overrides = {
        "model.name_or_path": args.model_path, "model.max_length": 128,
        "data.source.builtin": "tweets", "data.source.max_train_samples": args.n,
        "data.source.max_eval_samples": 200, "data.target.builtin": "tweets",
        "data.target.filter.domain": "apple", "data.target.max_eval_samples": 200,
        "tuning.method": args.tuning, "training.num_epochs": 1, "training.batch_size": args.batch_size,
        "training.eval_batch_size": 64, "training.seed": 1, "training.eval_strategy": "epoch",
        "strategy.name": "source_only", "output.dir": str(out), "output.overwrite": True,
        "output.save_model": False, "output.report": False,
    }
    command = [*launcher, str(REPO / "recipes" / "domain_adaptation.py")]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    return child, processes, out, started


def finish(started_run: tuple) -> dict:
    """Wait for a run from :func:`start`; its training throughput and scores."""
    child, processes, out, started = started_run
    _, stderr = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{stderr[-4000:]}")
    results = json.loads((out / "results.json").read_text())
    stage = results["stages"][0]
    return {"processes": processes, "rows": results["data"]["source"]["splits"]["train"],
            "train_seconds": results["timings"]["train_seconds"], "optimizer_steps": stage["steps"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "target_test_accuracy": results["eval_matrix"]["target/test"]["accuracy"],
            "source_test_accuracy": results["eval_matrix"]["source/test"]["accuracy"]}


INDEPENDENT = "independent"  # two one-process runs at the same time: what 2 cores give without DDP


def run_arm(args, arm, out: Path) -> dict:
    """One run of ``arm`` (1 or 2 processes, or two independent one-process runs at once)."""
    if arm != INDEPENDENT:
        run = launch(args, arm, out)
        return {**run, "examples_per_s": run["rows"] / run["train_seconds"]}
    first, second = (finish(started) for started in [start(args, 1, out / name) for name in ("a", "b")])
    return {**first, "processes": INDEPENDENT, "examples_per_s": sum(r["rows"] / r["train_seconds"] for r in (first, second)),
            "each": [first, second]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=TINY, help=f"`{TINY}`: vs_trainer.py's random 2-layer BERT")
    parser.add_argument("--tuning", default="lora", choices=["lora", "full"])
    parser.add_argument("--n", type=int, default=8000, help="training rows")
    parser.add_argument("--batch_size", type=int, default=32, help="per process")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_ddp_scaling")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "benchmarks" / "ddp_scaling")
    args = parser.parse_args()
    if args.model == TINY:
        from vs_trainer import build_tiny_model

        args.model_path = str(build_tiny_model(args.out / "tiny_bert"))
    else:
        args.model_path = args.model
    runs = []
    for processes in (1, 2):  # warm-up: file caches, the prepared-data cache; discarded
        print(f"warm-up, {processes} process(es) ...", flush=True)
        launch(args, processes, args.out / f"warmup_p{processes}")
    arms = [1, 2, INDEPENDENT]
    for repeat in range(args.repeats):
        for arm in arms[repeat % 3:] + arms[:repeat % 3]:  # rotated
            run = run_arm(args, arm, args.out / f"p{arm}_r{repeat}")
            run["repeat"] = repeat
            runs.append(run)
            print(f"repeat {repeat}, {arm} process(es): {run['examples_per_s']:.1f} ex/s", flush=True)
    by = {arm: [r for r in runs if r["processes"] == arm] for arm in arms}
    rate = {arm: [r["examples_per_s"] for r in rs] for arm, rs in by.items()}
    ratios = {arm: [r["examples_per_s"] / one["examples_per_s"] for one, r in zip(by[1], by[arm])] for arm in arms}
    ddp_share = [two["examples_per_s"] / both["examples_per_s"] for two, both in zip(by[2], by[INDEPENDENT])]

    def fmt(values, digits=1):
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    label = {1: "1", 2: "2 (DDP)", INDEPENDENT: "2 independent one-process runs at once (the machine's ceiling)"}
    lines = [
        "# Strong scaling on the CPU: one process vs two DDP processes", "",
        f"`python recipes/benchmarks/ddp_scaling.py --model {args.model} --tuning {args.tuning} --n {args.n} "
        f"--batch_size {args.batch_size} --repeats {args.repeats}`: `source_only` on {by[1][0]['rows']} "
        f"training tweets, one epoch, batch {args.batch_size} per process, one torch thread per process, "
        "gloo; one discarded warm-up per process count, then rounds in rotated order. Examples/s from "
        "the run's own `train_seconds` (the stage's loop with its end-of-stage validation and "
        "checkpoint); for the two independent runs, the sum of theirs. Medians (min–max) of the values "
        "and of the per-round ratios.", "",
        "| processes | optimizer steps | train ex/s | × one process | target test acc | source test acc |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        lines.append(f"| {label[arm]} | {by[arm][0]['optimizer_steps']} | {fmt(rate[arm])} | "
                     f"{'1.00' if arm == 1 else fmt(ratios[arm], 2)} | "
                     f"{fmt([r['target_test_accuracy'] for r in by[arm]], 3)} | "
                     f"{fmt([r['source_test_accuracy'] for r in by[arm]], 3)} |")
    lines += ["", f"Two DDP processes reach {fmt(ddp_share, 2)} of the two independent runs' examples/s: what "
              "DDP itself costs (gradient all-reduce, waiting for the slower process, work each process "
              "repeats); the rest of the gap to 2.0 is the machine's (two busy cores run slower than one).",
              "", f"Machine: {os.cpu_count()} CPU cores; whatever else ran on them ran in every round."]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.report.with_suffix(".json").write_text(json.dumps(
        {"runs": runs, "ratio_over_one": {str(arm): values for arm, values in ratios.items()},
         "ddp_over_independent": ddp_share, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
