"""Conditional-shift recipe: same labels, other meaning (P(Y_s|X_s) != P(Y_T|X_T)).

    accelerate launch recipes/conditional_shift.py                      # finetune, default
    accelerate launch recipes/conditional_shift.py --config recipes/configs/conditional_shift_l2sp.yaml
    accelerate launch recipes/conditional_shift.py --strategy.source_model runs/bbc/model   # a given source

Default (recipes/configs/conditional_shift.yaml): a BBC News topic classifier (packaged
MiniLM + LoRA) is trained first under the original labels, then adapted to a CONSTRUCTED
labelling-policy change (built-in `bbc_policy_shift`: business articles about technology
companies become `tech`). results.json reports the source classifier as it is
(`no_adaptation`), the target gain (`adaptation`) and the source forgetting (`forgetting`).
Strategies: finetune, l2sp. Writes results.json and model/ into --output.dir.
"""

import sys
from pathlib import Path

from hf_transfer import ConditionalShiftRecipe
from hf_transfer.run import run_from_command_line

if __name__ == "__main__":
    default = Path(__file__).parent / "configs" / "conditional_shift.yaml"
    sys.exit(run_from_command_line(ConditionalShiftRecipe, default, __doc__))
