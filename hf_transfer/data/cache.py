"""Prepared data kept on disk: each dataset is read, filtered, cleaned and split once.

:func:`cached` stores what ``load_splits`` returns (the train/validation/test splits of one
dataset) as Arrow files under ``datasets``' own cache folder (``HF_DATASETS_CACHE``, default
``~/.cache/huggingface/datasets``), in ``hf_transfer/<key>``. The key is a hash of everything
the splits depend on: the dataset's settings, the seed, the data's identity (each local
file's path and content hash, or size and modification time for files over 256 MiB; a
built-in dataset's package version), and the code that prepares data (the library version
and the source of ``hf_transfer/data``), so a changed file or setting is read again, never
served stale. Later processes and runs memory-map the
files; the tokenizer's ``map`` then caches its output next to them (``datasets``' own
fingerprinted cache, :func:`hf_transfer.data.tokenize.tokenize`).

The log lines written while the splits were made (dropped rows, carved splits, data checks)
are stored with them and repeated on every read, so a cached run says what an uncached one
says. A folder appears under its key only once completely written (written under a unique
temporary name, then renamed), so processes that share the cache never read half a dataset;
in a multi-process run the main process prepares the data first (``main_process_first``).

Off when ``datasets``' caching is off (``datasets.disable_caching()``), and for Hub datasets
(their current version is not known without asking the Hub; ``datasets`` caches the
download itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import datasets

from ..version import __version__

logger = logging.getLogger(__name__)

# Bump to ignore every folder written by an earlier layout.
CACHE_FORMAT = 1
LOG_FILE = "log.json"


def cached(cfg, seed: int, role: str, build: Callable[[], datasets.DatasetDict]) -> datasets.DatasetDict:
    """The splits ``build()`` makes for dataset settings ``cfg``, from the cache when they are
    there, else built, stored and then read back (so a first run sees what later ones see)."""
    key = cache_key(cfg, seed, role)
    if key is None:
        return build()
    folder = cache_root() / key
    if not (folder / LOG_FILE).is_file():
        lines: list = []
        with _captured_log(lines):
            splits = build()
        _store(splits, lines, folder)
    return _read(folder)


def cache_root() -> Path:
    return Path(datasets.config.HF_DATASETS_CACHE) / "hf_transfer"


def cache_key(cfg, seed: int, role: str) -> Optional[str]:
    """A hash of everything the splits depend on; None when they are not cached."""
    if not datasets.is_caching_enabled() or cfg.hub_id:
        return None
    origin = _builtin_identity(cfg.builtin) if cfg.builtin else _files_identity(cfg.files)
    if origin is None:
        return None
    inputs = {"format": CACHE_FORMAT, "library": __version__, "code": data_code_hash(),
              "datasets": datasets.__version__, "settings": dataclasses.asdict(cfg),
              "seed": seed, "role": role, "origin": origin}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _builtin_identity(name: str) -> Optional[dict]:
    from .builtin import BUILTIN_DATASETS

    entry = BUILTIN_DATASETS.get(name)
    try:
        return {"builtin": name, "package": entry.package,
                "version": importlib.metadata.version(entry.package)}
    except (AttributeError, importlib.metadata.PackageNotFoundError):
        return None  # unknown name or package missing: building it says what to do


def _files_identity(files: Optional[dict]) -> Optional[dict]:
    """Each file's absolute path and content hash (size and modification time for files over
    :data:`HASHED_UP_TO` bytes, where hashing would cost more than a second)."""
    out = {}
    for split, paths in (files or {}).items():
        out[split] = []
        for path in paths if isinstance(paths, list) else [paths]:
            try:
                out[split].append([os.path.abspath(path), _file_identity(Path(path))])
            except OSError:
                return None  # missing or unreadable: reading it says what to do
    return out or None


HASHED_UP_TO = 256 << 20


def _file_identity(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > HASHED_UP_TO:
        return f"size {stat.st_size} mtime {stat.st_mtime_ns} inode {stat.st_ino}"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def data_code_hash() -> str:
    """The source of ``hf_transfer/data`` (a development checkout changes without a new version)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _store(splits: datasets.DatasetDict, log_lines: list, folder: Path) -> None:
    """Write under a unique temporary name, then rename into place (a concurrent writer of the
    same key may win: its splits are the same)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".partial", dir=folder.parent))
    try:
        splits.save_to_disk(str(partial / "splits"))
        (partial / LOG_FILE).write_text(json.dumps(log_lines), encoding="utf-8")
        try:
            partial.rename(folder)
        except OSError:  # another process published the same key first
            if not (folder / LOG_FILE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _read(folder: Path) -> datasets.DatasetDict:
    _replay(json.loads((folder / LOG_FILE).read_text(encoding="utf-8")))
    logger.debug("prepared data read from %s", folder)
    return datasets.load_from_disk(str(folder / "splits"))


@contextlib.contextmanager
def _captured_log(lines: list):
    """Collect (instead of emit) what hf_transfer's data modules log, at every level, into
    ``lines``; a failure replays what was collected before it, then propagates."""
    package = logging.getLogger(__name__.rsplit(".", 1)[0])  # hf_transfer.data
    handler = _Collector(lines)
    saved = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    package.propagate = False
    try:
        yield
    except BaseException:
        _restore(package, handler, saved)
        _replay(lines)
        raise
    _restore(package, handler, saved)


def _restore(package: logging.Logger, handler: logging.Handler, saved: tuple) -> None:
    package.removeHandler(handler)
    package.setLevel(saved[0])  # setLevel, not assignment: it clears the loggers' level caches
    package.propagate = saved[1]


def _replay(lines: list) -> None:
    for logger_name, level, message in lines:
        logging.getLogger(logger_name).log(level, "%s", message)


class _Collector(logging.Handler):
    def __init__(self, lines: list):
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append([record.name, record.levelno, record.getMessage()])
