"""Reports people can look at: ``report.md`` and PNG figures for a run, and a side-by-side
comparison of several runs.

Every run writes, next to ``results.json`` (main process only, after it):

* ``report.md`` — what ran, the transfer verdict with its baselines (when
  ``strategy.baselines`` ran), the eval matrix, the target-test confusion matrix, the stages;
* ``report/eval_matrix.png`` — heatmap: rows are evaluation splits and groups, columns metrics;
* ``report/learning_curves.png`` — training loss and the selection metric over optimizer steps,
  stages side by side (from ``stages[*].history``);
* ``report/confusion_matrix.png`` — gold vs predicted labels on ``target/test``;
* ``report/baselines.png`` — the transfer run and its baselines, mean ± std over seeds.

``hf-transfer report RUN_DIR... [--out DIR]`` rewrites a run's report from its
``results.json`` (one run), or compares runs (``comparison.md`` + ``comparison.png``).

The figures need matplotlib (``pip install 'hf-transfer-recipes[report]'``); without it the
Markdown is still written, with a note saying so. Only matplotlib's object API is used (no
pyplot): nothing global is changed in the caller's process.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional, Sequence

from .errors import HfTransferError
from .layout import FIGURES_DIR, REPORT_FILE, RunLayout

logger = logging.getLogger("hf_transfer")

MATPLOTLIB_HINT = ("matplotlib is not installed, so the report has no figures: "
                   "pip install 'hf-transfer-recipes[report]' (or `pip install matplotlib`)")
_ARM_COLOURS = {"transfer": "#1f77b4", "target_only": "#ff7f0e", "source_only": "#2ca02c"}


class ReportError(HfTransferError):
    """A run folder without a readable results.json."""


def _figure_api():
    """matplotlib's Figure class, or None when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def load_results(run_dir) -> dict:
    path = RunLayout(run_dir).results
    if not path.is_file():
        raise ReportError(f"{str(run_dir)!r} is not a finished run folder: it has no results.json.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"{path} is not valid JSON: {err}") from err


# --- one run --------------------------------------------------------------------------------------


def write_report(run_dir, results: Optional[dict] = None) -> Path:
    """Write ``report.md`` and ``report/*.png`` into ``run_dir``; return the report's path."""
    run_dir = Path(run_dir)
    results = load_results(run_dir) if results is None else results
    Figure = _figure_api()
    figures: dict[str, str] = {}
    if Figure is not None:
        figures_dir = run_dir / FIGURES_DIR
        figures_dir.mkdir(parents=True, exist_ok=True)
        for name, draw in (("baselines", plot_baselines), ("eval_matrix", plot_eval_matrix),
                           ("confusion_matrix", plot_confusion), ("learning_curves", plot_learning_curves)):
            fig = draw(Figure, results)
            if fig is not None:
                path = figures_dir / f"{name}.png"
                fig.savefig(path, dpi=110, bbox_inches="tight")
                figures[name] = f"{FIGURES_DIR}/{name}.png"
    else:
        logger.warning(MATPLOTLIB_HINT)
    text = render_markdown(results, figures, figures_missing=Figure is None, title=run_dir.name)
    path = run_dir / REPORT_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def write_report_safely(run_dir, results: dict) -> Optional[Path]:
    """write_report for the end of a run: a report that cannot be drawn never fails the run."""
    try:
        path = write_report(run_dir, results)
    except Exception as err:  # noqa: BLE001 - the run's results are already safe on disk
        logger.warning("The report could not be written (%s: %s); results.json is complete. "
                       "Retry with `hf-transfer report %s`.", type(err).__name__, err, run_dir)
        return None
    logger.info("Report: %s", path)
    return path


def render_markdown(results: dict, figures: dict, figures_missing: bool = False, title: str = "run") -> str:
    config = results.get("config") or {}
    sections = [f"# Run report: {title}", _what_ran(results, config)]
    if figures_missing:
        sections.append(f"> {MATPLOTLIB_HINT}.")
    if results.get("transfer"):
        sections.append(_transfer_markdown(results["transfer"], figures.get("baselines")))
    sections.append(_eval_markdown(results, figures.get("eval_matrix")))
    if results.get("confusion_matrix"):
        sections.append(_confusion_markdown(results["confusion_matrix"], figures.get("confusion_matrix")))
    for key, heading in (("languages", "Per language (test split)"),):
        if isinstance(results.get(key), dict) and results[key]:
            sections.append(_languages_markdown(results[key], heading))
    for key, change in (("adaptation", "gain"), ("forgetting", "drop")):
        if isinstance(results.get(key), dict) and results[key]:
            sections.append(_before_after_markdown(key, results[key], change))
    if results.get("stages"):
        sections.append(_stages_markdown(results["stages"], figures.get("learning_curves")))
    if results.get("data"):
        sections.append(_data_markdown(results["data"]))
    return "\n\n".join(sections) + "\n"


def describe_data(spec: Optional[dict]) -> str:
    """One phrase for a dataset section of the configuration (report and model card alike)."""
    if not spec:
        return "unknown data"
    if spec.get("builtin"):
        text = f"built-in `{spec['builtin']}`"
    elif spec.get("hub_id"):
        text = f"Hub dataset `{spec['hub_id']}`" + (f" ({spec['hub_config']})" if spec.get("hub_config") else "")
    else:
        text = "local files"
    if spec.get("filter"):
        text += " (" + describe_filter(spec) + ")"
    if spec.get("k_shot"):
        text += f", {spec['k_shot']} per class"
    return text


def describe_filter(spec: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in (spec.get("filter") or {}).items())


def _what_ran(results: dict, config: dict) -> str:
    model = (config.get("model") or {}).get("name_or_path", "?")
    tuning = (config.get("tuning") or {}).get("method", "?")
    data = config.get("data") or {}
    seed = (config.get("training") or {}).get("seed")
    source_model = (config.get("strategy") or {}).get("source_model")
    source = f"the classifier `{source_model}`" if source_model else describe_data(data.get("source"))
    lines = [f"Scenario `{results.get('scenario')}`, strategy `{results.get('strategy')}`, encoder "
             f"`{model}`, tuning `{tuning}`, seed {seed}.",
             f"Source: {source}. Target: {describe_data(data.get('target'))}.",
             f"Labels: {', '.join(f'`{x}`' for x in results.get('labels', []))}. "
             f"hf_transfer {results.get('hf_transfer_version', '?')}."]
    timings = results.get("timings") or {}
    if timings.get("total_seconds") is not None:
        lines.append(f"Time {timings['total_seconds']:.0f} s (training {timings.get('train_seconds', 0):.0f} s), "
                     "baseline runs not included.")
    return "\n".join(lines)


def _pm(stats: dict) -> str:
    if stats.get("std") is None:
        return f"{stats['mean']:.4f}"
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def _transfer_markdown(transfer: dict, figure: Optional[str]) -> str:
    lines = ["## Transfer verdict", "", f"**{transfer.get('verdict')}** — {transfer.get('summary', '')}", ""]
    lines += transfer_tables(transfer)
    if figure:
        lines += [f"![transfer and baselines]({figure})", ""]
    if transfer.get("rule"):
        lines.append(f"Rule (decided on `{transfer.get('decided_on')}` against "
                     f"`{transfer.get('reference')}`): {transfer['rule']}. Baseline runs are in "
                     f"`baselines/`.")
    return "\n".join(lines).rstrip()


def transfer_tables(transfer: dict) -> list[str]:
    """Markdown lines: the arms (mean ± std over seeds) and the gains with their noise bands
    (shared by report.md and the Hub model card)."""
    seeds = transfer.get("seeds") or []
    lines = []
    arms = transfer.get("arms") or {}
    if arms:
        lines += [f"Mean ± sample std over {len(seeds)} seed(s) {seeds} on `{transfer.get('split')}`"
                  f" (n = {transfer.get('n_test')}):", "",
                  "| arm | accuracy | macro-F1 |", "|---|---:|---:|"]
        for arm, stats in arms.items():
            lines.append(f"| {arm} | {_pm(stats['accuracy'])} | {_pm(stats['macro_f1'])} |")
        lines.append("")
    gains = transfer.get("gain") or {}
    if gains:
        lines += ["| transfer vs | metric | gain | spread of paired gains | noise band | verdict |",
                  "|---|---|---:|---:|---:|---|"]
        for arm, by_metric in gains.items():
            for metric, g in by_metric.items():
                spread = "—" if g.get("gain_std") is None else f"{g['gain_std']:.4f}"
                lines.append(f"| {arm} | {metric} | {g['gain']:+.4f} | {spread} | ±{g['noise']:.4f} | "
                             f"{g['verdict']} |")
        lines.append("")
    return lines


def _eval_markdown(results: dict, figure: Optional[str]) -> str:
    labels = results.get("labels") or []
    matrix = results.get("eval_matrix") or {}
    header = "| split | n | accuracy | macro-F1 | " + " | ".join(f"F1 {x}" for x in labels) + " |"
    rows = [header, "|---|---:|---:|---:|" + "---:|" * len(labels)]
    for name, m in matrix.items():
        per_class = m.get("f1_per_class") or {}
        cells = " | ".join(f"{per_class[x]:.3f}" if x in per_class else "—" for x in labels)
        rows.append(f"| {name} | {m.get('n', '')} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {cells} |")
    text = "## Evaluation\n\nThe final model on every evaluation split (and group):\n\n" + "\n".join(rows)
    if figure:
        text += f"\n\n![eval matrix]({figure})"
    return text


def _confusion_markdown(confusion: dict, figure: Optional[str]) -> str:
    labels = confusion["labels"]
    rows = ["| gold \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for label, counts in zip(labels, confusion["matrix"]):
        rows.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")
    text = f"## Confusion matrix ({confusion['split']})\n\n" + "\n".join(rows)
    if figure:
        text += f"\n\n![confusion matrix]({figure})"
    return text


def _languages_markdown(languages: dict, heading: str) -> str:
    rows = ["| language | role | n | accuracy | macro-F1 | gap accuracy | gap macro-F1 |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in languages.items():
        gaps = [f"{r[k]:+.4f}" if isinstance(r.get(k), (int, float)) else "—"
                for k in ("gap_accuracy", "gap_macro_f1")]
        rows.append(f"| {name} | {r.get('role', '')} | {r.get('n', '')} | {r['accuracy']:.4f} | "
                    f"{r['macro_f1']:.4f} | {gaps[0]} | {gaps[1]} |")
    return f"## {heading}\n\n" + "\n".join(rows)


def _before_after_markdown(key: str, table: dict, change: str) -> str:
    rows = [f"| split | n | accuracy before | after | {change} | macro-F1 before | after | {change} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in table.items():
        b, a, c = r["before"], r["after"], r[change]
        rows.append(f"| {name} | {r.get('n', '')} | {b['accuracy']:.4f} | {a['accuracy']:.4f} | "
                    f"{c['accuracy']:+.4f} | {b['macro_f1']:.4f} | {a['macro_f1']:.4f} | {c['macro_f1']:+.4f} |")
    return f"## {key.capitalize()}\n\n" + "\n".join(rows)


def _stages_markdown(stages: list, figure: Optional[str]) -> str:
    rows = ["| stage | steps | epochs | best step | best metric | selected on | stopped early | seconds |",
            "|---|---:|---:|---:|---:|---|---|---:|"]
    for s in stages:
        best = "—" if s.get("best_metric") is None else f"{s.get('metric_for_best')} {s['best_metric']:.4f}"
        rows.append(f"| {s['name']} | {s.get('steps')} | {s.get('epochs_completed')} | {s.get('best_step')} | "
                    f"{best} | {s.get('select_on')} | {s.get('stopped_early')} | {s.get('train_seconds', 0):.1f} |")
    text = "## Training\n\n" + "\n".join(rows)
    if figure:
        text += f"\n\n![learning curves]({figure})"
    return text


def _data_markdown(data: dict) -> str:
    rows = ["| data | split | n | label counts |", "|---|---|---:|---|"]
    for role, info in data.items():
        for split, n in (info.get("splits") or {}).items():
            counts = (info.get("label_counts") or {}).get(split) or {}
            rows.append(f"| {role} | {split} | {n} | " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " |")
    text = "## Data\n\n" + "\n".join(rows)
    checked = {role: info["checks"] for role, info in data.items() if info.get("checks")}
    if checked:
        from .data.loading import DATA_CHECKS

        rows = ["| data | split | " + " | ".join(heading for _, heading in DATA_CHECKS) + " |",
                "|---|---|" + "---:|" * len(DATA_CHECKS)]
        for role, checks in checked.items():
            for split, counts in checks.items():
                rows.append(f"| {role} | {split} | " + " | ".join(str(counts.get(key, 0)) for key, _ in DATA_CHECKS) + " |")
        text += ("\n\nData checks (rows kept as they are; evaluation texts also in train make "
                 "their scores optimistic):\n\n" + "\n".join(rows))
    return text


# --- figures (each returns a matplotlib Figure, or None when there is nothing to draw) -------------


def plot_eval_matrix(Figure, results: dict):
    matrix = results.get("eval_matrix") or {}
    if not matrix:
        return None
    labels = results.get("labels") or []
    columns = ["accuracy", "macro-F1"] + [f"F1 {x}" for x in labels]
    names = list(matrix)
    values = []
    for name in names:
        m = matrix[name]
        per_class = m.get("f1_per_class") or {}
        values.append([m["accuracy"], m["macro_f1"]] + [per_class.get(x, math.nan) for x in labels])
    fig = Figure(figsize=(max(5.0, 1.0 * len(columns) + 2.8), max(2.4, 0.42 * len(names) + 1.6)),
                 layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), labels=[f"{n} (n={matrix[n].get('n', '?')})" for n in names])
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="score")
    ax.set_title(f"Eval matrix — {results.get('scenario')} / {results.get('strategy')}")
    return fig


def plot_confusion(Figure, results: dict):
    confusion = results.get("confusion_matrix")
    if not confusion:
        return None
    labels, counts = confusion["labels"], confusion["matrix"]
    totals = [sum(row) for row in counts]
    shares = [[c / t if t else 0.0 for c in row] for row, t in zip(counts, totals)]
    size = max(3.6, 0.7 * len(labels) + 2.4)
    fig = Figure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("gold label")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            ax.text(j, i, f"{count}\n{shares[i][j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if shares[i][j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="share of the gold row")
    ax.set_title(f"Confusion matrix, {confusion['split']} (n={sum(totals)})")
    return fig


def plot_learning_curves(Figure, results: dict):
    stages = results.get("stages") or []
    if not any(s.get("history") for s in stages):
        return None
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, eval_ax = fig.subplots(1, 2)
    offset = 0
    boundaries = []
    eval_labels = set()
    for k, stage in enumerate(stages):
        history = stage.get("history") or []
        colour = f"C{k % 10}"
        losses = [(offset + h["step"], h["loss"]) for h in history if "loss" in h]
        if losses:  # markers too: a short stage may log a single point
            loss_ax.plot(*zip(*losses), color=colour, label=f"{stage['name']}",
                         marker="o" if len(losses) < 30 else None, markersize=3)
        evals = [h for h in history if "eval_on" in h]
        for metric, marker, style in (("macro_f1", "o", "-"), ("accuracy", "s", "--")):
            points = [(offset + h["step"], h[metric]) for h in evals if metric in h]
            if points:
                label = f"{stage['name']}: {metric} on {evals[0]['eval_on']}"
                eval_labels.add(label)
                eval_ax.plot(*zip(*points), marker=marker, linestyle=style, color=colour, label=label)
        last = max([h["step"] for h in history] + [stage.get("steps") or 0])
        offset += last
        boundaries.append((offset, stage["name"]))
    for ax in (loss_ax, eval_ax):
        for x, _ in boundaries[:-1]:
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("optimizer step (stages one after another)")
        ax.grid(alpha=0.3)
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("Training loss")
    if loss_ax.lines:
        loss_ax.legend(title="stage", fontsize=8)
    eval_ax.set_ylabel("score")
    eval_ax.set_title("Evaluation during training (selection split)")
    if eval_labels:
        eval_ax.legend(fontsize=8, loc="best")
    else:
        eval_ax.text(0.5, 0.5, "no evaluation recorded", ha="center", va="center", transform=eval_ax.transAxes)
    return fig


def plot_baselines(Figure, results: dict):
    transfer = results.get("transfer")
    if not transfer or not transfer.get("arms"):
        return None
    title = (f"{transfer.get('split')}: {transfer.get('verdict')} "
             f"({len(transfer.get('seeds') or [])} seed(s); bars: mean, whiskers: ±1 std, dots: seeds)")
    decisive = ((transfer.get("gain") or {}).get(transfer.get("reference")) or {}).get(transfer.get("decided_on"))
    if decisive:
        title += (f"\n{transfer['decided_on']} gain vs {transfer['reference']}: {decisive['gain']:+.3f}, "
                  f"noise band ±{decisive['noise']:.3f}")
    return _bars(Figure, {arm: {m: transfer["arms"][arm][m] for m in ("accuracy", "macro_f1")}
                          for arm in transfer["arms"]}, title)


def _bars(Figure, groups: dict[str, dict[str, dict]], title: str, width_per_group: float = 1.0):
    """Grouped bars: one group per metric, one bar per entry of ``groups`` (mean, std, values)."""
    metrics = ["accuracy", "macro_f1"]
    names = list(groups)
    fig = Figure(figsize=(max(6.0, 1.3 * len(names) * len(metrics) * width_per_group + 2), 4.2),
                 layout="constrained")
    ax = fig.add_subplot()
    bar = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs = [m + (i - (len(names) - 1) / 2) * bar for m in range(len(metrics))]
        stats = [groups[name][metric] for metric in metrics]
        means = [s["mean"] for s in stats]
        errors = [s["std"] or 0.0 for s in stats]
        colour = _ARM_COLOURS.get(name, f"C{i % 10}")
        ax.bar(xs, means, bar * 0.9, yerr=errors if any(errors) else None, capsize=4, color=colour,
               label=name, alpha=0.85)
        for x, s in zip(xs, stats):
            values = s.get("values") or []
            if len(values) > 1:
                ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
            ax.text(x, s["mean"] + (s["std"] or 0.0) + 0.015, f"{s['mean']:.3f}", ha="center",
                    va="bottom", fontsize=8)
    ax.set_xticks(range(len(metrics)), labels=["accuracy", "macro-F1"])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(names), 4), fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


# --- several runs -----------------------------------------------------------------------------------


def compare_runs(run_dirs: Sequence, out_dir=None) -> dict:
    """Compare finished runs side by side: a table (``comparison.md``, also returned as text)
    and one chart (``comparison.png``) of target-test accuracy and macro-F1. With a single run
    and no ``out_dir``, the run's own report is rewritten instead."""
    if not run_dirs:
        raise ReportError("Name at least one run folder.")
    runs = [(Path(d), load_results(d)) for d in run_dirs]
    if len(runs) == 1 and out_dir is None:
        path = write_report(runs[0][0], runs[0][1])
        return {"report": str(path), "table": path.read_text(encoding="utf-8")}
    out = Path(out_dir or "comparison")
    out.mkdir(parents=True, exist_ok=True)
    names = _run_names([d for d, _ in runs])
    table = comparison_table(names, [r for _, r in runs])
    Figure = _figure_api()
    text = ["# Comparison of runs", "", table]
    if Figure is not None:
        groups = {}
        for name, (_, results) in zip(names, runs):
            row = _headline_row(results)
            if row is not None:
                groups[name] = {m: {"mean": row[m], "std": None, "values": []} for m in ("accuracy", "macro_f1")}
        if groups:
            fig = _bars(Figure, groups, f"{_headline_split(runs[0][1])} per run", width_per_group=0.6)
            fig.savefig(out / "comparison.png", dpi=110, bbox_inches="tight")
            text += ["", "![comparison](comparison.png)"]
    else:
        logger.warning(MATPLOTLIB_HINT)
        text += ["", f"> {MATPLOTLIB_HINT}."]
    path = out / "comparison.md"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return {"report": str(path), "table": table}


def comparison_table(names: list[str], results: list[dict]) -> str:
    rows = ["| run | scenario / strategy | encoder | tuning | seed | split | accuracy | macro-F1 | "
            "source/test macro-F1 | transfer gain | verdict |",
            "|---|---|---|---|---:|---|---:|---:|---:|---:|---|"]
    for name, r in zip(names, results):
        config = r.get("config") or {}
        split = _headline_split(r)
        row = _headline_row(r) or {}
        source = (r.get("eval_matrix") or {}).get("source/test")
        transfer = r.get("transfer") or {}
        gain, verdict = "—", "—"
        if transfer.get("gain"):
            g = transfer["gain"][transfer["reference"]][transfer["decided_on"]]
            spread = f" ± {g['gain_std']:.3f}" if g.get("gain_std") is not None else ""
            gain = f"{g['gain']:+.3f}{spread} ({transfer['decided_on']} vs {transfer['reference']})"
            verdict = transfer.get("verdict", "—")
        rows.append(
            f"| {name} | {r.get('scenario')} / {r.get('strategy')} | "
            f"{(config.get('model') or {}).get('name_or_path', '?')} | "
            f"{(config.get('tuning') or {}).get('method', '?')} | {(config.get('training') or {}).get('seed', '')} | "
            f"{split} | {_num(row.get('accuracy'))} | {_num(row.get('macro_f1'))} | "
            f"{_num(source.get('macro_f1') if source else None)} | {gain} | {verdict} |")
    return "\n".join(rows)


def _headline_split(results: dict) -> str:
    matrix = results.get("eval_matrix") or {}
    return "target/test" if "target/test" in matrix else next((k for k in matrix if k.endswith("/test")), "—")


def _headline_row(results: dict) -> Optional[dict]:
    return (results.get("eval_matrix") or {}).get(_headline_split(results))


def _num(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _run_names(dirs: list[Path]) -> list[str]:
    names = [d.resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d) for d in dirs]
