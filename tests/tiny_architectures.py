"""Tiny random checkpoints of the common classifier architectures, built offline from configs.

Each is saved like a pretrained checkpoint from the Hub: the bare model (``AutoModel``, no
head) and a tokenizer over the tiny vocabulary. Encoders get the BERT-style WordPiece
tokenizer; decoder-only models get one like Llama's: a beginning-of-text token, an
end-of-text token, **no pad token** and left padding, which the library must repair.
"""

from __future__ import annotations

from pathlib import Path

from tiny_assets import MAX_LENGTH, build_tiny_tokenizer, build_vocab

SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=MAX_LENGTH)
LLAMA_LIKE = dict(SIZE, num_key_value_heads=1, head_dim=16)

# model_type -> config arguments (besides the vocabulary and special token ids).
ENCODERS: dict[str, dict] = {
    "bert": SIZE,
    "roberta": dict(SIZE, max_position_embeddings=MAX_LENGTH + 2),
    "xlm-roberta": dict(SIZE, max_position_embeddings=MAX_LENGTH + 2),
    "deberta-v2": dict(SIZE, relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"]),
    "distilbert": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=MAX_LENGTH),
    "electra": dict(SIZE, embedding_size=32),
    "modernbert": dict(SIZE, global_attn_every_n_layers=2, local_attention=16, cls_token_id=2,
                       sep_token_id=3),
}
DECODERS: dict[str, dict] = {
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=MAX_LENGTH),
    "llama": LLAMA_LIKE,
    "qwen2": LLAMA_LIKE,
    "qwen3": LLAMA_LIKE,
    "gemma": LLAMA_LIKE,
    "mistral": dict(LLAMA_LIKE, sliding_window=None),
}
ARCHITECTURES = (*ENCODERS, *DECODERS)


def build_decoder_tokenizer(vocab: dict[str, int]):
    """Like a Llama tokenizer: bos prepended, nothing appended, no pad token, left padding."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = build_tiny_tokenizer(vocab).backend_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B:1", special_tokens=[("[CLS]", vocab["[CLS]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[CLS]",
                                   eos_token="[SEP]", model_max_length=MAX_LENGTH, padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"])


def build_tiny_checkpoint(model_type: str, folder: Path, seed: int = 0) -> Path:
    """A random ``model_type`` checkpoint (bare model + tokenizer) in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModel

    from transformers import AutoTokenizer

    vocab = build_vocab()
    decoder = model_type in DECODERS
    folder = Path(folder)
    (build_decoder_tokenizer(vocab) if decoder else build_tiny_tokenizer(vocab)).save_pretrained(folder)
    ids = (dict(bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"], pad_token_id=None) if decoder
           else dict(pad_token_id=vocab["[PAD]"], bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"]))
    config = AutoConfig.for_model(model_type, vocab_size=len(vocab), **ids,
                                  **(ENCODERS.get(model_type) or DECODERS[model_type]))
    config.save_pretrained(folder)
    # transformers 5 picks the tokenizer class from the model type: Qwen2's adds its own pad
    # token `<|endoftext|>` (as a real Qwen2 checkpoint has one): make room for it.
    config.vocab_size = max(len(vocab), len(AutoTokenizer.from_pretrained(folder)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    model.save_pretrained(folder)
    return folder
