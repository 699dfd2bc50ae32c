"""Faults: SIGKILL at random moments, SIGTERM (preemption), NaN/inf losses, half-written files.

The kill/resume harness runs the real script under `accelerate launch` on the tiny model,
kills every process of the run at a seeded random moment after the first checkpoint
appears, resumes with `latest` and requires the final results to equal those of an
uninterrupted run. A short version runs by default; `-m slow` runs more trials, also with two
processes, and prints a summary (the numbers in the README come from it).
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, launch, launch_command, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.atomic import write_json
from hf_transfer.training import STATE_FILE, list_checkpoints
from hf_transfer.errors import ConfigError, NonFiniteError
from scripts.nan_run import poisoning_loader

SCRIPT = "recipes/domain_adaptation.py"
NAN_SCRIPT = "tests/scripts/nan_run.py"


def _stages_without_timings(results: dict) -> list:
    return [{k: v for k, v in stage.items() if k != "train_seconds"} for stage in results["stages"]]


def _assert_same_outcome(results: dict, reference: dict) -> None:
    assert results["eval_matrix"] == reference["eval_matrix"]
    assert results["best_step"] == reference["best_step"]
    # Same steps, evaluations and even the logged training losses.
    assert _stages_without_timings(results) == _stages_without_timings(reference)


def _leftovers(run_dir: Path) -> list:
    return sorted(str(p) for p in run_dir.rglob("*") if p.name.endswith((".partial", ".trash")))


# --- non-finite losses and gradients -----------------------------------------------------


def _nan_overrides(tiny_overrides, **extra) -> dict:
    return {**tiny_overrides, "tuning.method": "full", "training.max_steps": 14,
            "training.eval_strategy": "steps", "training.eval_steps": 5,
            "training.save_total_limit": 10, **extra}


def test_nonfinite_stop_names_stage_and_step_and_keeps_the_last_good_checkpoint(
        tiny_overrides, tmp_path, monkeypatch):
    import hf_transfer.run.pipeline as base

    monkeypatch.setattr(base, "load_classifier_model", poisoning_loader({7}))
    config = load_config(overrides=_nan_overrides(tiny_overrides))
    with pytest.raises(NonFiniteError, match=r"Stage 'source': .*non-finite.* optimizer step 7\b"
                                             r".*last good checkpoint is .*step_0000005"):
        DomainAdaptationRecipe(config).run()
    stage_dir = tmp_path / "run" / "checkpoints" / "source"
    assert [c.name for c in list_checkpoints(stage_dir)] == ["step_0000005"]
    weights = load_file(stage_dir / "step_0000005" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert not (tmp_path / "run" / "results.json").exists()
    assert not _leftovers(tmp_path / "run")


def test_nonfinite_skip_drops_the_update_and_counts_it(tiny_overrides, tmp_path, monkeypatch):
    import hf_transfer.run.pipeline as base

    # Micro-batch 7 with 2 per update: update 4 is dropped as a whole.
    monkeypatch.setattr(base, "load_classifier_model", poisoning_loader({7}))
    overrides = _nan_overrides(tiny_overrides, **{"training.on_nonfinite": "skip",
                                                  "training.gradient_accumulation_steps": 2})
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    stage = results["stages"][0]
    assert stage["steps"] == 14 and stage["skipped_steps"] == 1
    assert {"step": 4, "epoch": 0, "skipped": "non-finite loss or gradients"} in stage["history"]
    assert all(h["loss"] == h["loss"] for h in stage["history"] if "loss" in h)  # no NaN logged
    last = list_checkpoints(tmp_path / "run" / "checkpoints" / "source")[-1]
    assert last.name == "step_0000014"
    # Neither optimizer nor scheduler moved on the dropped update.
    optimizer = torch.load(last / "optimizer.bin", weights_only=True)
    assert {float(s["step"]) for s in optimizer["state"].values()} == {13.0}
    assert torch.load(last / "scheduler.bin", weights_only=True)["last_epoch"] == 13
    assert all(torch.isfinite(w).all() for w in load_file(last / "model.safetensors").values())


def test_skip_gives_up_when_every_update_is_non_finite(tiny_overrides, monkeypatch):
    import hf_transfer.run.pipeline as base

    monkeypatch.setattr(base, "load_classifier_model", poisoning_loader("all"))
    overrides = _nan_overrides(tiny_overrides, **{"training.on_nonfinite": "skip"})
    with pytest.raises(NonFiniteError, match="10 optimizer steps in a row"):
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()


@pytest.mark.parametrize("mode", ["skip", "stop"])
def test_two_processes_take_the_same_nonfinite_decision(tiny_overrides, tmp_path, mode):
    """NaN on process 1 only: both drop the same update (skip) or both stop (stop), no hang."""
    overrides = _nan_overrides(tiny_overrides, **{"training.on_nonfinite": mode,
                                                  "training.max_steps": 8})
    done = launch(NAN_SCRIPT, overrides_to_args(overrides), num_processes=2, timeout=300,
                  extra_env={"HF_TRANSFER_TEST_NAN": "1:3"})
    if mode == "skip":
        assert done.returncode == 0, done.stderr[-3000:]
        stage = json.loads((tmp_path / "run" / "results.json").read_text())["stages"][0]
        assert stage["skipped_steps"] == 1 and stage["steps"] == 8
    else:
        assert done.returncode != 0
        assert done.stderr.count("error: Stage 'source': the loss or gradients became non-finite "
                                 "(NaN/inf) at optimizer step 3") == 2, done.stderr[-3000:]
        # Seen one update later (step 4), before the first checkpoint (step 5): none written.
        assert not list_checkpoints(tmp_path / "run" / "checkpoints" / "source")


# --- launching, watching and killing real runs -------------------------------------------


def _run_overrides(tiny_model, tiny_data, run_dir: Path) -> dict:
    """Long enough (17 checkpoints in 1 process) for kills to land anywhere."""
    return {
        "model.name_or_path": str(tiny_model), "model.max_length": 32,
        "data.source.files.train": str(tiny_data["source"]),
        "data.target.files.train": str(tiny_data["target"]),
        "tuning.method": "full", "training.num_epochs": 4, "training.batch_size": 8,
        "training.eval_batch_size": 16, "training.learning_rate": 2e-3,
        "training.eval_strategy": "steps", "training.eval_steps": 4,
        "training.save_total_limit": 2, "training.logging_steps": 3,
        "output.dir": str(run_dir),
    }


@dataclass
class Reference:
    results: dict
    window: float  # seconds from the first checkpoint to results.json


def _start(args: list[str], processes: int, log: Path) -> subprocess.Popen:
    command, env = launch_command(SCRIPT, args, processes)
    out = log.open("w")
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for_first_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float = 240) -> float:
    stage_dir = run_dir / "checkpoints" / "source"
    deadline = time.monotonic() + timeout
    while not list_checkpoints(stage_dir):
        assert proc.poll() is None, f"the run ended before its first checkpoint ({proc.returncode})"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)
    return time.monotonic()


def _tree(proc: subprocess.Popen) -> list:
    """The launcher and every process under it (torchrun starts workers in their own sessions,
    so a process group does not reach them)."""
    try:
        parent = psutil.Process(proc.pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill_all(processes: list, sig) -> None:
    for p in processes:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def _launch_reference(tiny_model, tiny_data, folder: Path, processes: int) -> Reference:
    run_dir = folder / "reference"
    proc = _start(overrides_to_args(_run_overrides(tiny_model, tiny_data, run_dir)), processes,
                  folder / "reference.log")
    first = _wait_for_first_checkpoint(proc, run_dir)
    while not (run_dir / "results.json").exists() and proc.poll() is None:
        time.sleep(0.005)
    window = time.monotonic() - first  # until the last output is written
    assert proc.wait(timeout=600) == 0, (folder / "reference.log").read_text()[-3000:]
    return Reference(json.loads((run_dir / "results.json").read_text()), window)


@pytest.fixture(scope="module")
def reference_1(tiny_model, tiny_data, tmp_path_factory) -> Reference:
    return _launch_reference(tiny_model, tiny_data, tmp_path_factory.mktemp("ref1"), 1)


@pytest.fixture(scope="module")
def reference_2(tiny_model, tiny_data, tmp_path_factory) -> Reference:
    return _launch_reference(tiny_model, tiny_data, tmp_path_factory.mktemp("ref2"), 2)


def _resume(tiny_model, tiny_data, run_dir: Path, processes: int) -> dict:
    args = overrides_to_args(_run_overrides(tiny_model, tiny_data, run_dir))
    done = launch(SCRIPT, [*args, "--output.resume_from_checkpoint", "latest"], processes, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "results.json").read_text())


# --- SIGTERM: checkpoint at the next update boundary, exit 75, resume ----------------------


def test_sigterm_to_the_process_group_checkpoints_and_resumes_identically(
        tiny_model, tiny_data, tmp_path, reference_1):
    """Like Slurm: every process of the job gets SIGTERM (the single-process launcher dies at
    once; the script finishes its update, saves and exits)."""
    run_dir = tmp_path / "run"
    proc = _start(overrides_to_args(_run_overrides(tiny_model, tiny_data, run_dir)), 1,
                  tmp_path / "run.log")
    _wait_for_first_checkpoint(proc, run_dir)
    workers = _tree(proc)[1:]
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    gone, alive = psutil.wait_procs(workers, timeout=120)
    assert not alive
    log = (tmp_path / "run.log").read_text()
    assert "stopped: Received SIGTERM: stopped stage 'source' at optimizer step" in log, log[-3000:]
    assert "--output.resume_from_checkpoint latest" in log
    assert not (run_dir / "results.json").exists()
    resumed = _resume(tiny_model, tiny_data, run_dir, 1)
    _assert_same_outcome(resumed, reference_1.results)


def test_sigterm_reaching_one_of_two_processes_stops_both_at_the_same_step(
        tiny_model, tiny_data, tmp_path, reference_2):
    """Only process 1 gets the signal: an all-reduced flag makes both save the same
    checkpoint and exit with code 75 (reported by torchrun); the resumed run matches."""
    run_dir = tmp_path / "run"
    proc = _start(overrides_to_args(_run_overrides(tiny_model, tiny_data, run_dir)), 2,
                  tmp_path / "run.log")
    _wait_for_first_checkpoint(proc, run_dir)
    rank_1 = [p for p in _tree(proc)[1:] if p.environ().get("RANK") == "1"]
    assert len(rank_1) == 1
    rank_1[0].send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    log = (tmp_path / "run.log").read_text()
    assert log.count("stopped: Received SIGTERM: stopped stage 'source' at optimizer step") == 2, log[-3000:]
    assert re.search(r"exitcode\s*:\s*75\b", log), log[-3000:]
    steps = {line.split("optimizer step ")[1].split()[0] for line in log.splitlines()
             if line.startswith("stopped: Received SIGTERM")}
    assert len(steps) == 1  # the same step on both processes
    resumed = _resume(tiny_model, tiny_data, run_dir, 2)
    _assert_same_outcome(resumed, reference_2.results)


def test_ctrl_c_checkpoints_and_resumes_identically(
        tiny_model, tiny_data, tmp_path, reference_1):
    """Ctrl-C in a terminal (SIGINT to the foreground process group, here the script run
    without a launcher): checkpoint at the next update boundary, exit 75, no traceback; the
    resumed run equals the uninterrupted one."""
    command, env = launch_command(SCRIPT, [], 1)
    script = [sys.executable, str(REPO / SCRIPT)]
    args = overrides_to_args(_run_overrides(tiny_model, tiny_data, tmp_path / "run"))
    log = tmp_path / "run.log"
    proc = subprocess.Popen([*script, *args], env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for_first_checkpoint(proc, tmp_path / "run")
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 75, log.read_text()[-3000:]
    text = log.read_text()
    assert "stopped: Received SIGINT: stopped stage 'source' at optimizer step" in text, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    _assert_same_outcome(_resume(tiny_model, tiny_data, tmp_path / "run", 1), reference_1.results)



def test_a_second_ctrl_c_stops_at_once():
    """In a subprocess the run may reach its checkpoint before a second signal lands, so the
    handler is driven here directly: the first SIGINT only sets the flag, the second raises."""
    from types import SimpleNamespace

    from hf_transfer.training.faults import FaultGuard

    # What the guard reads of an Accelerator, for one CPU process (no Accelerator state made).
    one_process = SimpleNamespace(device=torch.device("cpu"), num_processes=1, scaler=None)
    guard = FaultGuard(one_process, "stop")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a job started in the background
    with guard.catching_stop_signals():
        signal.raise_signal(signal.SIGINT)
        assert guard.signal and guard.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # restored


# --- SIGKILL at random moments -------------------------------------------------------------


def _wait_for_write(proc: subprocess.Popen, run_dir: Path, k: int) -> float:
    """Wait until the k-th checkpoint write after now has begun (a `step_N.partial` folder
    appeared), or the run ended; return 0 (the extra delay is added by the caller)."""
    stage_dir = run_dir / "checkpoints" / "source"
    seen: set = set()
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen.update(p.name for p in stage_dir.glob("step_*.partial"))
        if len(seen) >= k:
            break
        time.sleep(0.001)
    return 0.0


def _kill_and_resume(tiny_model, tiny_data, folder: Path, reference: Reference, processes: int,
                     trials: int, seed: int) -> list[dict]:
    """Each trial: start, wait for the first checkpoint, SIGKILL every process of the run, check
    what is on disk, resume with `latest`, compare. When to kill is seeded: even trials after a
    random delay within the reference run's remaining time; odd trials a random 0-30 ms after
    the k-th checkpoint write begins (k random), to hit the moments a checkpoint is half written."""
    rng = random.Random(seed)
    outcomes = []
    for trial in range(trials):
        run_dir = folder / f"p{processes}_trial{trial}"
        proc = _start(overrides_to_args(_run_overrides(tiny_model, tiny_data, run_dir)), processes,
                      folder / f"p{processes}_trial{trial}.log")
        _wait_for_first_checkpoint(proc, run_dir)
        if trial % 2 == 0:
            delay = rng.uniform(0, reference.window)
            time.sleep(delay)
        else:
            delay = _wait_for_write(proc, run_dir, rng.randint(1, 5)) + rng.uniform(0, 0.03)
            time.sleep(delay)
        tree = _tree(proc)
        _kill_all(tree, signal.SIGKILL)
        _, alive = psutil.wait_procs(tree, timeout=60)
        assert not alive
        proc.wait(timeout=60)
        stage_dir = run_dir / "checkpoints" / "source"
        landed = {
            "delay_s": round(delay, 3),
            "complete_checkpoints": len(list_checkpoints(stage_dir)),
            "mid_checkpoint_write": any(stage_dir.glob("step_*.partial")),
            "stage_finished": (stage_dir / "result.json").is_file(),
            "run_finished": (run_dir / "results.json").is_file(),
        }
        # Whatever the moment, every checkpoint that counts is complete and readable.
        for checkpoint in list_checkpoints(stage_dir):
            json.loads((checkpoint / STATE_FILE).read_text())
            load_file(checkpoint / "model.safetensors")
            for name in ("optimizer.bin", "scheduler.bin",
                         *(f"random_states_{i}.pkl" for i in range(processes))):
                assert (checkpoint / name).is_file(), (checkpoint, name)
        for name in ("results.json", "checkpoints/source/result.json"):
            if (run_dir / name).exists():
                json.loads((run_dir / name).read_text())
        resumed = _resume(tiny_model, tiny_data, run_dir, processes)
        _assert_same_outcome(resumed, reference.results)
        assert not _leftovers(run_dir)
        landed["matched"] = True
        outcomes.append(landed)
    return outcomes


def _summary(outcomes: list[dict], processes: int) -> str:
    return (f"kill/resume, {processes} process(es): {len(outcomes)} trials, "
            f"{sum(o['matched'] for o in outcomes)} resumed runs matched the uninterrupted one; "
            f"killed mid-checkpoint-write {sum(o['mid_checkpoint_write'] for o in outcomes)}, "
            f"after the run had finished {sum(o['run_finished'] for o in outcomes)}; "
            f"complete checkpoints at the kill: {[o['complete_checkpoints'] for o in outcomes]}")


def test_sigkill_at_random_moments_then_resume_matches(tiny_model, tiny_data, tmp_path, reference_1):
    outcomes = _kill_and_resume(tiny_model, tiny_data, tmp_path, reference_1, 1, trials=2, seed=0)
    print(_summary(outcomes, 1))


@pytest.mark.slow
@pytest.mark.parametrize("processes, trials", [(1, 12), (2, 6)])
def test_sigkill_many_trials(tiny_model, tiny_data, tmp_path, reference_1, reference_2,
                             processes, trials):
    reference = reference_1 if processes == 1 else reference_2
    outcomes = _kill_and_resume(tiny_model, tiny_data, tmp_path, reference, processes, trials,
                                seed=1000 + processes)
    print(_summary(outcomes, processes))
    report = os.environ.get("HF_TRANSFER_KILL_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"processes": processes, "outcomes": outcomes}) + "\n")


# --- atomic writes, leftovers, what resume may touch -------------------------------------


def test_atomic_json_never_leaves_half_a_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt  # a kill between writing the temporary file and the rename

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}


def test_leftovers_of_a_killed_save_never_count_and_are_cleaned(tiny_overrides, tmp_path):
    """A killed run leaves `step_N.partial` (mid-save) and `step_N.trash` (mid-rotation);
    `latest` ignores them and the next save removes them."""
    overrides = {**tiny_overrides, "tuning.method": "full", "training.max_steps": 6,
                 "training.eval_strategy": "steps", "training.eval_steps": 3}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    stage_dir = tmp_path / "run" / "checkpoints" / "source"
    (stage_dir / "result.json").unlink()
    (tmp_path / "run" / "results.json").unlink()
    for name in ("step_0000009.partial", "step_0000003.trash"):
        (stage_dir / name).mkdir()
        (stage_dir / name / STATE_FILE).write_text("{}")  # complete-looking, yet never counted
    (tmp_path / "run" / "model.partial").mkdir()
    assert [c.name for c in list_checkpoints(stage_dir)] == ["step_0000003", "step_0000006"]
    resumed = {**overrides, "output.resume_from_checkpoint": "latest"}
    DomainAdaptationRecipe(load_config(overrides=resumed)).run()
    assert not _leftovers(tmp_path / "run")
    assert (tmp_path / "run" / "model" / "hf_transfer.json").is_file()


def test_resume_from_an_older_checkpoint_moves_newer_outputs_aside_never_deletes(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "tuning.method": "full", "training.max_steps": 9,
                 "training.eval_strategy": "steps", "training.eval_steps": 3,
                 "training.save_total_limit": 10}
    first = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    stage_dir = tmp_path / "run" / "checkpoints" / "source"
    (tmp_path / "run" / "notes.txt").write_text("mine")
    resumed = {**overrides, "output.resume_from_checkpoint": str(stage_dir / "step_0000003")}
    second = DomainAdaptationRecipe(load_config(overrides=resumed)).run()
    assert second["eval_matrix"] == first["eval_matrix"]
    aside = tmp_path / "run" / "checkpoints" / "source.superseded-1"
    assert sorted(p.name for p in aside.iterdir()) == ["result.json", "step_0000006", "step_0000009"]
    assert [c.name for c in list_checkpoints(stage_dir)] == ["step_0000003", "step_0000006", "step_0000009"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resume_with_other_settings_is_refused_naming_them(tiny_overrides, tmp_path):
    """Resuming with another batch size and learning rate used to continue with the old
    schedule, run more steps than asked and record values that were never used."""
    overrides = {**tiny_overrides, "tuning.method": "full", "training.max_steps": 6,
                 "training.eval_strategy": "steps", "training.eval_steps": 3}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    (tmp_path / "run" / "checkpoints" / "source" / "result.json").unlink()
    before = (tmp_path / "run" / "results.json").read_bytes()
    changed = {**overrides, "output.resume_from_checkpoint": "latest", "training.batch_size": 4,
               "training.learning_rate": 1e-5, "training.eval_batch_size": 4}
    with pytest.raises(ConfigError, match=r"other settings: `training.batch_size` was 8, now 4; "
                                          r"`training.learning_rate` was 0.005, now 1e-05\. Resume with"):
        DomainAdaptationRecipe(load_config(overrides=changed)).run()
    assert (tmp_path / "run" / "results.json").read_bytes() == before
    # What it writes and reports may change (here: the evaluation batch size, the report).
    DomainAdaptationRecipe(load_config(overrides={**overrides, "output.resume_from_checkpoint": "latest",
                                                  "training.eval_batch_size": 4,
                                                  "output.report": False})).run()


def test_a_run_of_an_older_version_resumes_without_the_settings_added_since(tiny_overrides, tmp_path):
    """Its run_config.json lacks settings a newer version added (here `training.learning_rates`):
    they are not changes, so the resume goes on."""
    overrides = {**tiny_overrides, "tuning.method": "full", "training.max_steps": 6,
                 "training.eval_strategy": "steps", "training.eval_steps": 3, "output.report": False}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    (tmp_path / "run" / "checkpoints" / "source" / "result.json").unlink()
    recorded = tmp_path / "run" / "run_config.json"
    older = json.loads(recorded.read_text())
    del older["training"]["learning_rates"]
    recorded.write_text(json.dumps(older))
    results = DomainAdaptationRecipe(load_config(overrides={**overrides,
                                                            "output.resume_from_checkpoint": "latest"})).run()
    assert results["stages"][0]["steps"] == 6


def test_a_run_folder_that_was_moved_still_resumes(tiny_overrides, tmp_path):
    """Checkpoints refer to each other by name, not by absolute path."""
    overrides = {**tiny_overrides, "tuning.method": "full", "training.max_steps": 6,
                 "training.eval_strategy": "steps", "training.eval_steps": 3,
                 "output.dir": str(tmp_path / "a")}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    (tmp_path / "a").rename(tmp_path / "b")
    stage_dir = tmp_path / "b" / "checkpoints" / "source"
    (stage_dir / "result.json").unlink()
    state = json.loads((stage_dir / "step_0000006" / STATE_FILE).read_text())
    assert str(tmp_path / "a") in state["best_checkpoint"]
    moved = {**overrides, "output.dir": str(tmp_path / "b"), "output.resume_from_checkpoint": "latest"}
    results = DomainAdaptationRecipe(load_config(overrides=moved)).run()
    assert results["stages"][0]["steps"] == 6
    assert results["best_step"] == {"source": state["best_step"]}  # found by its name in "b"
