"""Behaviour fixture: every shipped config on the tiny model gives the numbers recorded in
tests/golden/ (tolerance 1e-6), in one process and in two. Recorded before the strategy
refactor; a change that is meant to alter results records again (see tests/golden_cases.py)."""

import json
import os

import pytest
import torch

from conftest import launch_command
from golden_cases import CASES, GOLDEN, TWO_PROCESS_CASES, differences, run_case, write_assets

RECORD = os.environ.get("HF_TRANSFER_RECORD_GOLDEN") == "1"


@pytest.fixture(scope="module")
def assets(tiny_data, tmp_path_factory):
    return write_assets(tmp_path_factory.mktemp("golden_assets"), tiny_data)


def _check(kind: str, name: str, actual: dict) -> None:
    path = GOLDEN / f"{kind}.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    if RECORD:
        recorded[name] = actual
        path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    assert name in recorded, f"{path} has no case {name!r}: record it (tests/golden_cases.py)"
    problems = differences(recorded[name], json.loads(json.dumps(actual)))
    assert not problems, f"{name} ({kind}) differs from the fixture:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("name", list(CASES))
def test_shipped_config_reproduces_the_fixture(name, assets, tiny_model, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order on any machine
    try:
        actual = run_case(name, assets, tiny_model, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    _check("one_process", name, actual)


def test_two_processes_reproduce_the_fixture(assets, tiny_model, tmp_path):
    import subprocess

    assets_file = tmp_path / "assets.json"
    assets_file.write_text(json.dumps({k: str(v) for k, v in assets.items()}))
    command, env = launch_command("tests/scripts/golden_runs.py",
                                  [str(assets_file), str(tiny_model), str(tmp_path / "runs"),
                                   *TWO_PROCESS_CASES], num_processes=2)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env,
                          cwd=str(GOLDEN.parents[1]))
    assert done.returncode == 0, done.stderr[-4000:]
    compared = json.loads((tmp_path / "runs" / "compared.json").read_text())
    for name in TWO_PROCESS_CASES:
        _check("two_processes", name, compared[name])
