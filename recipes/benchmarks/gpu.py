"""A short GPU check (a few minutes on one H100/H200-class card): training and prediction
throughput and peak GPU memory of LoRA and full fine-tuning, bf16, eager and torch.compile,
hf_transfer's engine beside both Trainers.

    python recipes/benchmarks/gpu.py                   # writes docs/benchmarks/vs_trainer_gpu.md/.json
    python recipes/benchmarks/gpu.py --no_compile      # skip the torch.compile runs

It is recipes/benchmarks/vs_trainer.py with GPU settings (16k tweets, batch 64, bf16,
2 repeats); the model and data ship in PyPI packages, so it runs on a machine without
internet. It refuses to run without CUDA: CPU numbers come from vs_trainer.py itself.
"""

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no_compile", action="store_true", help="skip the torch.compile runs")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=16000)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device: this check is for a GPU machine (CPU numbers: "
              "recipes/benchmarks/vs_trainer.py).", file=sys.stderr)
        return 2
    common = [sys.executable, str(HERE / "vs_trainer.py"), "--mixed_precision", "bf16", "--n", str(args.n),
              "--batch_size", "64", "--eval_batch_size", "256", "--repeats", str(args.repeats),
              "--loops", "hf_transfer", "trainer", "trainer_grouped"]
    # bare_steps (eager only: it does not compile) is the floor: how much of the engine's time
    # on the GPU is the model's own, and how much the host's.
    runs = [(common + ["bare_steps", "--out", "runs/bench_gpu/eager", "--report", "docs/benchmarks/vs_trainer_gpu"])]
    if not args.no_compile:
        runs.append(common + ["--compile", "--out", "runs/bench_gpu/compiled",
                              "--report", "docs/benchmarks/vs_trainer_gpu_compiled"])
    for command in runs:
        done = subprocess.run(command)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
