"""Engine helpers: which checkpoint a resumed run takes, and what counts as a checkpoint."""

import json

import pytest

from hf_transfer.training import FINISHED, RESULT_FILE, STATE_FILE, list_checkpoints, resume_plan
from hf_transfer.errors import ConfigError


def _checkpoint(run, stage, step, complete=True):
    folder = run / "checkpoints" / stage / f"step_{step:07d}"
    folder.mkdir(parents=True)
    if complete:
        (folder / STATE_FILE).write_text("{}")
    return folder


def _finish(run, stage):
    (run / "checkpoints" / stage / RESULT_FILE).write_text(json.dumps({"name": stage}))


def test_half_written_checkpoints_never_count(tmp_path):
    done = _checkpoint(tmp_path, "source", 5)
    _checkpoint(tmp_path, "source", 10, complete=False)  # killed while writing
    (tmp_path / "checkpoints" / "source" / "step_0000015.partial").mkdir()
    assert list_checkpoints(tmp_path / "checkpoints" / "source") == [done]


def test_only_exact_step_names_count_and_they_sort_by_number(tmp_path):
    stage = tmp_path / "checkpoints" / "source"
    late = _checkpoint(tmp_path, "source", 10_000_000)  # more digits than the usual 7
    early = _checkpoint(tmp_path, "source", 9)
    for name in ("step_0000012.trash", "step_0000013.superseded", "step_x"):
        (stage / name).mkdir()
        (stage / name / STATE_FILE).write_text("{}")
    assert list_checkpoints(stage) == [early, late]


def test_no_resume_starts_every_stage_fresh(tmp_path):
    assert resume_plan(tmp_path / "checkpoints", ["source", "target"], None) == {"source": None, "target": None}


def test_latest_skips_finished_stages_and_continues_the_first_open_one(tmp_path):
    _checkpoint(tmp_path, "source", 5)
    _finish(tmp_path, "source")
    _checkpoint(tmp_path, "target", 2)
    newest = _checkpoint(tmp_path, "target", 4)
    plan = resume_plan(tmp_path / "checkpoints", ["source", "target"], "latest")
    assert plan == {"source": FINISHED, "target": newest}


def test_latest_before_any_checkpoint_starts_fresh(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    assert resume_plan(tmp_path / "checkpoints", ["source"], "latest") == {"source": None}


def test_explicit_checkpoint_resumes_its_stage(tmp_path):
    _checkpoint(tmp_path, "source", 5)
    _finish(tmp_path, "source")
    chosen = _checkpoint(tmp_path, "target", 2)
    _checkpoint(tmp_path, "target", 4)
    assert resume_plan(tmp_path / "checkpoints", ["source", "target"], str(chosen)) == {"source": FINISHED, "target": chosen}


def test_explicit_checkpoint_errors(tmp_path, tmp_path_factory):
    incomplete = _checkpoint(tmp_path, "source", 5, complete=False)
    with pytest.raises(ConfigError, match="missing or incomplete"):
        resume_plan(tmp_path / "checkpoints", ["source"], str(incomplete))
    elsewhere = _checkpoint(tmp_path_factory.mktemp("other"), "source", 5)
    with pytest.raises(ConfigError, match="not a checkpoint of this run"):
        resume_plan(tmp_path / "checkpoints", ["source"], str(elsewhere))
    later = _checkpoint(tmp_path, "target", 1)
    with pytest.raises(ConfigError, match="earlier stage 'source' never finished"):
        resume_plan(tmp_path / "checkpoints", ["source", "target"], str(later))


def test_a_compiled_model_unwraps_to_the_plain_module_and_plain_weight_names():
    """`accelerate launch --dynamo_backend inductor` wraps the model with torch.compile; the
    next stage and the saved classifier need the module and its own weight names."""
    import torch
    from accelerate import Accelerator

    from hf_transfer.training import full_state_dict, unwrap

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    compiled = torch.compile(model)  # nothing compiles until the first forward call
    accelerator = Accelerator(cpu=True)
    assert unwrap(accelerator, compiled) is model
    state = full_state_dict(accelerator, compiled)
    assert list(state) == list(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_gathered_rows_come_back_once_each_in_row_order():
    """What one process holds after a pass's single exchange: rows DDP repeated (the same
    index twice) and padding (index -1) are dropped, and the rest is put in row order."""
    import torch
    from accelerate import Accelerator

    from hf_transfer.training.loop import gather_rows

    idx = torch.tensor([3, 0, 2, -1, 1, 3, 0])
    logits = torch.arange(14.0).reshape(7, 2)
    labels = idx.clamp(min=0) % 2
    kept_logits, kept_labels, kept_idx = gather_rows(Accelerator(cpu=True), logits, labels, idx=idx)
    assert kept_idx.tolist() == [0, 1, 2, 3]
    # The first occurrence of each row is the one kept.
    assert kept_logits.tolist() == [[2.0, 3.0], [8.0, 9.0], [4.0, 5.0], [0.0, 1.0]]
    assert kept_labels.tolist() == [0, 1, 0, 1]
