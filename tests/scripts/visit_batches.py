"""Record which rows each process's training batches hold, epoch by epoch.

    accelerate launch [--multi_gpu --num_processes 2] tests/scripts/visit_batches.py N BATCH OUT.json TOKENIZER_DIR

Builds N rows of known token lengths, the engine's length-grouped training loader prepared
like the engine prepares it, and writes, for each epoch, every process's batches (row ids)
and the padded and real token counts.
"""

import json
import sys
from pathlib import Path

import datasets
from accelerate import DataLoaderConfiguration
from accelerate.utils import gather_object
from transformers import AutoTokenizer

from hf_transfer.data.tokenize import make_loader
from hf_transfer.training import make_accelerator


def main(n: int, batch_size: int, out_file: str, tokenizer_dir: str) -> None:
    accelerator = make_accelerator(dataloader_config=DataLoaderConfiguration(
        use_seedable_sampler=True, data_seed=3))
    lengths = [2 + (i * 7919) % 61 for i in range(n)]  # 2..62 tokens, scattered
    split = datasets.Dataset.from_dict({
        "input_ids": [[5] * k for k in lengths], "attention_mask": [[1] * k for k in lengths],
        "labels": [i % 3 for i in range(n)], "length": lengths, "idx": list(range(n))})
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)  # only its pad token is used
    loader = accelerator.prepare(make_loader(split, tokenizer, batch_size, shuffle=True, seed=3,
                                             group_by_length=True,
                                             num_processes=accelerator.num_processes))
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        batches = [{"rows": b["idx"].tolist(), "padded": b["input_ids"].numel(),
                    "real": int(b["attention_mask"].sum())} for b in loader]
        epochs.append(gather_object([batches]))  # one list of batches per process
    if accelerator.is_main_process:
        Path(out_file).write_text(json.dumps({"num_processes": accelerator.num_processes,
                                              "epochs": epochs}))
    # Destroy the process group before the interpreter exits: otherwise gloo's threads can
    # abort the process at shutdown ("terminate called without an active exception").
    accelerator.end_training()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
