"""Hugging Face tokenizer files -> the tokenizer keys of formats/SPEC.md §5.

A tokenizer.json is kept as data: its vocabulary and merges go into the GGUF-standard keys, and
its pipeline (normalizer, pre-tokenizer, BPE options, added tokens, decoder) into
`sqllm.tokenizer.pipeline`, which the C++ tokenizer interprets component by component with the
semantics of Hugging Face `tokenizers` (cpp/src/tokenizer_pipeline.cpp). Every tokenizer.json
source goes through `metadata_from_tokenizer_json`, which checks the result by building the
runtime's tokenizer from it, so that a component the runtime does not implement is an error
here, at convert time, naming the component.

A folder with only a SentencePiece `tokenizer.model` gives the "llama" keys without a pipeline
(BPE by scores, `<0xXX>` byte fallback), which the runtime reads as the legacy Llama pipeline.

Anything unsupported raises TokenizerError, which is both a ConversionError and a ValueError.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path

from sqllm.formats import constants as C
from sqllm.errors import ConversionError

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")

# The Split regexes of the pipelines that have a llama.cpp pre-tokenizer name, as tokenizer.json
# spells them; a file gets the name in tokenizer.ggml.pre for GGUF tools (the runtime reads the
# pipeline).
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_BY_REGEX = {GPT2_REGEX: "gpt2", LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2"}
# Post-processors that put no tokens around a sequence.
NEUTRAL_POST_PROCESSORS = {"ByteLevel"}


class TokenizerError(ConversionError, ValueError):
    """A tokenizer file is unreadable or uses something the runtime does not implement."""


def tokenizer_metadata(model_dir: Path, vocab_size: int | None = None) -> dict[str, object]:
    """The tokenizer keys for a Hugging Face model folder, as plain Python values.

    Reads tokenizer.json (or, without one, a SentencePiece tokenizer.model) plus
    tokenizer_config.json, generation_config.json and config.json for the special tokens.
    With `vocab_size`, the token list is padded with unused `[PADn]` tokens to that many rows
    of the embedding matrix (and a tokenizer with more tokens than that is an error).
    """
    model_dir = Path(model_dir)
    tokenizer_json = model_dir / "tokenizer.json"
    sentencepiece_model = model_dir / "tokenizer.model"
    tokenizer_config = _read_json(model_dir / "tokenizer_config.json")
    configs = [_read_json(model_dir / "generation_config.json"), _read_json(model_dir / "config.json")]
    if tokenizer_json.is_file():
        meta = metadata_from_tokenizer_json(_read_json(tokenizer_json), tokenizer_config, vocab_size=vocab_size,
                                            configs=configs, source=str(tokenizer_json))
        meta[C.KEY_HF_TOKENIZER_JSON] = tokenizer_json.read_text(encoding="utf-8")
    elif sentencepiece_model.is_file():
        meta = _from_sentencepiece(sentencepiece_model)
        _pad_checked(meta, vocab_size, str(model_dir))
        _add_special_ids(meta, str(model_dir), tokenizer_config, configs, {})
    else:
        raise TokenizerError(f"{model_dir}: no tokenizer.json or tokenizer.model")
    template = _chat_template(model_dir, tokenizer_config)
    if template is not None:
        meta[C.KEY_CHAT_TEMPLATE] = template
    return meta


def metadata_from_tokenizer_json(tokenizer_json: dict, tokenizer_config: dict | None = None, *,
                                 vocab_size: int | None = None, configs: Sequence[dict] = (),
                                 scores: Sequence[float] | None = None,
                                 source: str = "tokenizer.json") -> dict[str, object]:
    """The tokenizer keys (formats/SPEC.md §5) for a parsed tokenizer.json: the one entry point
    for every source of a tokenizer.

    `tokenizer_json` is the object Hugging Face `tokenizers` saves (`model` of type BPE with
    `vocab` and `merges` in either spelling, `added_tokens`, `normalizer`, `pre_tokenizer`,
    `post_processor`, `decoder`); a dict of that shape built from another source (a GGUF's
    `tokenizer.ggml.*` keys, say) goes through here too. `tokenizer_config` is the parsed
    tokenizer_config.json, if any: its `bos_token` / `eos_token` / `unk_token` / `pad_token`,
    `add_bos_token` / `add_eos_token` and `chat_template` win over what tokenizer.json implies.
    `configs` are further dicts with `*_token_id` fields (generation_config.json, config.json),
    consulted in order when neither names a role's token. `scores`, one per token id, are
    SentencePiece scores for a BPE given without merges (a GGUF's `llama` vocabulary): the merge
    ranks then come from them (formats/SPEC.md §5). `vocab_size` pads the token list with unused
    `[PADn]` tokens to the embedding's rows. `source` names the input in error messages.

    Raises TokenizerError (one line naming `source` and the component) when the input is
    malformed or uses something the runtime does not implement: the result is checked by
    building the runtime's tokenizer from it.
    """
    tokenizer_config = tokenizer_config or {}
    try:
        meta, named_specials = _from_tokenizer_json(tokenizer_json, source)
    except TokenizerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TokenizerError(f"{source}: malformed: {e!r}") from e
    if scores is not None:
        if len(scores) != len(meta[C.KEY_TOKENIZER_TOKENS]):
            raise TokenizerError(f"{source}: {len(scores)} scores for {len(meta[C.KEY_TOKENIZER_TOKENS])} tokens")
        meta[C.KEY_TOKENIZER_SCORES] = [float(x) for x in scores]
    _pad_checked(meta, vocab_size, source)
    _add_special_ids(meta, source, tokenizer_config, list(configs), named_specials)
    template = _chat_template_of(tokenizer_config)
    if template is not None:
        meta[C.KEY_CHAT_TEMPLATE] = template
    _check_runtime_builds(meta, source)
    return meta


def _check_runtime_builds(meta: dict[str, object], source: str) -> None:
    from sqllm._sqllm import Tokenizer

    try:
        Tokenizer(meta)
    except ValueError as e:
        raise TokenizerError(f"{source}: {str(e).removeprefix('tokenizer metadata: ')}") from None


def _pad_checked(meta: dict[str, object], vocab_size: int | None, source: str) -> None:
    tokens: list[str] = meta[C.KEY_TOKENIZER_TOKENS]
    if vocab_size is None:
        return
    if len(tokens) > vocab_size:
        raise TokenizerError(f"{source}: the tokenizer has {len(tokens)} tokens, more than the model's "
                             f"vocab_size {vocab_size}")
    _pad(meta, vocab_size)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read: {e}") from e
    if not isinstance(value, dict):
        raise TokenizerError(f"{path}: not a JSON object")
    return value


# ---- tokenizer.json -------------------------------------------------------------------------


def _from_tokenizer_json(tj: dict, source: str) -> tuple[dict[str, object], dict[str, str]]:
    """The keys that tokenizer.json alone decides, and the special tokens it names: {"bos": content,
    "eos": content} where its post-processor adds them, "unk" where its model has one."""
    if not isinstance(tj, dict):
        raise TokenizerError(f"{source}: not a JSON object")
    model = tj.get("model") or {}
    if model.get("type", "BPE" if "merges" in model else None) != "BPE":
        raise TokenizerError(f"{source}: tokenizer model {model.get('type')!r} is not supported (only BPE is)")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise TokenizerError(f"{source}: BPE with a continuing_subword_prefix or end_of_word_suffix is not supported")
    if model.get("dropout"):
        raise TokenizerError(f"{source}: BPE dropout is not supported")

    vocab = model.get("vocab") or {}
    added = tj.get("added_tokens") or []
    ids = [*vocab.values(), *(a["id"] for a in added)]
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 31 for i in ids):
        raise TokenizerError(f"{source}: token ids must be integers from 0 to 2^31-1")
    size = 1 + max(ids, default=-1)
    tokens: list[str | None] = [None] * size
    for text, i in vocab.items():
        tokens[i] = text
    in_model_vocab = {i for i in vocab.values()}
    for a in added:
        if not isinstance(a.get("content"), str) or not a["content"]:
            raise TokenizerError(f"{source}: added token {a['id']} has no content")
        if vocab.get(a["content"], a["id"]) != a["id"]:
            raise TokenizerError(f"{source}: added token {a['content']!r} has id {a['id']}, the vocabulary "
                                 f"{vocab[a['content']]}")
        if tokens[a["id"]] is not None and tokens[a["id"]] != a["content"]:
            raise TokenizerError(f"{source}: added token {a['content']!r} reuses id {a['id']} of {tokens[a['id']]!r}")
        tokens[a["id"]] = a["content"]

    byte_fallback = bool(model.get("byte_fallback"))
    types = [TOKEN_NORMAL] * size
    for i, text in enumerate(tokens):
        if text is None:
            tokens[i], types[i] = f"[PAD{i}]", TOKEN_UNUSED
        elif byte_fallback and BYTE_TOKEN.fullmatch(text):
            types[i] = TOKEN_BYTE
    for a in added:
        types[a["id"]] = TOKEN_CONTROL if a.get("special") else TOKEN_USER_DEFINED

    pipeline = {
        "normalizer": tj.get("normalizer"),
        "pre_tokenizer": tj.get("pre_tokenizer"),
        "model": {"type": "BPE", "byte_fallback": byte_fallback, "ignore_merges": bool(model.get("ignore_merges")),
                  "fuse_unk": bool(model.get("fuse_unk")), "unk_token": model.get("unk_token")},
        "added_tokens": [{"id": a["id"], "content": a["content"], "special": bool(a.get("special")),
                          "lstrip": bool(a.get("lstrip")), "rstrip": bool(a.get("rstrip")),
                          "single_word": bool(a.get("single_word")),
                          "normalized": bool(a.get("normalized", not a.get("special"))),
                          "in_model_vocab": a["id"] in in_model_vocab} for a in added],
        "decoder": tj.get("decoder"),
    }
    merges = [_merge_string(source, m) for m in model.get("merges") or []]
    byte_level = _mentions_type(tj.get("pre_tokenizer"), "ByteLevel") or _mentions_type(tj.get("decoder"), "ByteLevel")
    meta: dict[str, object] = {C.KEY_TOKENIZER_MODEL: "gpt2" if byte_level else "llama"}
    pre = _pre_name(tj)
    if pre is not None:
        meta[C.KEY_TOKENIZER_PRE] = pre
    meta[C.KEY_TOKENIZER_TOKENS] = tokens
    meta[C.KEY_TOKENIZER_TOKEN_TYPE] = types
    meta[C.KEY_TOKENIZER_MERGES] = merges
    meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] = _adds_space_prefix(tj.get("normalizer"), tj.get("pre_tokenizer"))
    meta[C.KEY_TOKENIZER_PIPELINE] = json.dumps(pipeline, ensure_ascii=False, separators=(",", ":"))
    specials = _post_processor_specials(source, tj.get("post_processor"))
    if model.get("unk_token") is not None:
        specials["unk"] = model["unk_token"]
    return meta, specials


def _mentions_type(component: object, type_name: str) -> bool:
    """Whether a normalizer / pre-tokenizer / decoder, or any part of a Sequence of them, is of type_name."""
    if isinstance(component, dict):
        if component.get("type") == type_name:
            return True
        return any(_mentions_type(c, type_name) for key in ("pretokenizers", "normalizers", "decoders")
                   for c in component.get(key) or [])
    return False


def _pre_name(tj: dict) -> str | None:
    """llama.cpp's name for the pipelines that have one (informative: the runtime reads the pipeline)."""
    pre, normalizer = tj.get("pre_tokenizer"), tj.get("normalizer")
    name = None
    if isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True) \
            and not pre.get("add_prefix_space", True):
        name = "gpt2"
    elif isinstance(pre, dict) and pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers") or []
        if (len(parts) == 2 and isinstance(parts[0], dict) and parts[0].get("type") == "Split"
                and isinstance(parts[1], dict) and parts[1].get("type") == "ByteLevel"):
            name = PRE_BY_REGEX.get((parts[0].get("pattern") or {}).get("Regex"))
    expected_normalizer = {"NFC"} if name == "qwen2" else {None}
    if name is not None and (normalizer or {}).get("type") not in expected_normalizer:
        name = None
    return name


def _adds_space_prefix(normalizer: object, pre_tokenizer: object) -> bool:
    """Whether text gets a leading "▁" (informative, for GGUF tools' add_space_prefix)."""
    if _mentions_type(normalizer, "Prepend"):
        return True

    def metaspace_prepends(c: object) -> bool:
        if not isinstance(c, dict):
            return False
        if c.get("type") == "Metaspace":
            return c.get("prepend_scheme", "always") != "never" and c.get("add_prefix_space", True)
        return any(metaspace_prepends(p) for p in c.get("pretokenizers") or [])

    return metaspace_prepends(pre_tokenizer)


def _merge_string(source: str, merge: object) -> str:
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    if " " in left or " " in right:
        raise TokenizerError(f"{source}: merge {merge!r} has a token with a space, which 'left right' cannot hold")
    return f"{left} {right}"


def _post_processor_specials(source: str, post: object) -> dict[str, str]:
    """The tokens a TemplateProcessing post-processor puts around a single sequence: at most
    one special token before `$A` (bos) and one after (eos)."""
    if post is None:
        return {}
    kind = post.get("type") if isinstance(post, dict) else None
    if kind == "Sequence":
        found: dict[str, str] = {}
        for p in post.get("processors") or []:
            found.update(_post_processor_specials(source, p))
        return found
    if kind in NEUTRAL_POST_PROCESSORS:
        return {}
    if kind != "TemplateProcessing":
        raise TokenizerError(f"{source}: post-processor {kind!r} is not supported (TemplateProcessing, ByteLevel "
                             f"and Sequence are)")
    single = post.get("single") or []
    shape = ["SpecialToken" if "SpecialToken" in item else "Sequence" if "Sequence" in item else "?" for item in single]
    if shape not in (["Sequence"], ["SpecialToken", "Sequence"], ["Sequence", "SpecialToken"],
                     ["SpecialToken", "Sequence", "SpecialToken"]):
        raise TokenizerError(f"{source}: post-processor template {json.dumps(single)[:200]} is not supported "
                             f"(at most one special token before and one after the sequence)")

    def content(item: dict) -> str:
        name = item["SpecialToken"]["id"]
        tokens = ((post.get("special_tokens") or {}).get(name) or {}).get("tokens") or [name]
        if len(tokens) != 1:
            raise TokenizerError(f"{source}: post-processor special token {name!r} stands for {len(tokens)} tokens")
        return tokens[0]

    found = {}
    if shape[0] == "SpecialToken":
        found["bos"] = content(single[0])
    if shape[-1] == "SpecialToken":
        found["eos"] = content(single[-1])
    return found


# ---- tokenizer.model (SentencePiece) ----------------------------------------------------------

# Field numbers of sentencepiece_model.proto that matter here.
SP_MODEL_PIECES, SP_MODEL_TRAINER, SP_MODEL_NORMALIZER = 1, 2, 3
SP_PIECE_TEXT, SP_PIECE_SCORE, SP_PIECE_TYPE = 1, 2, 3
SP_TRAINER_MODEL_TYPE, SP_TRAINER_UNK, SP_TRAINER_BOS, SP_TRAINER_EOS, SP_TRAINER_PAD = 3, 40, 41, 42, 43
SP_NORMALIZER_NAME, SP_NORMALIZER_DUMMY_PREFIX, SP_NORMALIZER_REMOVE_SPACES = 1, 3, 4
SP_MODEL_TYPE_BPE = 2


def _from_sentencepiece(path: Path) -> dict[str, object]:
    """Keys from a SentencePiece model file. Its protobuf is read directly (a few fields of
    sentencepiece_model.proto) so that neither sentencepiece nor protobuf is needed."""
    try:
        data = path.read_bytes()
        fields = _protobuf_fields(data)
        pieces = [dict(_protobuf_fields(v)) for f, v in fields if f == SP_MODEL_PIECES]
        trainer = {f: v for m_f, m in fields if m_f == SP_MODEL_TRAINER for f, v in _protobuf_fields(m)}
        normalizer = {f: v for m_f, m in fields if m_f == SP_MODEL_NORMALIZER for f, v in _protobuf_fields(m)}
        tokens = [p[SP_PIECE_TEXT].decode("utf-8") for p in pieces]
    except (OSError, ValueError, KeyError, UnicodeDecodeError, struct.error) as e:
        raise TokenizerError(f"{path}: not a readable SentencePiece model: {e}") from e
    if not tokens:
        raise TokenizerError(f"{path}: the SentencePiece model has no pieces")
    model_type = trainer.get(SP_TRAINER_MODEL_TYPE, 1)
    if model_type != SP_MODEL_TYPE_BPE:
        raise TokenizerError(f"{path}: SentencePiece model type {model_type} is not supported (only BPE, type 2)")
    normalizer_name = normalizer.get(SP_NORMALIZER_NAME, b"").decode("utf-8", "replace")
    if normalizer_name not in ("", "identity"):
        raise TokenizerError(f"{path}: SentencePiece normalization {normalizer_name!r} is not supported (identity is)")
    if normalizer.get(SP_NORMALIZER_REMOVE_SPACES, 1):
        raise TokenizerError(f"{path}: SentencePiece remove_extra_whitespaces is not supported")

    meta: dict[str, object] = {
        C.KEY_TOKENIZER_MODEL: "llama",
        C.KEY_TOKENIZER_TOKENS: tokens,
        C.KEY_TOKENIZER_SCORES: [float(struct.unpack("<f", p.get(SP_PIECE_SCORE, b"\0\0\0\0"))[0]) for p in pieces],
        C.KEY_TOKENIZER_TOKEN_TYPE: [int(p.get(SP_PIECE_TYPE, TOKEN_NORMAL)) for p in pieces],
        C.KEY_TOKENIZER_MERGES: [],
        C.KEY_TOKENIZER_ADD_SPACE_PREFIX: bool(normalizer.get(SP_NORMALIZER_DUMMY_PREFIX, 1)),
        C.KEY_TOKENIZER_ADD_BOS: True,
    }
    for key, field, default in ((C.KEY_TOKENIZER_UNK, SP_TRAINER_UNK, 0), (C.KEY_TOKENIZER_BOS, SP_TRAINER_BOS, 1),
                                (C.KEY_TOKENIZER_EOS, SP_TRAINER_EOS, 2), (C.KEY_TOKENIZER_PAD, SP_TRAINER_PAD, -1)):
        value = _as_int32(trainer.get(field, default))
        if 0 <= value < len(tokens):
            meta[key] = value
    return meta


def _protobuf_fields(data: bytes) -> list[tuple[int, object]]:
    """(field number, value) of one protobuf message: varints as int, the rest as bytes."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        elif wire_type == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire_type} at byte {pos}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        out.append((field, value))
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad protobuf varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _as_int32(varint: int) -> int:
    """A negative int32 is sent as a 64-bit two's complement varint."""
    return varint - (1 << 64) if varint >= 1 << 63 else varint


# ---- special tokens, padding, chat template -----------------------------------------------------


def _pad(meta: dict[str, object], vocab_size: int) -> None:
    tokens, types = meta[C.KEY_TOKENIZER_TOKENS], meta[C.KEY_TOKENIZER_TOKEN_TYPE]
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(TOKEN_UNUSED)
    if C.KEY_TOKENIZER_SCORES in meta:
        scores = meta[C.KEY_TOKENIZER_SCORES]
        scores.extend([0.0] * (vocab_size - len(scores)))


def _add_special_ids(meta: dict[str, object], source: str, tokenizer_config: dict, configs: list[dict],
                     named_specials: dict[str, str]) -> None:
    """bos/eos/unk/pad ids and add_bos/add_eos. A token named in tokenizer_config.json wins, then
    one tokenizer.json names, then the ids of generation_config.json and config.json."""
    tokens: list[str] = meta[C.KEY_TOKENIZER_TOKENS]
    types: list[int] = meta[C.KEY_TOKENIZER_TOKEN_TYPE]
    id_of: dict[str, int] = {}
    for i, text in enumerate(tokens):
        id_of.setdefault(text, i)

    def lookup(name: str, where: str) -> int:
        if name not in id_of:
            raise TokenizerError(f"{source}: {where} names the token {name!r}, which is not in the vocabulary")
        return id_of[name]

    def token_id(role: str) -> int | None:
        named = tokenizer_config.get(f"{role}_token")
        if isinstance(named, dict):
            named = named.get("content")
        if isinstance(named, str):
            return lookup(named, "tokenizer_config.json")
        if role in named_specials:
            return lookup(named_specials[role], "tokenizer.json")
        for cfg in configs:
            value = cfg.get(f"{role}_token_id")
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, int):
                if not 0 <= value < len(tokens):
                    raise TokenizerError(f"{source}: {role}_token_id {value} is outside the {len(tokens)} tokens")
                return value
        return None

    for role, key in (("bos", C.KEY_TOKENIZER_BOS), ("eos", C.KEY_TOKENIZER_EOS), ("unk", C.KEY_TOKENIZER_UNK),
                      ("pad", C.KEY_TOKENIZER_PAD)):
        if key in meta:  # a SentencePiece model names its own
            continue
        found = token_id(role)
        if found is not None:
            meta[key] = found
    if C.KEY_TOKENIZER_UNK in meta and types[meta[C.KEY_TOKENIZER_UNK]] in (TOKEN_NORMAL, TOKEN_CONTROL):
        types[meta[C.KEY_TOKENIZER_UNK]] = TOKEN_UNKNOWN

    for flag, key, role in (("add_bos_token", C.KEY_TOKENIZER_ADD_BOS, "bos"),
                            ("add_eos_token", C.KEY_TOKENIZER_ADD_EOS, "eos")):
        if isinstance(tokenizer_config.get(flag), bool):
            meta[key] = tokenizer_config[flag]
        elif key not in meta:
            meta[key] = role in named_specials


def _chat_template(model_dir: Path, tokenizer_config: dict) -> str | None:
    """chat_template.jinja (where newer transformers save it), else tokenizer_config.json's."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    return _chat_template_of(tokenizer_config)


def _chat_template_of(tokenizer_config: dict) -> str | None:
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default", next(iter(named.values()), None))
    return template if isinstance(template, str) else None
