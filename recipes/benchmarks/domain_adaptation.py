"""Domain-adaptation benchmark: what unlabelled target text (TAPT, DANN) and a few labelled
target tweets (sequential) buy, against source-only and target-only training.

    python recipes/benchmarks/domain_adaptation.py                    # ~2 h 15 min on one CPU core, 1 torch thread
    python recipes/benchmarks/domain_adaptation.py --deadline 07:30   # start no run after 07:30 UTC
    python recipes/benchmarks/domain_adaptation.py --report_only      # rebuild the reports from finished runs
    # smoke test of the whole pipeline on a tiny model (a few minutes):
    python recipes/benchmarks/domain_adaptation.py --model tests-tiny --source_train 40 \\
        --target_text 40 --target_test 30 --k 2 --target_min_steps 10 --seeds 1 --out /tmp/bench_da \\
        --report /tmp/bench_da/docs

Writes docs/benchmarks/domain_adaptation.md / .json (rewritten after every run, so an
interrupted benchmark still reports what ran). Runs whose results.json exists under --out
are reused, not repeated.

Data (built-in `tweets`, negative/neutral/positive): source = airline tweets; targets = Apple
tweets and #DeflateGate tweets (`--targets`). Each domain is split ONCE (seed 0) and written
to parquet, so every seed, tuning and arm sees the same tweets: source train (`--source_train`,
stratified), source validation/test (30 each: the source stage runs one epoch, so its
selection has one candidate); target test (`--target_test`, stratified), target validation
(60, stratified: selection of the MLM stage and of the k-shot stages), and the target text
pool (`--target_text`, a random sample of the rest): the unlabelled text of `tapt`/`dann`, and
the pool the k labelled tweets per class of `sequential`/`target_only` are drawn from (seeded).

Arms (packaged MiniLM, `--tunings` lora and full, `--seeds` seeds, batch 16, one source epoch):
* `source_only` — the labelled source only;
* `tapt` — one masked-LM epoch on the target text pool (labels never read; MiniLM has no MLM
  head, a fresh one is trained), then the source stage on the adapted encoder;
* `dann` — the source stage with the target text behind a gradient-reversal layer;
* `coral` — the source stage with the CORAL loss between source and target feature covariances;
* `self_training` — the source stage, then `--rounds` rounds on the source plus confident,
  class-balanced pseudo-labels of the target text pool (threshold `--pseudo_label_threshold`);
* `sequential` — `source_only`, then 5 epochs on k labelled target tweets per class (its source
  stage is the `source_only` run's, reused from that run's checkpoint through
  `--output.resume_from_checkpoint latest`: the same stage, same seed, so the same weights);
* `target_only` — the same encoder and tuning trained only on those k labelled target tweets
  (5 epochs, source-stage learning rate), selecting on the target validation split;
* `linear_probe` — reference: the frozen encoder, its output layer fitted on those k tweets;
* `source_probe` — reference for the arms that read no target label: the frozen encoder, its
  output layer fitted on the labelled source tweets (selected on source validation);
* `label_shift` — `source_only`'s classifier corrected to the target's estimated label
  distribution (unlabelled target text);
* `auto` — runs `source_only`, `sequential`, `multi_task`, `linear_probe` and `target_only` on the
  k labelled tweets and keeps the best on the target validation split; reported also against the
  `target_only` arm (the issue's "never negative transfer against target_only").
Scores: accuracy and macro-F1 on the target test split; mean ± sample std (min–max) over seeds,
and the paired difference to `source_only` (same seed, tuning and target).

Time, measured at the defaults (LoRA, 2 targets x 3 seeds, one torch thread on a 2-core AMD
EPYC): per (target, seed) ~85 s `source_only`, ~35 s `label_shift`, ~185 s `dann`, ~150 s
`self_training`, ~95 s each `sequential`/`target_only`, ~20 s `linear_probe`, ~40 s
`source_probe` and ~9 min `auto` (five candidate runs): ~2 h 15 min in all. Runs go seed by
seed, so `--deadline` drops whole later seeds first.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from bench_utils import fmt_stats, parse_deadline, seed_stats  # noqa: E402  (this folder)
from hf_transfer.baselines import judge  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything used here ships in packages

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TINY = "tests-tiny"  # --model value: build the tests' tiny BERT (smoke test)
ARMS = ("source_only", "label_shift", "tapt", "dann", "coral", "self_training", "sequential", "target_only",
        "linear_probe", "source_probe", "auto")
# `auto`'s candidates: the strategies its k labelled target tweets per class allow (those that
# read unlabelled target text are skipped next to `k_shot`), and the target_only baseline.
AUTO_CANDIDATES = ["source_only", "sequential", "multi_task", "linear_probe", "target_only"]
DEFAULT_ARMS = ("source_only", "label_shift", "dann", "self_training", "sequential", "target_only", "linear_probe",
                "source_probe", "auto")
# The frozen-encoder probe on the same labelled data, each arm's floor (the reference):
# arms that read k labelled target tweets per class against `linear_probe`, the others
# (labelled source, unlabelled target text) against `source_probe`.
PROBE_OF = {arm: "linear_probe" for arm in ("sequential", "target_only", "auto")}
PROBE_OF.update({arm: "source_probe" for arm in ("source_only", "label_shift", "tapt", "dann", "coral",
                                                 "self_training")})
REUSES_SOURCE = ("label_shift", "sequential")  # continue from source_only's finished source stage
SOURCE_LR = {"lora": 2e-3, "full": 1e-4}
MLM_LR = {"lora": 1e-3, "full": 1e-4}
TARGET_LR = {"lora": 1e-3, "full": 1e-4}  # sequential's target stage (the head is trained)


def write_fixed_splits(folder: Path, args) -> dict:
    """Each domain split once (seed 0) into parquet files; returns {domain: {split: path}}."""
    import numpy as np

    from hf_transfer.data.builtin import load_builtin
    from hf_transfer.data.loading import stratified_split

    folder.mkdir(parents=True, exist_ok=True)
    tweets = load_builtin("tweets")
    rng = np.random.default_rng(0)
    out = {}

    def take(part, rows):
        return part.select(sorted(int(i) for i in rows)).select_columns(["text", "label", "domain"])

    for domain in ("airline", *args.targets):
        paths = {s: folder / f"{domain}_{s}.parquet" for s in ("train", "validation", "test")}
        out[domain] = {s: str(p) for s, p in paths.items()}
        if all(p.is_file() for p in paths.values()):
            continue
        data = tweets.select([i for i, d in enumerate(tweets["domain"]) if d == domain])
        sizes = ((args.source_eval, args.source_eval, args.source_train) if domain == "airline"
                 else (60, args.target_test, None))  # validation, test, train (None: a text pool)
        validation_rows, rest = stratified_split(data["label"], sizes[0] / len(data), seed=0)
        rest_data = data.select(rest)
        test_rows, rest2 = stratified_split(rest_data["label"], sizes[1] / len(rest_data), seed=0)
        pool = rest_data.select(rest2)
        if sizes[2] is not None:  # the labelled source training set: stratified
            train_rows, _ = stratified_split(pool["label"], min(1.0, sizes[2] / len(pool)), seed=0)
        else:  # the target text pool: a random sample, chosen without looking at labels
            train_rows = rng.permutation(len(pool))[: args.target_text]
        take(data, validation_rows).to_parquet(str(paths["validation"]))
        take(rest_data, test_rows).to_parquet(str(paths["test"]))
        take(pool, train_rows).to_parquet(str(paths["train"]))
    return out


def tiny_model(folder: Path) -> str:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_assets import build_tiny_bert

    if not (folder / "config.json").is_file():
        build_tiny_bert(folder, seed=0)
    return str(folder)


def overrides_for(args, paths, target, tuning, arm, seed, out: Path) -> dict:
    source, tgt = paths["airline"], paths[target]
    target_data = {"files": tgt}
    k_shot = {"files": tgt, "k_shot": args.k}
    base = {
        "model.name_or_path": args.model_path, "model.max_length": args.max_length,
        "data.source": {"files": source}, "data.target": target_data,
        "tuning.method": tuning, "training.seed": seed, "training.batch_size": 16,
        "training.eval_batch_size": 64, "training.num_epochs": args.source_epochs, "training.eval_strategy": "epoch",
        "training.learning_rate": SOURCE_LR[tuning], "strategy.name": "source_only",
        "output.dir": str(out), "output.overwrite": True, "output.save_model": False,
        "output.report": False,
    }
    if arm == "label_shift":
        base.update({"strategy.label_shift": args.label_shift})
    elif arm == "tapt":
        base.update({"strategy.name": "tapt", "strategy.mlm_num_epochs": 1,
                     "strategy.mlm_learning_rate": MLM_LR[tuning]})
    elif arm == "dann":
        base.update({"strategy.name": "dann", "strategy.dann_weight": args.dann_weight,
                     "strategy.dann_objective": args.dann_objective})
    elif arm == "coral":
        base.update({"strategy.name": "coral", "strategy.coral_weight": args.coral_weight})
    elif arm == "self_training":
        base.update({"strategy.name": "self_training", "strategy.self_training_rounds": args.rounds,
                     "strategy.pseudo_label_threshold": args.pseudo_label_threshold})
    elif arm == "sequential":
        base.update({"strategy.name": "sequential", "data.target": k_shot,
                     "strategy.target_num_epochs": 5, "strategy.target_min_steps": args.target_min_steps,
                     "strategy.target_learning_rate": TARGET_LR[tuning]})
    elif arm == "target_only":
        # The k labelled target tweets as the "source" (same files, k_shot and seed as the
        # sequential arm's target stage: the same tweets); select on the target validation split.
        # Stretched to --target_min_steps as the engine stretches a target stage (10 evaluations).
        updates = 5 * -(-args.k * 3 // 16)
        stretched = {"training.max_steps": args.target_min_steps, "training.eval_strategy": "steps",
                     "training.eval_steps": -(-args.target_min_steps // 10)} \
            if args.target_min_steps > updates else {}
        base.update({"data.source": {"files": {**tgt, "test": tgt["validation"]}, "k_shot": args.k},
                     "training.num_epochs": 5, **stretched})
    elif arm == "linear_probe":
        # Reference: the frozen encoder, its output layer fitted on the same k tweets per class.
        base.update({"strategy.name": "linear_probe", "tuning.method": "frozen", "data.target": k_shot})
    elif arm == "source_probe":
        # Reference for the arms without target labels: the frozen encoder's output layer fitted
        # on the labelled source tweets (selected on source validation), scored on the target test.
        base.update({"strategy.name": "linear_probe", "tuning.method": "frozen",
                     "data.target": {"files": {**source, "test": tgt["test"]}}})
    elif arm == "auto":
        # Every candidate a run of its own on the same data; kept: the best on target validation.
        base.update({"strategy.name": "auto", "strategy.candidates": AUTO_CANDIDATES, "data.target": k_shot,
                     "strategy.target_num_epochs": 5, "strategy.target_min_steps": args.target_min_steps,
                     "strategy.target_learning_rate": TARGET_LR[tuning]})
    return base


def run_one(args, paths, target, tuning, arm, seed, root: Path) -> dict:
    from hf_transfer import DomainAdaptationRecipe, load_config

    out = root / target / tuning / f"{arm}_seed{seed}"
    overrides = overrides_for(args, paths, target, tuning, arm, seed, out)
    reused = root / target / tuning / f"source_only_seed{seed}" / "checkpoints" / "source"
    if arm in REUSES_SOURCE and (reused / "result.json").is_file():
        # The source stage is source_only's, finished: restore it and run only the target stage.
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(reused, out / "checkpoints" / "source")
        overrides["output.resume_from_checkpoint"] = "latest"
    started = time.perf_counter()
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    results["_wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))  # with wall time
    if arm != "source_only":  # source_only's source checkpoint serves the sequential arm
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    else:
        for step in (out / "checkpoints" / "source").glob("step_*"):
            if step.name != f"step_{results['best_step']['source']:07d}":
                shutil.rmtree(step, ignore_errors=True)
    if arm == REUSES_SOURCE[-1]:  # its last user
        shutil.rmtree(reused.parent, ignore_errors=True)
    shutil.rmtree(out / "mlm_encoder", ignore_errors=True)
    for checkpoints in (out / "candidates").glob("*/checkpoints"):  # auto's candidate runs
        shutil.rmtree(checkpoints, ignore_errors=True)
    return results


# --- summaries -------------------------------------------------------------------------------


def summarise(runs: dict) -> dict:
    """runs: {(target, tuning, arm): {seed: results}} -> per cell: scores, paired differences
    to source_only, MLM losses (tapt), seconds."""
    out = {}
    for (target, tuning, arm), by_seed in sorted(runs.items()):
        rows = {seed: r["eval_matrix"]["target/test"] for seed, r in by_seed.items()}
        entry = {m: seed_stats([row[m] for row in rows.values()]) for m in ("accuracy", "macro_f1")}
        entry["seeds"] = sorted(rows)
        entry["n_test"] = next(iter(rows.values()))["n"]
        entry["classes_predicted"] = {s: classes_predicted(r) for s, r in by_seed.items()}
        base = runs.get((target, tuning, "source_only"), {}) if arm != "source_only" else {}
        for m in ("accuracy", "macro_f1"):
            paired = [rows[s][m] - base[s]["eval_matrix"]["target/test"][m] for s in sorted(rows) if s in base]
            entry[f"{m}_vs_source_only"] = seed_stats(paired) if paired else None
            entry[f"{m}_verdict_vs_source_only"] = paired_verdict(rows, base, m)
        if arm in PROBE_OF:
            verdict = paired_verdict(rows, runs.get((target, tuning, PROBE_OF[arm]), {}), "macro_f1")
            entry["macro_f1_verdict_vs_probe"] = verdict and {"probe": PROBE_OF[arm], **verdict}
        if arm == "auto":  # "never negative against target_only": the same verdict, against that arm
            entry["chosen"] = {s: r["auto"]["chosen"] for s, r in by_seed.items()}
            entry["macro_f1_verdict_vs_target_only"] = paired_verdict(
                rows, runs.get((target, tuning, "target_only"), {}), "macro_f1")
        if arm == "source_only":  # does the source classifier beat its own majority class?
            entry["source_validation_accuracy"] = {
                s: r["eval_matrix"]["source/validation"]["accuracy"] for s, r in by_seed.items()}
        if arm == "tapt":
            entry["mlm_loss_before"] = seed_stats([r["masked_lm"]["loss_before"] for r in by_seed.values()])
            entry["mlm_loss_after"] = seed_stats([r["masked_lm"]["loss_after"] for r in by_seed.values()])
        entry["wall_seconds"] = seed_stats([r.get("_wall_seconds", r["timings"]["total_seconds"])
                                        for r in by_seed.values()])
        entry["target_train"] = next(iter(by_seed.values()))["data"]["target"]["splits"]["train"]
        out[f"{target} / {tuning} / {arm}"] = entry
    return out


def paired_verdict(rows: dict, reference: dict, metric: str) -> dict | None:
    """The library's verdict rule (hf_transfer.baselines.judge: gain, noise band, verdict) for an
    arm's target-test ``rows`` {seed: scores} against another arm's runs {seed: results}, on the
    seeds both have; None when they share none."""
    seeds = [s for s in sorted(rows) if s in reference]
    if not seeds:
        return None
    return judge([rows[s][metric] for s in seeds],
                 [reference[s]["eval_matrix"]["target/test"][metric] for s in seeds],
                 rows[seeds[0]]["n"])


def classes_predicted(results: dict) -> int:
    """How many classes the run's classifier predicts on the target test split (1: collapsed)."""
    matrix = results["confusion_matrix"]
    assert matrix["split"] == "target/test", matrix["split"]
    return sum(any(row[j] for row in matrix["matrix"]) for j in range(len(matrix["labels"])))


WHAT = {
    "source_only": "labelled source only",
    "label_shift": "source_only, outputs re-weighted to the target's estimated P(Y) (unlabelled target text)",
    "linear_probe": "reference: frozen encoder, logistic regression on k labelled target per class",
    "source_probe": "reference: frozen encoder, logistic regression on the labelled source",
    "tapt": "MLM on the target text pool, then source",
    "dann": "source + target text, domain-adversarial",
    "coral": "source + target text, covariance alignment",
    "self_training": "source, then source + balanced pseudo-labelled target text",
    "sequential": "source, then k labelled target per class",
    "target_only": "k labelled target per class only",
    "auto": "the best on target validation of " + ", ".join(AUTO_CANDIDATES),
}


def _verdict(v: dict | None) -> str:
    return "—" if not v else f"{v['verdict']} ({v['gain']:+.3f}, ±{v['noise']:.3f})"


def markdown(summary: dict, args, majority: dict, plan: str, environment: dict) -> str:
    lines = [
        "# Domain-adaptation benchmark: unlabelled target text (TAPT, DANN) vs a few labels", "",
        f"Source: {args.source_train} airline tweets (stratified), {args.source_epochs:g} epochs, selected on "
        f"{args.source_eval} airline validation tweets; targets: "
        f"{', '.join(args.targets)} tweets. Target test: {args.target_test} tweets per target "
        f"(stratified); target text pool: {args.target_text} tweets (random), the unlabelled text "
        f"of `tapt` (one masked-LM epoch; MiniLM has no MLM head, a fresh one trains with it) and "
        f"`dann` (weight {args.dann_weight}, objective {args.dann_objective}), `self_training` "
        f"({args.rounds} rounds, threshold {args.pseudo_label_threshold}) and `coral` (weight {args.coral_weight}), and the pool "
        f"of the k = {args.k} labelled tweets per "
        f"class of `sequential`/`target_only`/`linear_probe` (5 epochs, at least {args.target_min_steps} steps; `linear_probe`: fitted, nothing else trains). `label_shift`: `source_only`'s classifier corrected by `{args.label_shift}` on the target text pool. Packaged MiniLM (`{args.model}`), "
        f"`model.max_length` {args.max_length}, batch 16; learning rates: source "
        f"LoRA {SOURCE_LR['lora']:g} / full {SOURCE_LR['full']:g}, MLM {MLM_LR['lora']:g} / "
        f"{MLM_LR['full']:g}, sequential target stage {TARGET_LR['lora']:g} / {TARGET_LR['full']:g}. "
        "Mean ± sample std (min–max) over seeds; `vs source_only` is the mean paired difference "
        "(same seed). Each domain is split once (seed 0); seeds vary head initialisation, "
        "order, dropout, masks and the k-shot sample.", "",
    ]
    for target in args.targets:
        lines += [f"## airline → {target} (majority-class accuracy of its test split: "
                  f"{majority.get(target, float('nan')):.3f})", "",
                  "| tuning | arm | what | seeds | accuracy | macro-F1 | vs source_only (acc) | vs source_only (macro-F1) | verdict (macro-F1, noise band) | s per run |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, row in summary.items():
            t, tuning, arm = name.split(" / ")
            if t != target:
                continue
            lines.append(f"| {tuning} | {arm} | {WHAT[arm]} | {len(row['seeds'])} | {fmt_stats(row['accuracy'])} | "
                         f"{fmt_stats(row['macro_f1'])} | {fmt_stats(row['accuracy_vs_source_only'])} | "
                         f"{fmt_stats(row['macro_f1_vs_source_only'])} | {_verdict(row['macro_f1_verdict_vs_source_only'])} | "
                         f"{row['wall_seconds']['mean']:.0f} |")
        for name, row in summary.items():
            if name.startswith(f"{target} /") and "source_validation_accuracy" in row:
                checks = ", ".join(f"seed {s}: {a:.3f}{'' if a > majority['airline/validation'] else ' (NOT above)'}"
                                   for s, a in sorted(row["source_validation_accuracy"].items()))
                lines += ["", f"Source classifier ({name.split(' / ')[1]}) on its own validation split, against "
                          f"its majority class ({majority['airline/validation']:.3f}): {checks}."]
        collapsed = [f"{name.split(' / ', 1)[1]} seed {s}" for name, row in summary.items()
                     if name.startswith(f"{target} /") for s, n in sorted(row["classes_predicted"].items()) if n < 2]
        lines += ["", "Runs that predict a single class for every target test tweet: "
                  + (", ".join(collapsed) if collapsed else "none") + "."]
        floors = [f"{name.split(' / ', 1)[1]} vs {row['macro_f1_verdict_vs_probe']['probe']}: "
                  f"{_verdict(row['macro_f1_verdict_vs_probe'])}" for name, row in summary.items()
                  if name.startswith(f"{target} /") and row.get("macro_f1_verdict_vs_probe")]
        if floors:
            lines += ["", "Against the frozen-encoder probe on the same labels (macro-F1, paired per seed; "
                      "`linear_probe` for the arms that read labelled target tweets, `source_probe` for the "
                      "others): " + "; ".join(floors) + "."]
        for name, row in summary.items():
            if name.startswith(f"{target} /") and "chosen" in row:
                chosen = ", ".join(f"seed {s}: {c}" for s, c in sorted(row["chosen"].items()))
                lines += ["", f"`auto` ({name.split(' / ')[1]}) chose {chosen}; against `target_only` "
                          f"(macro-F1, paired per seed): {_verdict(row['macro_f1_verdict_vs_target_only'])}."]
        taptrows = [(n, r) for n, r in summary.items() if n.startswith(f"{target} /") and "mlm_loss_after" in r]
        if taptrows:
            lines += ["", "Masked-LM loss on the target validation text (tapt), before → after: " + "; ".join(
                f"{n.split(' / ')[1]} {fmt_stats(r['mlm_loss_before'], 2)} → {fmt_stats(r['mlm_loss_after'], 2)}"
                for n, r in taptrows)]
        lines.append("")
    lines += [
        "Reading (written for the runs of 2026-12-01: LoRA, seeds 1-3, 500 test tweets per target; "
        "a rerun with other settings needs its own reading): every source classifier beats its "
        "majority class on airline validation (0.79-0.81 vs 0.63), so the arms are compared. "
        "Apple differs from airline mostly in P(Y) (57% neutral vs 63% negative): `label_shift`, "
        "which reads only unlabelled Apple text, is the one arm called positive transfer "
        "(+0.087 macro-F1, +0.126 accuracy, every seed above `source_only`), ahead of "
        "`self_training` (+0.057, every seed up, inside the band) and of every arm that reads 16 "
        "labelled Apple tweets per class. DeflateGate has nearly airline's label distribution "
        "(53% negative) but another meaning of sentiment: `source_only` scores 0.41 accuracy "
        "against a majority rate of 0.53, no unlabelled-text method repairs that, and labels "
        "win: `target_only` +0.256, `linear_probe` +0.236, `sequential` +0.190 macro-F1 (the "
        "airline stage costs `sequential` 0.07 against `target_only`: negative transfer at "
        "k = 16). No run of any arm predicts a single class. `dann` (confusion, weight 1.0) keeps "
        "two or three classes in every run but is the most seed-sensitive arm (on Apple one seed "
        "+0.045 macro-F1, the others -0.10 and -0.19) and never helps. The frozen-encoder probes "
        "are the floor: on Apple every arm but `dann` (-0.061, inside its band) is at or above "
        "its probe; on DeflateGate `sequential` is 0.045 below `linear_probe`, inside the band "
        "(the airline stage again). `auto` chose by 60 labelled validation tweets: on Apple "
        "`sequential` twice and `target_only` once (+0.032 against the `target_only` arm, inside "
        "the band); on DeflateGate `linear_probe` once and its own `target_only` twice (-0.031, "
        "inside the band; its `target_only` candidate trains at the sequential target stage's "
        "learning rate, 0.001, the arm at 0.002, and in seed 2 the validation split preferred it "
        "to `linear_probe`, 0.553 vs 0.448, where the test split says 0.453 vs 0.541) — not "
        "negative transfer on either pair. The same runs with `--target_min_steps 0` (the 15 "
        "updates of 5 epochs; source runs shared): `target_only` 0.430 / 0.372 macro-F1 on "
        "Apple / DeflateGate against 0.548 / 0.524 with 100 updates, `sequential` 0.573 / 0.287 "
        "against 0.588 / 0.458.", "",
        f"Ran: {plan}.",
        "Seconds per run are wall-clock on a shared 2-core machine (one torch thread): not costs.",
        f"Machine: {environment.get('device', '?')} ({environment.get('num_processes', 1)} process), torch "
        f"{environment.get('torch')}, transformers {environment.get('transformers')}.",
        f"Regenerate: `python recipes/benchmarks/domain_adaptation.py --seeds {args.seeds} --targets "
        f"{' '.join(args.targets)} --tunings {' '.join(args.tunings)} --arms {' '.join(args.arms)} "
        f"--source_train {args.source_train} --source_epochs {args.source_epochs:g} --source_eval {args.source_eval} "
        f"--label_shift {args.label_shift} --target_min_steps {args.target_min_steps} "
        f"--target_text {args.target_text} --target_test {args.target_test} --k {args.k} "
        f"--max_length {args.max_length} --dann_weight {args.dann_weight} --dann_objective {args.dann_objective} "
        f"--rounds {args.rounds} --pseudo_label_threshold {args.pseudo_label_threshold} --coral_weight {args.coral_weight}`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=["apple", "deflategate"],
                        help="target domains of the built-in tweets (source: airline)")
    parser.add_argument("--tunings", nargs="+", default=["lora"], choices=["lora", "full"])
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=list(ARMS))
    parser.add_argument("--source_train", type=int, default=1000, help="labelled airline training tweets")
    parser.add_argument("--source_epochs", type=float, default=2, help="epochs of the source stage")
    parser.add_argument("--source_eval", type=int, default=100,
                        help="airline validation and test tweets (each; stratified)")
    parser.add_argument("--label_shift", default="mean", choices=["mean", "em"],
                        help="the label_shift arm's estimator")
    parser.add_argument("--target_min_steps", type=int, default=100,
                        help="optimizer steps at least of the k-shot stages (sequential, target_only)")
    parser.add_argument("--target_text", type=int, default=250, help="target text pool (unlabelled for tapt/dann)")
    parser.add_argument("--target_test", type=int, default=500, help="target test tweets per target")
    parser.add_argument("--k", type=int, default=16, help="labelled target tweets per class (sequential, target_only)")
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--dann_weight", type=float, default=1.0)
    parser.add_argument("--dann_objective", default="confusion", choices=["confusion", "reversal"])
    parser.add_argument("--rounds", type=int, default=2, help="self_training rounds")
    parser.add_argument("--pseudo_label_threshold", type=float, default=0.7)
    parser.add_argument("--coral_weight", type=float, default=1.0)
    parser.add_argument("--model", default=MODEL,
                        help=f"the pretrained encoder; `{TINY}` builds the tests' tiny BERT (smoke test)")
    parser.add_argument("--deadline", default=None, help="HH:MM (UTC): start no run after this time")
    parser.add_argument("--report_only", action="store_true",
                        help="rebuild the reports from the run folders under --out; train nothing")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_domain_adaptation")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args()
    args.model_path = tiny_model(args.out / "tiny_bert") if args.model == TINY else args.model
    deadline = parse_deadline(args.deadline)
    args.report.mkdir(parents=True, exist_ok=True)
    paths = write_fixed_splits(args.out / "data", args)
    import datasets

    majority = {}
    for name, file in [(t, paths[t]["test"]) for t in args.targets] + [("airline/validation", paths["airline"]["validation"])]:
        labels = list(datasets.Dataset.from_parquet(file)["label"])
        majority[name] = max(labels.count(v) for v in set(labels)) / len(labels)
    runs, ran, skipped, environment = {}, [], [], {}

    def write_reports():
        summary = summarise(runs)
        plan = (", ".join(ran) or "nothing") + (f"; NOT run (past the deadline, or --report_only): {', '.join(skipped)}" if skipped else "")
        (args.report / "domain_adaptation.json").write_text(json.dumps(
            {"summary": summary, "majority_class_accuracy": majority, "ran": ran, "skipped": skipped,
             "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
        (args.report / "domain_adaptation.md").write_text(markdown(summary, args, majority, plan, environment))

    # Seed by seed (a deadline drops whole later seeds); source_only before sequential, which
    # reuses its source stage.
    jobs = [(seed, target, tuning, arm) for seed in range(1, args.seeds + 1) for target in args.targets
            for tuning in args.tunings for arm in ARMS if arm in args.arms]
    for seed, target, tuning, arm in jobs:
        name = f"{target}/{tuning}/{arm} seed {seed}"
        results_file = args.out / target / tuning / f"{arm}_seed{seed}" / "results.json"
        if results_file.is_file():  # what this or an earlier invocation left on disk is reused
            results = json.loads(results_file.read_text())
        elif args.report_only or (deadline and dt.datetime.now(dt.timezone.utc) >= deadline):
            skipped.append(name)
            continue
        else:
            print(f"{name} ...", flush=True)
            results = run_one(args, paths, target, tuning, arm, seed, args.out)
        runs.setdefault((target, tuning, arm), {})[seed] = results
        environment = results["environment"]
        ran.append(f"{name} ({results.get('_wall_seconds', results['timings']['total_seconds']):.0f} s)")
        write_reports()
    write_reports()
    print((args.report / "domain_adaptation.md").read_text())


if __name__ == "__main__":
    main()
