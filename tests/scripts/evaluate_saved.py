"""Evaluate a saved classifier with the engine under any `accelerate launch` setting.

    accelerate launch [--multi_gpu --num_processes 2] tests/scripts/evaluate_saved.py MODEL DATA.jsonl OUT.json

Used by the tests to check that N processes give exactly the single-process metrics.
"""

import json
import sys
from pathlib import Path

from hf_transfer import load_classifier
from hf_transfer.config import DatasetConfig
from hf_transfer.data.labels import LabelSpace
from hf_transfer.data.loading import read_dataset
from hf_transfer.data.tokenize import tokenize
from hf_transfer.training import Engine, make_accelerator


def main(model_dir: str, data_file: str, out_file: str) -> None:
    accelerator = make_accelerator()
    classifier = load_classifier(model_dir)
    raw = read_dataset(DatasetConfig(files={"test": data_file}), "data.target")
    raw = raw.rename_column("domain", "group")  # evaluation reports per `group` value
    data = tokenize(LabelSpace(tuple(classifier.labels)).encode(raw), classifier.tokenizer, 32)
    engine = Engine(accelerator, classifier.tokenizer, classifier.labels, Path(out_file).parent)
    # Batch 5 over an odd number of rows: DDP must pad the last batch, gather must trim it.
    metrics = engine.evaluate(classifier.model.to(accelerator.device), {"target/test": data["test"]}, 5)
    if accelerator.is_main_process:
        Path(out_file).write_text(json.dumps(metrics, indent=1))
    accelerator.end_training()  # destroy the process group before exit (a gloo abort otherwise)


if __name__ == "__main__":
    main(*sys.argv[1:4])
