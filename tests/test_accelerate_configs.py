"""Every shipped accelerate config parses with accelerate's own loader and shows its launch line;
the ones meant for the CPU are launched, and the run reports what their header promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from conftest import REPO, launch_command, overrides_to_args

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes" / "accelerate").glob("*.yaml"))
# config -> (processes, distributed type) that results.json must report on a CPU-only machine
# (fsdp_gpu.yaml: without a GPU, DDP on the CPU, with a warning saying so.)
CPU_CONFIGS = {"cpu.yaml": (1, "NO"), "ddp_cpu.yaml": (2, "MULTI_CPU"), "fsdp_gpu.yaml": (2, "MULTI_CPU")}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_parses(path):
    config = load_config_from_file(str(path))
    assert config.num_processes >= 1
    assert f"--config_file recipes/accelerate/{path.name}" in path.read_text()


def test_configs_cover_cpu_ddp_and_fsdp():
    kinds = {load_config_from_file(str(p)).distributed_type.value for p in CONFIGS}
    # ddp_cpu.yaml is MULTI_GPU on paper: see its header and the launch test below.
    assert {"NO", "MULTI_GPU", "FSDP"} <= kinds
    assert "DEEPSPEED" not in kinds  # never run anywhere, so not shipped (docs/configuration.md)
    assert set(CPU_CONFIGS) <= {p.name for p in CONFIGS}
    assert {n for n in CPU_CONFIGS if "cpu" in n} == {p.name for p in CONFIGS if "cpu" in p.name}


@pytest.mark.parametrize("name", CPU_CONFIGS)
def test_cpu_config_runs_what_its_header_says(name, tiny_overrides, tmp_path):
    """`accelerate launch --config_file <config>` as the README writes it: the number of
    processes and the distributed type come from the config alone."""
    _, env = launch_command("recipes/domain_adaptation.py", [])
    env["CUDA_VISIBLE_DEVICES"] = ""  # as the header says: on a GPU machine, hide the GPUs
    overrides = {**tiny_overrides, "training.max_steps": 2, "output.dir": str(tmp_path / "run")}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "recipes" / "accelerate" / name), str(REPO / "recipes" / "domain_adaptation.py"),
               *overrides_to_args(overrides)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    environment = json.loads((tmp_path / "run" / "results.json").read_text())["environment"]
    assert (environment["num_processes"], environment["distributed_type"]) == CPU_CONFIGS[name]
    assert ("FSDP was requested, but there is no GPU" in done.stderr) == (name == "fsdp_gpu.yaml")
