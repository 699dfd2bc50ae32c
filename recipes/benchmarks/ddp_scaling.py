"""Strong scaling on the CPU: one process against two DDP processes (gloo), same data, epochs
and per-process batch, through `accelerate launch` and the domain-adaptation recipe.

    python recipes/benchmarks/ddp_scaling.py                      # tiny model, 8,000 tweets, 3 repeats
    python recipes/benchmarks/ddp_scaling.py --model sentence-transformers/all-MiniLM-L6-v2 --n 2000

Each run is the quick start's `source_only` on airline + other-domain tweets (`--n` training
rows, one epoch, batch `--batch_size` per process, one torch thread per process, no saved
model or report), evaluated once at the end. Before the repeats, one discarded warm-up run per
process count; then `--repeats` rounds in rotated order. Reported: training examples/s from
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
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-4000:]}")
    results = json.loads((out / "results.json").read_text())
    stage = results["stages"][0]
    return {"processes": processes, "rows": results["data"]["source"]["splits"]["train"],
            "train_seconds": results["timings"]["train_seconds"], "optimizer_steps": stage["steps"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "target_test_accuracy": results["eval_matrix"]["target/test"]["accuracy"],
            "source_test_accuracy": results["eval_matrix"]["source/test"]["accuracy"]}


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
    for repeat in range(args.repeats):
        for processes in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            run = launch(args, processes, args.out / f"p{processes}_r{repeat}")
            run["repeat"] = repeat
            runs.append(run)
            print(f"repeat {repeat}, {processes} process(es): {run['rows'] / run['train_seconds']:.1f} ex/s",
                  flush=True)
    by = {p: [r for r in runs if r["processes"] == p] for p in (1, 2)}
    rate = {p: [r["rows"] / r["train_seconds"] for r in rs] for p, rs in by.items()}
    ratios = [two["rows"] / two["train_seconds"] / (one["rows"] / one["train_seconds"])
              for one, two in zip(by[1], by[2])]

    def fmt(values, digits=1):
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"

    lines = [
        "# Strong scaling on the CPU: one process vs two DDP processes", "",
        f"`python recipes/benchmarks/ddp_scaling.py --model {args.model} --tuning {args.tuning} --n {args.n} "
        f"--batch_size {args.batch_size} --repeats {args.repeats}`: `source_only` on {by[1][0]['rows']} "
        f"training tweets, one epoch, batch {args.batch_size} per process, one torch thread per process, "
        "gloo; one discarded warm-up per process count, then rounds in rotated order. Examples/s from "
        "the run's own `train_seconds` (the stage's loop with its end-of-stage validation and "
        "checkpoint). Medians (min–max).", "",
        "| processes | optimizer steps | train ex/s | × one process | target test acc | source test acc |",
        "|---|---|---|---|---|---|",
    ]
    for p in (1, 2):
        lines.append(f"| {p} | {by[p][0]['optimizer_steps']} | {fmt(rate[p])} | "
                     f"{'1.00' if p == 1 else fmt(ratios, 2)} | "
                     f"{fmt([r['target_test_accuracy'] for r in by[p]], 3)} | "
                     f"{fmt([r['source_test_accuracy'] for r in by[p]], 3)} |")
    lines += ["", f"Machine: {os.cpu_count()} CPU cores; whatever else ran on them ran in every round."]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.report.with_suffix(".json").write_text(json.dumps(
        {"runs": runs, "ratio_two_over_one": ratios, "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
