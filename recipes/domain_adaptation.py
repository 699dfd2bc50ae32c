"""Domain adaptation recipe: train on one domain, measure on another (same labels).

    accelerate launch recipes/domain_adaptation.py                      # embedded default
    accelerate launch recipes/domain_adaptation.py --config recipes/configs/domain_adaptation_sequential.yaml
    accelerate launch --multi_gpu --num_processes 2 recipes/domain_adaptation.py --output.dir runs/ddp

Default (recipes/configs/domain_adaptation.yaml): packaged MiniLM + LoRA, trained on airline
tweets, evaluated on Apple tweets. Any setting can be overridden (`--help` lists them).
Strategies: source_only, sequential, tapt, dapt, dann (configs domain_adaptation_*.yaml).
Writes results.json and model/ (tapt/dapt also mlm_encoder/) into --output.dir.
"""

import sys
from pathlib import Path

from hf_transfer import DomainAdaptationRecipe
from hf_transfer.run import run_from_command_line

if __name__ == "__main__":
    default = Path(__file__).parent / "configs" / "domain_adaptation.yaml"
    sys.exit(run_from_command_line(DomainAdaptationRecipe, default, __doc__))
