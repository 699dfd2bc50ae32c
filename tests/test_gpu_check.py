"""recipes/benchmarks/gpu_check.py, the prepared GPU check of issue 17, in its CPU smoke mode:
every case runs on tiny models for a few steps (or says why it cannot run without CUDA), and
the one report lists each case with a status. The GPU run itself is docs/testing.md's."""

import json
import subprocess
import sys
import time

import pytest

from conftest import REPO

CASES = ("quickstart_bf16", "fsdp_full", "fsdp_lora", "decoder_lora", "compile", "vs_trainer")


# ~100 s of subprocess starts on 2 cores: opt-in (`python -m pytest -m slow`), run before lending
# a GPU to the check.
@pytest.mark.slow
def test_gpu_check_smoke_reports_every_case(tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "recipes" / "benchmarks" / "gpu_check.py"), "--smoke",
                           "--work", str(tmp_path / "work"), "--report", str(tmp_path / "gpu_check")],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    seconds = time.monotonic() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {c["case"]: c["status"] for c in report["cases"]}
    assert list(status) == list(CASES)
    assert status == {c: "skipped" if c.startswith("fsdp") else "passed" for c in CASES}, report
    for case in report["cases"]:
        if case["status"] == "skipped":
            assert case["error"].startswith("skipped: needs CUDA")
        else:
            assert case["wall_s"] > 0 and case["examples_per_s"] and case["card"].startswith("CPU")
        if case["case"] in ("quickstart_bf16", "decoder_lora"):
            reload = case["details"]["reload"]
            assert len(reload["predicted"]) == 3 and reload["dtypes"] == ["torch.float32"]
            assert case["details"]["environment"]["mixed_precision"] == "bf16"
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "not a GPU result" in markdown
    for name in CASES:
        assert f"| {name} | {status[name]} |" in markdown
    print(f"gpu_check --smoke: {seconds:.0f} s")
