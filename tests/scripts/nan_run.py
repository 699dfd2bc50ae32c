"""The domain-adaptation script with NaNs injected into chosen training steps.

    accelerate launch [--multi_gpu --num_processes 2] tests/scripts/nan_run.py [--section.field VALUE ...]

``HF_TRANSFER_TEST_NAN="RANK:CALL,CALL"`` (e.g. ``1:3``) makes the classifier head's output NaN
on those training forward calls (1-based) of process RANK only (``*`` for every process,
``all`` for every call), so the loss and gradients of that step are NaN there.
"""

import os
import sys
from pathlib import Path

import hf_transfer.run.pipeline as base


def poison(model, calls="all"):
    """Make ``model.classifier``'s output NaN on the given training forward calls."""
    seen = {"n": 0}

    def hook(module, inputs, output):
        if not module.training:
            return None
        seen["n"] += 1
        if calls == "all" or seen["n"] in calls:
            return output * float("nan")
        return None

    model.classifier.register_forward_hook(hook)
    return model


def poisoning_loader(calls):
    original = base.load_classifier_model

    def load(*args, **kwargs):
        model, new_modules = original(*args, **kwargs)
        return poison(model, calls), new_modules

    return load


def main() -> int:
    from hf_transfer import DomainAdaptationRecipe
    from hf_transfer.run import run_from_command_line

    rank, _, calls = os.environ.get("HF_TRANSFER_TEST_NAN", "").partition(":")
    if rank in ("*", os.environ.get("RANK", "0")) and calls:
        parsed = "all" if calls == "all" else {int(c) for c in calls.split(",")}
        base.load_classifier_model = poisoning_loader(parsed)
    default = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "domain_adaptation.yaml"
    return run_from_command_line(DomainAdaptationRecipe, default, __doc__)


if __name__ == "__main__":
    sys.exit(main())
