"""Run several behaviour-fixture cases in one launched job (see tests/golden_cases.py).

    accelerate launch --multi_gpu --num_processes 2 tests/scripts/golden_runs.py ASSETS.json TINY_MODEL OUT_DIR CASE...

Writes OUT_DIR/compared.json ({case: compared sections}) from the main process. One launch
for all cases: starting the processes costs more than a tiny run.
"""

import json
import sys
from pathlib import Path

from golden_cases import run_case


def main(assets_file: str, tiny_model: str, out_dir: str, *cases: str) -> None:
    assets = {k: Path(v) for k, v in json.loads(Path(assets_file).read_text()).items()}
    out = Path(out_dir)
    compared = {}
    for i, name in enumerate(cases):
        compared[name] = run_case(name, assets, Path(tiny_model), out / name, nested=i < len(cases) - 1)
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        (out / "compared.json").write_text(json.dumps(compared, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
