"""The one owner of a run folder's layout: every path a run writes or reads is named here.

    <output.dir>/
      results.json            the run's results (written last by the main process)
      model/                  the saved classifier or adapter, tokenizer, labels
      checkpoints/<stage>/    step_N checkpoints and result.json of each stage
      logs/                   trackers (tensorboard, ...)
      baselines/<arm>_seed<N>/  nested runs of the transfer comparison (a run folder each)
      candidates/<name>/      `auto`: one nested run per candidate strategy
      mlm_encoder/            the encoder adapted by `tapt`/`dapt`
      report.md, report/      the human-readable report and its figures
      run_config.json         the settings the run started with (a resume must keep them)
      run_data.json           the labels and split sizes it started with (a resume must keep them)
      .hf_transfer_run        the marker: this folder holds a run (only such outputs are replaced)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from .atomic import remove_tree
from .version import __version__

RESULTS_FILE = "results.json"
CONFIG_FILE = "run_config.json"
DATA_FILE = "run_data.json"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
BASELINES_DIR = "baselines"
CANDIDATES_DIR = "candidates"
MLM_ENCODER_DIR = "mlm_encoder"
REPORT_FILE = "report.md"
FIGURES_DIR = "report"
MARKER_FILE = ".hf_transfer_run"
# What a run writes into its folder; `--output.overwrite` replaces these and nothing else.
RUN_OUTPUTS = (RESULTS_FILE, CONFIG_FILE, DATA_FILE, MODEL_DIR, CHECKPOINTS_DIR, LOGS_DIR, BASELINES_DIR,
               CANDIDATES_DIR, REPORT_FILE, FIGURES_DIR, MLM_ENCODER_DIR)


class RunLayout:
    """The paths of one run folder."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    @property
    def results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def data(self) -> Path:
        return self.root / DATA_FILE

    @property
    def model(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def logs(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def mlm_encoder(self) -> Path:
        return self.root / MLM_ENCODER_DIR

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def figures(self) -> Path:
        return self.root / FIGURES_DIR

    def baseline_run(self, arm: str, seed: int) -> Path:
        """The folder of one nested run of the transfer comparison."""
        return self.root / BASELINES_DIR / f"{arm}_seed{seed}"

    def candidate_run(self, name: str) -> Path:
        """The folder of one candidate of `auto`."""
        return self.root / CANDIDATES_DIR / name

    @property
    def marker(self) -> Path:
        return self.root / MARKER_FILE

    def mark(self) -> None:
        """Note that this folder holds a run: its outputs may be replaced by a later run with
        `--output.overwrite`. (Every process may call it: they all write the same bytes.)"""
        if not self.marker.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            self.marker.write_text(json.dumps({"hf_transfer_version": __version__}) + "\n", encoding="utf-8")

    def holds_a_run(self) -> bool:
        """Whether hf_transfer made what is here: the marker, or (runs older than the marker)
        a results.json that hf_transfer wrote."""
        if self.marker.is_file():
            return True
        try:
            return "hf_transfer_version" in json.loads(self.results.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return False

    def previous_outputs(self) -> list[str]:
        """What an earlier run left here (names from RUN_OUTPUTS). The settings and data records
        alone do not count: a run that stopped at a check before training wrote nothing else,
        and its rerun (once the input is fixed) writes them anew."""
        return [name for name in RUN_OUTPUTS
                if name not in (CONFIG_FILE, DATA_FILE) and (self.root / name).exists()]

    def remove_outputs(self) -> None:
        """Remove an earlier run's outputs, nothing else. Each is renamed away before it is
        deleted: a kill midway never leaves a half-deleted checkpoint."""
        for name in RUN_OUTPUTS:
            remove_tree(self.root / name)
