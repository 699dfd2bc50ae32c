"""Cross-lingual benchmark: zero-shot and few-shot transfer on the built-in chatterbot data.

    python recipes/benchmarks/cross_lingual.py --variants e5_zero_shot minilm_zero_shot e5_few_shot_k4 e5_few_shot_k16
    python recipes/benchmarks/cross_lingual.py --seeds 1 --variants e5_cost_lora e5_cost_full \
        --report docs/benchmarks/cross_lingual_cost

Runs `recipes/cross_lingual.py` once per variant and seed (each its own process, so peak
memory is per run), then writes `docs/benchmarks/cross_lingual.md` and `.json`: per target
language, mean and spread (sample standard deviation, min–max) of test accuracy and macro-F1,
the majority-class rate, time per epoch and peak resident memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "recipes" / "configs"
MINILM = ["--model.name_or_path", "sentence-transformers/all-MiniLM-L6-v2", "--model.text_prefix", ""]

# name -> (config file, extra command-line overrides, what it shows)
VARIANTS = {
    "e5_zero_shot": ("cross_lingual.yaml", [], "multilingual e5 + LoRA, English only"),
    "minilm_zero_shot": ("cross_lingual.yaml", MINILM, "English MiniLM + LoRA, English only"),
    "e5_few_shot_k4": ("cross_lingual_few_shot.yaml", ["--data.target.k_shot", "4"],
                       "then 4 dialogs per topic and target language"),
    # 3 target epochs over 16 x 7 x 3 = 336 dialogs: about the optimizer steps of k=4's 10 epochs.
    "e5_few_shot_k16": ("cross_lingual_few_shot.yaml", ["--data.target.k_shot", "16",
                                                        "--strategy.target_num_epochs", "3"],
                        "then 16 dialogs per topic and target language"),
    # Cost of one source epoch, LoRA vs full fine-tuning, measured back to back.
    "e5_cost_lora": ("cross_lingual.yaml", ["--training.num_epochs", "1"], "multilingual e5, LoRA r=8"),
    "e5_cost_full": ("cross_lingual.yaml", ["--training.num_epochs", "1", "--tuning.method", "full",
                                            "--training.learning_rate", "5e-5"],
                     "multilingual e5, full fine-tuning"),
}


def run(variant: str, seed: int, out_root: Path, reuse: bool) -> dict:
    config, extra, _ = VARIANTS[variant]
    out = out_root / f"{variant}_seed{seed}"
    if reuse and (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())
    command = [sys.executable, str(REPO / "recipes" / "cross_lingual.py"), "--config", str(CONFIGS / config),
               "--training.seed", str(seed), "--output.dir", str(out), "--output.overwrite", "true",
               "--output.save_model", "false", *extra]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{variant} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "results.json").read_text())


def summarise(results: list[dict]) -> dict:
    languages = [name for name, row in results[0]["languages"].items()]
    out = {}
    for language in languages:
        rows = [r["languages"][language] for r in results]
        out[language] = {metric: _stats([row[metric] for row in rows]) for metric in ("accuracy", "macro_f1")}
        out[language]["role"] = rows[0]["role"]
    first_stage = [r["stages"][0] for r in results]
    out["_cost"] = {
        "seconds_per_epoch": _stats([s["train_seconds"] / max(s["epochs_completed"], 1e-9) for s in first_stage]),
        "peak_rss_mb": _stats([r["timings"]["peak_rss_mb"] for r in results]),
    }
    return out


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def majority_rate(results: list[dict]) -> float:
    """Share of the most frequent label in the pooled target test split, averaged over runs
    (the split depends on the seed)."""
    rates = []
    for result in results:
        counts = result["data"]["target"]["label_counts"]["test"]
        rates.append(max(counts.values()) / sum(counts.values()))
    return statistics.fmean(rates)


def markdown(summary: dict, majority: float, seeds: list[int], environment: dict) -> str:
    lines = ["# Cross-lingual benchmark (built-in `chatterbot`, 7 topics)", "",
             f"Seeds {seeds}; mean ± sample std (min–max) of test-split scores. Source: English.",
             f"Majority-class rate on the pooled target test split (mean over runs): {majority:.3f}.",
             f"Machine: {environment['device']} ({os.cpu_count()} cores), torch {environment['torch']}, transformers "
             f"{environment['transformers']}, peft {environment['peft']}.",
             f"Regenerate: `python recipes/benchmarks/cross_lingual.py {' '.join(sys.argv[1:])}`.",
             "Timings: see docs/benchmarks/README.md (this machine was shared; compare within a table).", "",
             "| variant | language | accuracy | macro-F1 |", "|---|---|---|---|"]
    for variant, per_language in summary.items():
        for language, row in per_language.items():
            if language.startswith("_"):
                continue
            lines.append(f"| {variant} | {language} ({row['role']}) | {_fmt(row['accuracy'])} | {_fmt(row['macro_f1'])} |")
    lines += ["", "| variant | what | seconds per source epoch | peak RSS (MiB) |", "|---|---|---|---|"]
    for variant, per_language in summary.items():
        cost = per_language["_cost"]
        lines.append(f"| {variant} | {VARIANTS[variant][2]} | {_fmt(cost['seconds_per_epoch'], 1)} | "
                     f"{_fmt(cost['peak_rss_mb'], 0)} |")
    return "\n".join(lines) + "\n"


def _fmt(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (1, 2, ...)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_cross_lingual")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "benchmarks" / "cross_lingual")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a run's results.json when it exists (continue a benchmark)")
    args = parser.parse_args()
    seeds = list(range(1, args.seeds + 1))
    summary, every = {}, []
    for variant in args.variants:
        results = []
        for seed in seeds:
            print(f"{variant} seed {seed} ...", flush=True)
            results.append(run(variant, seed, args.out, args.reuse))
        summary[variant] = summarise(results)
        every += results
    args.report.parent.mkdir(parents=True, exist_ok=True)
    report = markdown(summary, majority_rate(every), seeds, every[-1]["environment"])
    args.report.with_suffix(".md").write_text(report)
    args.report.with_suffix(".json").write_text(json.dumps({"seeds": seeds, "summary": summary}, indent=1))
    print(report)


if __name__ == "__main__":
    main()
