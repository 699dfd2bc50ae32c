"""Time the pre-flight checks of the quick start (default config, packaged MiniLM + tweets):
each check wrapped with a timer, the run stopped once its data is prepared.

    python tests/scripts/preflight_cost.py /tmp/preflight_run
"""
import functools
import shutil
import sys
import time
from pathlib import Path

import hf_transfer.run.pipeline as pipeline
import hf_transfer.data.loading as loading
from hf_transfer import DomainAdaptationRecipe
from hf_transfer.config import parse_args

timings = {}
def timed(owner, name, label):
    original = getattr(owner, name)
    @functools.wraps(original)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            timings[label] = timings.get(label, 0) + time.perf_counter() - t
    setattr(owner, name, wrapper)

timed(pipeline.Recipe, "_prepare_output_dir", "output folder (check, marker, run_config.json)")
timed(pipeline, "build_on_meta", "architecture on the meta device")
timed(pipeline, "check_tuning", "LoRA targets")
timed(pipeline.Recipe, "_check_free_space", "free space")
timed(pipeline, "check_max_length", "max_length vs positions")
timed(pipeline.Recipe, "_check_resume_data", "run_data.json (labels, rows)")
timed(loading, "_clean", "empty rows + plain-number texts")
timed(pipeline.Recipe, "load_data", "[not a check] load data")
timed(pipeline, "load_tokenizer", "[not a check] tokenizer (incl. vocabulary check)")

class Stop(Exception): pass
def stop(*a, **k): raise Stop
pipeline.resume_plan = stop
out = Path(sys.argv[1]); shutil.rmtree(out, ignore_errors=True)
cfg = parse_args(["--output.dir", str(out)], default_config=Path("recipes/configs/domain_adaptation.yaml"))
try:
    DomainAdaptationRecipe(cfg).run()
except Stop:
    pass
checks = {k: v for k, v in timings.items() if not k.startswith("[")}
for k, v in timings.items():
    print(f"{k:55s} {v*1000:8.1f} ms")
print(f"{'pre-flight checks, total':55s} {sum(checks.values())*1000:8.1f} ms")
