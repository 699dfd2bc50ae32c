"""Shared fixtures: an offline guard, a tiny BERT built from a config, tiny datasets."""

import os

# Set before any Hugging Face library is imported: a hidden download fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tiny_assets import build_tiny_bert, write_tiny_domain_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer, saved like a Hub checkpoint."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), seed=0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """Learnable 3-class sentiment data: source.csv (airline), target.jsonl/.parquet (apple)."""
    return write_tiny_domain_data(tmp_path_factory.mktemp("tiny_data"), n_per_class=60, seed=0)


@pytest.fixture
def tiny_overrides(tiny_model, tiny_data, tmp_path) -> dict:
    """Overrides that point a recipe at the tiny model and data, small and fast."""
    return {
        "model.name_or_path": str(tiny_model),
        "model.max_length": 32,
        "data.source": {"files": {"train": str(tiny_data["source"])}, "group_column": "domain"},
        "data.target": {"files": {"train": str(tiny_data["target"])}, "group_column": "domain"},
        "tuning.method": "lora",
        "training.num_epochs": 2,
        "training.batch_size": 8,
        "training.eval_batch_size": 16,
        "training.learning_rate": 5e-3,
        "output.dir": str(tmp_path / "run"),
    }


def launch_command(script: str, args: list[str], num_processes: int = 1,
                   mixed_precision: str = "no") -> tuple[list[str], dict]:
    """The ``accelerate launch`` command line (on the CPU) and environment for a script."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
                "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    # With no GPU, --multi_gpu starts N gloo processes on the CPU (DistributedType.MULTI_CPU).
    launcher += ["--multi_gpu", "--num_processes", str(num_processes)] if num_processes > 1 \
        else ["--cpu", "--num_processes", "1"]
    # The checkout under test first: a script started by path would otherwise import whichever
    # hf_transfer is installed (e.g. the editable install of another worktree).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    return [*launcher, str(REPO / script), *args], env


def launch(script: str, args: list[str], num_processes: int = 1, timeout: int = 600,
           mixed_precision: str = "no", extra_env: dict | None = None):
    """Run a recipe script under ``accelerate launch`` on the CPU; return the finished process."""
    command, env = launch_command(script, args, num_processes, mixed_precision)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**env, **(extra_env or {})}, cwd=REPO)


def overrides_to_args(overrides: dict) -> list[str]:
    """{"a.b": v} -> ["--a.b", "v"]; nested dicts become dotted keys."""
    args = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            args += overrides_to_args({f"{key}.{k}": v for k, v in value.items()})
        else:
            args += [f"--{key}", str(value)]
    return args
