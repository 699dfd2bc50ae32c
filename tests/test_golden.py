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


def _not_comparable(kind: str, name: str) -> str | None:
    """Why case ``name`` cannot be compared on this machine (recorded for other CPU kinds only),
    or None. A case recorded nowhere fails: it must be recorded."""
    path = fixture_folder() / f"{kind}.json"
    if RECORD or (path.is_file() and name in json.loads(path.read_text())):
        return None
    elsewhere = _recorded_elsewhere(kind, name)
    assert elsewhere, f"no fixture has case {name!r}: record it (tests/golden_cases.py)"
    # Another kind's numbers would differ here by float order alone: nothing to compare.
    return (f"{name} ({kind}) is recorded for other CPUs ({', '.join(elsewhere)}), not for this "
            f"one ({cpu_kind()}): HF_TRANSFER_RECORD_GOLDEN=1 records it")


def _check(kind: str, name: str, actual: dict) -> None:
    """Compare one case with this machine's fixture (or record it)."""
    path = fixture_folder(recording=RECORD) / f"{kind}.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    if RECORD:
        path.parent.mkdir(exist_ok=True)
        recorded[name] = actual
        path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    problems = differences(recorded[name], json.loads(json.dumps(actual)))
    assert not problems, f"{name} ({kind}) differs from {path}:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("name", list(CASES))
def test_shipped_config_reproduces_the_fixture(name, assets, tiny_model, tmp_path):
    not_comparable = _not_comparable("one_process", name)
    if not_comparable:  # before the run: its numbers could not be checked
        pytest.skip(not_comparable)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order, run after run (on one kind of CPU)
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
    not_comparable = {name: _not_comparable("two_processes", name) for name in TWO_PROCESS_CASES}
    for name in TWO_PROCESS_CASES:
        if not not_comparable[name]:
            _check("two_processes", name, compared[name])
    if any(not_comparable.values()):  # the others were compared above
        pytest.skip("; ".join(why for why in not_comparable.values() if why))
