"""Behaviour fixture: every shipped config on the tiny model gives the numbers recorded in
tests/golden/ for this kind of CPU (tolerance 1e-6), in one process and in two. Recorded before
the strategy refactor; a change that is meant to alter results records again (see
tests/golden_cases.py)."""

import json
import os

import pytest
import torch

from conftest import launch_command
from golden_cases import (CASES, GOLDEN, TWO_PROCESS_CASES, cpu_kind, differences, fixture_folder, run_case,
                          write_assets)

RECORD = os.environ.get("HF_TRANSFER_RECORD_GOLDEN") == "1"


@pytest.fixture(scope="module")
def assets(tiny_data, tmp_path_factory):
    return write_assets(tmp_path_factory.mktemp("golden_assets"), tiny_data)


def _recorded_elsewhere(kind: str, name: str) -> list[str]:
    """The CPU kinds whose fixture has case ``name``."""
    paths = [GOLDEN / f"{kind}.json", *GOLDEN.glob(f"*/{kind}.json")]
    return [str(p.parent.relative_to(GOLDEN.parents[1])) for p in paths if name in json.loads(p.read_text())]


def _check(kind: str, name: str, actual: dict) -> str | None:
    """Compare (or record) one case; returns why it was not compared, if it was not."""
    path = fixture_folder(recording=RECORD) / f"{kind}.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    if RECORD:
        path.parent.mkdir(exist_ok=True)
        recorded[name] = actual
        path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return None
    if name not in recorded:
        elsewhere = _recorded_elsewhere(kind, name)
        assert elsewhere, f"no fixture has case {name!r}: record it (tests/golden_cases.py)"
        # Another kind's numbers would differ here by float order alone: nothing to compare.
        return (f"{name} ({kind}) is recorded for other CPUs ({', '.join(elsewhere)}), not for this "
                f"one ({cpu_kind()}): HF_TRANSFER_RECORD_GOLDEN=1 records it")
    problems = differences(recorded[name], json.loads(json.dumps(actual)))
    assert not problems, f"{name} ({kind}) differs from {path}:\n" + "\n".join(problems[:20])
    return None


@pytest.mark.parametrize("name", list(CASES))
def test_shipped_config_reproduces_the_fixture(name, assets, tiny_model, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order, run after run (on one kind of CPU)
    try:
        actual = run_case(name, assets, tiny_model, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    not_compared = _check("one_process", name, actual)
    if not_compared:
        pytest.skip(not_compared)


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
    not_compared = [why for name in TWO_PROCESS_CASES if (why := _check("two_processes", name, compared[name]))]
    if not_compared:  # the others were compared above
        pytest.skip("; ".join(not_compared))
