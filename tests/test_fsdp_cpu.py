"""FSDP2 preparation driven on the CPU (one gloo process): accelerate's `fsdp2_prepare_model`
on the tiny BERT, full and LoRA, its own head and mean pooling, then a training step, and the
final model saved as a run saves it (full weights gathered from the shards, `save_classifier`)
and reloaded to the same logits. Without
`fsdp2_units_around_embeddings`, torch 2.13 + accelerate 1.15 fail here exactly as the H200 run
of issue 17 did (`DeviceMesh._concatenate`: `Invariant encountered: value was None`)."""

import subprocess
import sys

from conftest import launch_command

SCRIPT = r"""
import sys, types, torch, torch.distributed as dist
dist.init_process_group("gloo", rank=0, world_size=1, init_method="file://" + sys.argv[2])
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.modeling import load_classifier_model
from hf_transfer.training.loop import fsdp2_units_around_embeddings
from hf_transfer.tuning import apply_tuning
from hf_transfer.saving import load_classifier, save_classifier
from pathlib import Path
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from transformers import AutoTokenizer

out = Path(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
inputs, mask = torch.tensor([[2, 40, 50, 3], [2, 41, 3, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])

for method, pooling in (("full", "cls"), ("lora", "cls"), ("full", "mean"), ("lora", "mean")):
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                            state_dict_type="FULL_STATE_DICT")
    model, new = load_classifier_model(ModelConfig(name_or_path=sys.argv[1], pooling=pooling), ["a", "b", "c"])
    model = apply_tuning(model, TuningConfig(method=method), new)
    fsdp2_units_around_embeddings(plugin, model)
    assert plugin.transformer_cls_names_to_wrap == ["BertLayer"], plugin.transformer_cls_names_to_wrap
    accelerator = types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None,
                                        device=torch.device("cpu"), parallelism_config=None,
                                        is_main_process=True, mixed_precision="no")
    model.eval()
    with torch.no_grad():
        before = model(input_ids=inputs, attention_mask=mask).logits
    model.train()
    sharded = fsdp2_prepare_model(accelerator, model)
    units = sorted(type(m).__name__ for m in sharded.modules() if type(m).__name__.startswith("FSDP"))
    loss = sharded(input_ids=torch.tensor([[2, 40, 50, 3]]), labels=torch.tensor([1])).loss
    loss.backward()
    assert torch.isfinite(loss)
    torch.optim.SGD([p for p in sharded.parameters() if p.requires_grad], lr=1.0).step()

    # Save the trained model as a run does and reload it: the full weights gathered from the
    # shards (what Accelerator.get_state_dict does under FSDP2), then save_classifier.
    sharded.eval()
    with torch.no_grad():
        trained = sharded(input_ids=inputs, attention_mask=mask).logits
    state = get_model_state_dict(sharded, options=StateDictOptions(
        full_state_dict=True, broadcast_from_rank0=True, cpu_offload=True))
    folder = save_classifier(sharded, tokenizer, out / f"{method}-{pooling}", ["a", "b", "c"], sys.argv[1], 32,
                             method, state_dict=state)
    reloaded = load_classifier(folder).model.eval()
    with torch.no_grad():
        again = reloaded(input_ids=inputs, attention_mask=mask).logits
    assert not torch.allclose(trained, before, atol=1e-4), "the step changed nothing"
    assert torch.allclose(again, trained, atol=1e-5), (again, trained)
    print(f"{method}-{pooling}", "OK", units)
dist.destroy_process_group()
"""


def test_fsdp2_trains_saves_and_reloads_a_bert_classifier_on_the_cpu(tiny_model, tmp_path):
    _, env = launch_command("recipes/domain_adaptation.py", [])
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model), str(tmp_path / "store"),
                           str(tmp_path / "saved")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for method in ("full-cls", "lora-cls", "full-mean", "lora-mean"):  # the pooled classifier too
        line = next(line for line in done.stdout.splitlines() if line.startswith(method))
        # one unit per layer (2), the word embeddings, the root
        assert line.count("FSDPBertLayer") == 2 and "FSDPEmbedding" in line, line
