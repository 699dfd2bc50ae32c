"""Label-space recipe: the target has other labels than the source (Y_s != Y_T).

    accelerate launch recipes/label_space.py                            # new_head, default
    accelerate launch recipes/label_space.py --config recipes/configs/label_space_lp_ft.yaml
    accelerate launch recipes/label_space.py --config recipes/configs/label_space_label_map.yaml
    accelerate launch recipes/label_space.py --strategy.source_model runs/tweets/model   # a given source

Default (recipes/configs/label_space.yaml): a tweet-sentiment classifier (packaged MiniLM +
LoRA, airline tweets) is trained first, then its encoder gets a new head for the five BBC
News topics, trained on 32 articles per topic. `strategy.source_model` starts from an
existing classifier instead (an hf_transfer model folder or a transformers classifier).
Strategies: new_head, lp_ft, label_map. Writes results.json and model/ into --output.dir.
"""

import sys
from pathlib import Path

from hf_transfer import LabelSpaceRecipe
from hf_transfer.run import run_from_command_line

if __name__ == "__main__":
    default = Path(__file__).parent / "configs" / "label_space.yaml"
    sys.exit(run_from_command_line(LabelSpaceRecipe, default, __doc__))
