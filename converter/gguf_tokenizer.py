"""A GGUF's `tokenizer.ggml.*` keys -> the tokenizer.json and tokenizer_config.json of the
Hugging Face pipeline they stand for.

llama.cpp keeps a tokenizer as a vocabulary, merges (or SentencePiece scores), token types and
the name of a pre-tokenizer; the pipeline itself lives in llama.cpp's code. This module writes
that pipeline out as Hugging Face `tokenizers` spells it, so that a GGUF's tokenizer goes through
the same path as a model folder's tokenizer.json:

- `tokenizer.ggml.model` "gpt2": byte-level BPE, with the Split and ByteLevel steps (and the
  normalizer) of the tokenizer that `tokenizer.ggml.pre` names (PRE_TOKENIZERS);
- "llama": SentencePiece BPE with byte fallback, as transformers converts a SentencePiece
  model: "▁" for spaces, a dummy-prefix "▁" unless `add_space_prefix` is false, and merges
  ranked by score where the file has none.
"""

from __future__ import annotations

from pathlib import Path

from .tokenizer import LLAMA3_REGEX, QWEN2_REGEX, TokenizerError

SPACE_MARK = "\u2581"  # "▁", SentencePiece's visible space
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

_BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
_BYTE_LEVEL_GPT2 = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_GPT2_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"


def _splits(*patterns: str) -> dict:
    """llama.cpp's chain of regexes: each one splits every piece, keeping both matches and gaps."""
    steps = [{"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False} for p in patterns]
    return {"type": "Sequence", "pretokenizers": [*steps, _BYTE_LEVEL_NO_REGEX]}


# tokenizer.ggml.pre -> (normalizer, pre-tokenizer, ignore_merges) of the Hugging Face tokenizer
# that llama.cpp's pre-tokenizer of that name reproduces (llama.cpp src/llama-vocab.cpp).
_LLAMA3 = (None, _splits(LLAMA3_REGEX), True)
_QWEN2 = ({"type": "NFC"}, _splits(QWEN2_REGEX), False)
_GPT2 = (None, _BYTE_LEVEL_GPT2, False)
_STARCODER = (None, {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                           _BYTE_LEVEL_GPT2]}, False)
PRE_TOKENIZERS: dict[str, tuple[dict | None, dict, bool]] = {
    "llama-bpe": _LLAMA3, "llama3": _LLAMA3, "llama-v3": _LLAMA3, "dbrx": _LLAMA3, "smaug-bpe": _LLAMA3,
    "falcon3": _LLAMA3, "pixtral": _LLAMA3,
    "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2,
    "gpt-2": _GPT2, "gpt2": _GPT2, "mpt": _GPT2, "olmo": _GPT2, "jais": _GPT2,
    "starcoder": _STARCODER, "refact": _STARCODER, "smollm": _STARCODER,
    # llama.cpp's fallback for a byte-level vocabulary it does not recognise.
    "default": (None, _splits(r"[\p{P}\$\+<=>\^~\|]+", _GPT2_WORDS, r"\p{N}+", "[0-9][0-9][0-9]"), False),
}


def tokenizer_from_gguf(fields: dict[str, object], where: Path) -> tuple[dict, dict]:
    """(tokenizer.json, tokenizer_config.json) as dicts, from a GGUF's metadata as plain values
    (strings, numbers, lists). Raises TokenizerError naming `where` for what has no pipeline."""
    kind = fields.get("tokenizer.ggml.model")
    tokens = fields.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise TokenizerError(f"{where}: the GGUF has no tokenizer.ggml.tokens")
    types = fields.get("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens)
    if len(types) != len(tokens):
        raise TokenizerError(f"{where}: {len(types)} token types for {len(tokens)} tokens")
    vocab: dict[str, int] = {}
    added = []
    for i, (text, kind_of) in enumerate(zip(tokens, types)):
        if kind_of in (TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNKNOWN):
            added.append({"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": kind_of != TOKEN_USER_DEFINED})
        if kind_of == TOKEN_UNUSED:
            continue  # llama.cpp's [PADn] fillers
        # Added tokens stay in the BPE vocabulary too, as in GPT-2's tokenizer.json: `tokenizers` keeps
        # an added token's id only if its vocabulary has it.
        if text in vocab:
            raise TokenizerError(f"{where}: token {text!r} appears twice (ids {vocab[text]} and {i})")
        vocab[text] = i

    add_bos = bool(fields.get("tokenizer.ggml.add_bos_token", kind == "llama"))
    add_eos = bool(fields.get("tokenizer.ggml.add_eos_token", False))
    config = {"add_bos_token": add_bos, "add_eos_token": add_eos}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"),
                      ("pad", "padding_token_id")):
        i = fields.get(f"tokenizer.ggml.{key}")
        if isinstance(i, int) and 0 <= i < len(tokens):
            config[f"{role}_token"] = tokens[i]
    if isinstance(fields.get("tokenizer.chat_template"), str):
        config["chat_template"] = fields["tokenizer.chat_template"]

    merges = fields.get("tokenizer.ggml.merges")
    if kind == "gpt2":
        pre_name = fields.get("tokenizer.ggml.pre", "default")
        if pre_name not in PRE_TOKENIZERS:
            raise TokenizerError(f"{where}: pre-tokenizer {pre_name!r} (tokenizer.ggml.pre) has no known Hugging Face "
                                 f"pipeline (known: {', '.join(sorted(PRE_TOKENIZERS))})")
        if not merges:
            raise TokenizerError(f"{where}: a byte-level (gpt2) tokenizer without tokenizer.ggml.merges")
        normalizer, pre_tokenizer, ignore_merges = PRE_TOKENIZERS[pre_name]
        model = _bpe(vocab, list(merges), byte_fallback=False, ignore_merges=ignore_merges, unk=None)
        decoder = dict(_BYTE_LEVEL_NO_REGEX)
        tj = _tokenizer_json(added, normalizer, pre_tokenizer, model, decoder, config, byte_level=True)
    elif kind == "llama":
        if "tokenizer.ggml.precompiled_charsmap" in fields:
            raise TokenizerError(f"{where}: a SentencePiece tokenizer with a precompiled normalization map is "
                                 f"not supported")
        if not merges:
            scores = fields.get("tokenizer.ggml.scores")
            if not isinstance(scores, list) or len(scores) != len(tokens):
                raise TokenizerError(f"{where}: a SentencePiece (llama) tokenizer needs tokenizer.ggml.scores or merges")
            merges = _merges_from_scores(tokens, types, scores)
        prefix = bool(fields.get("tokenizer.ggml.add_space_prefix", True))
        replace = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARK}
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE_MARK}, replace]} \
            if prefix else replace
        # As transformers' conversion of a SentencePiece model: no unk_token in the BPE model, bytes
        # fall back to <0xXX> tokens instead (tokenizer_config.json still names the unk token).
        model = _bpe(vocab, list(merges), byte_fallback=True, ignore_merges=False, unk=None)
        decoder = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE_MARK}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            *([{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if prefix else [])]}
        tj = _tokenizer_json(added, normalizer, None, model, decoder, config, byte_level=False)
        config["legacy"] = True
    else:
        raise TokenizerError(f"{where}: tokenizer model {kind!r} (tokenizer.ggml.model) is not supported "
                             f"(gpt2 and llama are)")
    return tj, config


def _bpe(vocab: dict[str, int], merges: list[str], *, byte_fallback: bool, ignore_merges: bool,
         unk: str | None) -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": byte_fallback, "byte_fallback": byte_fallback,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges}


def _tokenizer_json(added: list[dict], normalizer, pre_tokenizer, model: dict, decoder: dict, config: dict,
                    *, byte_level: bool) -> dict:
    id_of = {**model["vocab"], **{a["content"]: a["id"] for a in added}}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer,
            "post_processor": _post_processor(config, id_of, byte_level), "decoder": decoder, "model": model}


def _post_processor(config: dict, id_of: dict[str, int], byte_level: bool) -> dict | None:
    """BOS / EOS around a sequence, as the GGUF's add_bos_token / add_eos_token say."""
    before = [config["bos_token"]] if config["add_bos_token"] and "bos_token" in config else []
    after = [config["eos_token"]] if config["add_eos_token"] and "eos_token" in config else []
    if not before and not after:
        return dict(_BYTE_LEVEL_NO_REGEX) if byte_level else None

    def template(sequence: str, type_id: int) -> list[dict]:
        return [*({"SpecialToken": {"id": t, "type_id": type_id}} for t in before),
                {"Sequence": {"id": sequence, "type_id": type_id}},
                *({"SpecialToken": {"id": t, "type_id": type_id}} for t in after)]

    return {"type": "TemplateProcessing", "single": template("A", 0), "pair": template("A", 0) + template("B", 1),
            "special_tokens": {t: {"id": t, "ids": [id_of[t]], "tokens": [t]} for t in before + after}}


def _merges_from_scores(tokens: list[str], types: list[int], scores: list[float]) -> list[str]:
    """The merges of a SentencePiece BPE vocabulary, as transformers derives them from a
    SentencePiece model: every split of a token into two tokens, ranked by the merged token's
    score (best first), then its id, then the length of the left piece."""
    ids = {t: i for i, t in enumerate(tokens) if types[i] != TOKEN_UNUSED}
    found = [(-scores[i], i, k, merged[:k], merged[k:]) for merged, i in ids.items() for k in range(1, len(merged))
             if merged[:k] in ids and merged[k:] in ids]
    found.sort(key=lambda m: m[:3])
    return [f"{left} {right}" for *_, left, right in found]
