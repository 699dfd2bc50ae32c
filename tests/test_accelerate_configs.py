"""Every shipped accelerate config parses with accelerate's own loader and shows its launch line."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_parses(path):
    config = load_config_from_file(str(path))
    assert config.num_processes >= 1
    assert f"--config_file recipes/accelerate/{path.name}" in path.read_text()


def test_configs_cover_cpu_ddp_fsdp_and_deepspeed():
    kinds = {load_config_from_file(str(p)).distributed_type.value for p in CONFIGS}
    assert {"NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED"} <= kinds
