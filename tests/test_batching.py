"""Length-grouped batching: every row once per epoch, seeded, little padding, DDP-safe."""

import json
import random

import pytest
import torch

from conftest import launch
from hf_transfer.data.tokenize import LengthGroupedSampler, LongestFirstSampler, MEGABATCH_BATCHES


def tweet_like_lengths(n, seed=0):
    rng = random.Random(seed)
    return [max(3, min(64, int(rng.lognormvariate(3.1, 0.45)))) for _ in range(n)]


def padding_efficiency(order, lengths, batch_size):
    real = padded = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start:start + batch_size]]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return real / padded


@pytest.mark.parametrize("n,batch_size,processes", [(1000, 16, 1), (1003, 16, 2), (7, 4, 1), (50, 8, 3)])
def test_every_row_once_per_epoch(n, batch_size, processes):
    sampler = LengthGroupedSampler(tweet_like_lengths(n), batch_size, seed=1, num_processes=processes)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert sorted(sampler) == list(range(n))


def test_order_is_seeded_and_changes_every_epoch():
    lengths = tweet_like_lengths(500)
    a, b = (LengthGroupedSampler(lengths, 16, seed=7) for _ in range(2))
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LengthGroupedSampler(lengths, 16, seed=8)) != list(b)


def test_batches_of_similar_length_pad_far_less_than_random_ones():
    lengths = tweet_like_lengths(4000)
    grouped = padding_efficiency(list(LengthGroupedSampler(lengths, 32, seed=0)), lengths, 32)
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    plain = padding_efficiency(random_order, lengths, 32)
    assert grouped >= 0.9 > plain
    assert grouped - plain > 0.15


def test_only_the_last_batch_is_partial_and_batches_mix_megabatches():
    lengths = tweet_like_lengths(16 * MEGABATCH_BATCHES * 2 + 5)
    order = list(LengthGroupedSampler(lengths, 16, seed=0))
    batches = [order[i:i + 16] for i in range(0, len(order), 16)]
    assert [len(b) for b in batches[:-1]] == [16] * (len(batches) - 1) and len(batches[-1]) == 5
    # Not simply longest to shortest within each megabatch: the batch order is shuffled.
    maxima = [max(lengths[i] for i in b) for b in batches[:-1]]
    assert maxima != sorted(maxima, reverse=True)


def test_neighbouring_batches_of_a_ddp_step_have_similar_lengths():
    lengths = tweet_like_lengths(3200)
    order = list(LengthGroupedSampler(lengths, 16, seed=0, num_processes=2))
    batches = [order[i:i + 16] for i in range(0, len(order), 16)]
    # Batch 2k goes to process 0 and batch 2k+1 to process 1 in the same step.
    step_gap = [abs(max(lengths[i] for i in batches[k]) - max(lengths[i] for i in batches[k + 1]))
                for k in range(0, len(batches) - 1, 2)]
    assert sum(step_gap) / len(step_gap) <= 2


def test_evaluation_order_is_longest_first_and_complete():
    lengths = tweet_like_lengths(300)
    order = list(LongestFirstSampler(lengths))
    assert sorted(order) == list(range(300))
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)


@pytest.mark.parametrize("n", [96, 101])
def test_two_processes_see_every_row_once_per_epoch(tiny_model, tmp_path, n):
    """96 rows = 6 batches of 8 per process: each row exactly once. 101 rows: accelerate pads
    the last step with rows from the start of the epoch (as for any sampler), nothing else."""
    out = tmp_path / "batches.json"
    done = launch("tests/scripts/visit_batches.py", [str(n), "8", str(out), str(tiny_model)], num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["num_processes"] == 2
    orders = []
    for per_process in result["epochs"]:
        assert len(per_process) == 2 and len(per_process[0]) == len(per_process[1])
        rows = [r for batches in per_process for b in batches for r in b["rows"]]
        counts = {r: rows.count(r) for r in set(rows)}
        assert set(counts) == set(range(n))
        repeated = sum(c - 1 for c in counts.values())
        assert repeated == (0 if n % 16 == 0 else 16 - n % 16)
        real = sum(b["real"] for batches in per_process for b in batches)
        padded = sum(b["padded"] for batches in per_process for b in batches)
        assert real / padded > 0.8
        orders.append([b["rows"] for b in per_process[0]])
    assert orders[0] != orders[1]  # re-shuffled for the second epoch


@pytest.mark.parametrize("padding_side,multiple", [("right", None), ("right", 8), ("left", None), ("left", 8)])
def test_array_batches_equal_the_collator_s(tiny_model, padding_side, multiple):
    """PaddedBatches (numpy gathers over flat token arrays) makes exactly the batches that
    DataCollatorWithPadding makes of the same rows: same keys, dtypes, padding and values."""
    import datasets
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from hf_transfer.data.tokenize import PaddedBatches

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.padding_side = padding_side
    rng = random.Random(0)
    words = ["great", "flight", "delayed", "seat", "crew", "phone", "okay"]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(200)]
    split = datasets.Dataset.from_dict({"text": texts, "labels": [i % 3 for i in range(200)],
                                        "idx": list(range(200))})
    split = split.map(lambda b: tokenizer(b["text"], truncation=True, max_length=24), batched=True)
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels", "idx")
               if c in split.column_names]
    rows_as_tensors = split.with_format("torch", columns=columns)
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)
    batches = PaddedBatches(split.select(range(10, 200)), columns, tokenizer, multiple)  # an indices mapping
    for _ in range(20):
        rows = rng.sample(range(190), rng.randint(1, 32))
        expected = collate([rows_as_tensors[10 + i] for i in rows])
        got = batches.__getitems__(rows)
        assert set(got) == set(expected)
        for key in expected:
            assert got[key].dtype == expected[key].dtype and torch.equal(got[key], expected[key]), key
