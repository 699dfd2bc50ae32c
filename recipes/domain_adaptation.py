"""Domain adaptation recipe: train on one domain, measure on another (same labels).

    accelerate launch recipes/domain_adaptation.py                      # embedded default
    accelerate launch recipes/domain_adaptation.py --config recipes/configs/domain_adaptation_sequential.yaml
    accelerate launch --multi_gpu --num_processes 2 recipes/domain_adaptation.py --output.dir runs/ddp

Default (recipes/configs/domain_adaptation.yaml): packaged MiniLM + LoRA, trained on airline
tweets, evaluated on Apple tweets. Any setting can be overridden (`--help` lists them).
Strategies: source_only, sequential. Writes results.json and model/ into --output.dir.
"""

import sys
from pathlib import Path

from hf_transfer import DomainAdaptationRecipe, HfTransferError, parse_args

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "domain_adaptation.yaml"


def main(argv=None) -> int:
    try:
        # The shipped YAML is the default; --config replaces it, other flags override fields.
        config = parse_args(argv, default_config=DEFAULT_CONFIG, description=__doc__)
        DomainAdaptationRecipe(config).run()
    except HfTransferError as err:  # a user-fixable problem: the message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
