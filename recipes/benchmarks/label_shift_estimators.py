"""Compare label-shift estimators on one quick-start run (docs/recipes.md, the table under
`strategy.label_shift`): none, calibration only, EM, BBSE, the mean calibrated posterior and
the true target prior, each applied to the same uncorrected logits.

    accelerate launch recipes/domain_adaptation.py --output.dir runs/ls_s2 --training.seed 2 \
        --strategy.label_shift em
    python recipes/benchmarks/label_shift_estimators.py runs/ls_s2 test   # or: validation

The run's saved model carries its correction; the uncorrected logits are recovered from it with
the calibration and priors its results.json records. Splits are rebuilt with the run's seed.
"""
import json
import sys
from pathlib import Path

import numpy as np

from hf_transfer import DomainAdaptationRecipe, load_classifier
from hf_transfer.config import parse_args


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def accuracy_and_macro_f1(predicted: np.ndarray, gold: np.ndarray, num_classes: int) -> tuple:
    f1 = []
    for c in range(num_classes):
        tp = ((predicted == c) & (gold == c)).sum()
        wrong = ((predicted == c) != (gold == c)).sum()  # false positives + false negatives
        f1.append(2 * tp / max(2 * tp + wrong, 1))
    return round(float((predicted == gold).mean()), 4), round(float(np.mean(f1)), 4)


def main(run: Path, split: str) -> None:
    results = json.loads((run / "results.json").read_text())
    shift, names = results["label_shift"], results["labels"]
    index = {name: i for i, name in enumerate(names)}
    k = len(names)
    config = parse_args(["--output.dir", str(run / "estimators"), "--training.seed",
                         str(results["config"]["training"]["seed"])],
                        default_config=Path("recipes/configs/domain_adaptation.yaml"))
    raw = DomainAdaptationRecipe(config).load_data()
    classifier = load_classifier(run / "model")
    temperature = shift["calibration"]["temperature"]
    bias = np.array(shift["calibration"]["bias"])
    run_source = np.array([shift["source_prior"][n] for n in names])
    run_target = np.array([shift["estimated_target_prior"][n] for n in names])
    folded = bias + np.log(np.clip(run_target, 1e-6, None)) - np.log(run_source)

    def uncorrected_logits(texts) -> np.ndarray:  # up to a constant per row
        log_probs = np.log(np.clip(classifier.predict_proba(texts, batch_size=128), 1e-30, None))
        return temperature * (log_probs - folded)

    def gold(split_rows) -> np.ndarray:
        return np.array([index[label] for label in split_rows["label"]])

    source_val, target_train, evaluated = raw.source["validation"], raw.target["train"], raw.target[split]
    val_logits, train_logits, eval_logits = (uncorrected_logits(d["text"])
                                             for d in (source_val, target_train, evaluated))
    val_gold, eval_gold = gold(source_val), gold(evaluated)
    source_prior = np.bincount(val_gold, minlength=k) / len(val_gold)
    # BBSE (Lipton et al. 2018): the confusion matrix on source validation, inverted.
    confusion = np.zeros((k, k))
    for p, y in zip(val_logits.argmax(1), val_gold):
        confusion[p, y] += 1 / len(val_gold)
    predicted_share = np.bincount(train_logits.argmax(1), minlength=k) / len(train_logits)
    weights = np.clip(np.linalg.solve(confusion, predicted_share), 0, None)
    bbse = weights * source_prior / (weights * source_prior).sum()
    priors = {
        "calibration only (source prior)": source_prior,
        "em (as the run estimated it)": run_target,
        "bbse": bbse,
        "mean calibrated posterior": softmax(train_logits / temperature + bias).mean(0),
        "true target-train prior (oracle)": np.bincount(gold(target_train), minlength=k) / len(target_train),
    }
    print(f"labels {names}; target/{split}: accuracy, macro-F1")
    print(f"{'no correction':34s} {accuracy_and_macro_f1(eval_logits.argmax(1), eval_gold, k)}")
    for name, prior in priors.items():
        corrected = eval_logits / temperature + bias + np.log(np.clip(prior, 1e-6, None)) - np.log(source_prior)
        print(f"{name:34s} {accuracy_and_macro_f1(corrected.argmax(1), eval_gold, k)}  prior {np.round(prior, 3)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "test")
