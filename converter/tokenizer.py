"""Hugging Face tokenizer files -> the GGUF-standard tokenizer keys of formats/SPEC.md §5.

Two kinds of tokenizer are supported, the two the C++ runtime implements (cpp/src/tokenizer.cpp):

- "llama": SentencePiece-style BPE over "▁"-for-space text with `<0xXX>` byte fallback, from a
  `tokenizer.json` (merges kept) or from a bare SentencePiece `tokenizer.model` (scores only);
- "gpt2": byte-level BPE with merges, after one of the pre-tokenizer regexes the runtime knows
  ("gpt2", "llama-bpe", "qwen2"; "qwen2" implies an NFC normalizer).

Anything else raises TokenizerError, which is both a ConversionError and a ValueError.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path

from sqllm.formats import constants as C
from sqllm.formats.errors import ConversionError

log = logging.getLogger("sqllm.convert")

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

SPACE_MARK = "\u2581"  # "▁", SentencePiece's visible space
BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")

# The Split regexes of the pre-tokenizers the runtime implements by hand, as tokenizer.json spells them.
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_BY_REGEX = {GPT2_REGEX: "gpt2", LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2"}
# The normalizer each pre-tokenizer comes with; the runtime applies exactly this one.
NORMALIZER_BY_PRE = {"gpt2": None, "llama-bpe": None, "qwen2": "NFC"}


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
    if tokenizer_json.is_file():
        try:
            meta, named_specials = _from_tokenizer_json(tokenizer_json)
        except TokenizerError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise TokenizerError(f"{tokenizer_json}: malformed: {e!r}") from e
    elif sentencepiece_model.is_file():
        meta, named_specials = _from_sentencepiece(sentencepiece_model), {}
    else:
        raise TokenizerError(f"{model_dir}: no tokenizer.json or tokenizer.model")

    tokens: list[str] = meta[C.KEY_TOKENIZER_TOKENS]
    if vocab_size is not None:
        if len(tokens) > vocab_size:
            raise TokenizerError(f"{model_dir}: the tokenizer has {len(tokens)} tokens, more than the model's "
                                 f"vocab_size {vocab_size}")
        _pad(meta, vocab_size)
    _add_special_ids(meta, model_dir, tokenizer_config, named_specials)
    template = _chat_template(model_dir, tokenizer_config)
    if template is not None:
        meta[C.KEY_CHAT_TEMPLATE] = template
    if tokenizer_json.is_file():
        meta[C.KEY_HF_TOKENIZER_JSON] = tokenizer_json.read_text(encoding="utf-8")
    return meta


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


def _from_tokenizer_json(path: Path) -> tuple[dict[str, object], dict[str, str]]:
    """The keys that tokenizer.json alone decides, and the special tokens it names: {"bos": content,
    "eos": content} where its post-processor adds them, "unk" where its model has one."""
    tj = _read_json(path)
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise TokenizerError(f"{path}: tokenizer model {model.get('type')!r} is not supported (only BPE is)")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise TokenizerError(f"{path}: BPE with a continuing_subword_prefix or end_of_word_suffix is not supported")
    if model.get("dropout"):
        raise TokenizerError(f"{path}: BPE dropout is not supported")

    vocab = model.get("vocab") or {}
    added = tj.get("added_tokens") or []
    ids = [*vocab.values(), *(a["id"] for a in added)]
    if not all(isinstance(i, int) and 0 <= i < 1 << 31 for i in ids):
        raise TokenizerError(f"{path}: token ids must be integers from 0 to 2^31-1")
    size = 1 + max(ids, default=-1)
    tokens: list[str | None] = [None] * size
    for text, i in vocab.items():
        tokens[i] = text
    for a in added:
        if tokens[a["id"]] is not None and tokens[a["id"]] != a["content"]:
            raise TokenizerError(f"{path}: added token {a['content']!r} reuses id {a['id']} of {tokens[a['id']]!r}")
        tokens[a["id"]] = a["content"]
        if a.get("lstrip") or a.get("rstrip") or a.get("single_word"):
            log.warning("%s: added token %r has lstrip/rstrip/single_word, which the runtime ignores; "
                        "text next to it may tokenize differently", path, a["content"])

    pre_tokenizer, normalizer = tj.get("pre_tokenizer"), tj.get("normalizer")
    byte_level = _mentions_type(pre_tokenizer, "ByteLevel") or _mentions_type(tj.get("decoder"), "ByteLevel")
    if byte_level:
        kind, pre, add_space_prefix = "gpt2", _byte_level_pre(path, pre_tokenizer, normalizer, model), False
    elif model.get("byte_fallback"):
        kind, pre, add_space_prefix = "llama", None, _sentencepiece_space_prefix(path, pre_tokenizer, normalizer)
    else:
        raise TokenizerError(f"{path}: a BPE tokenizer that is neither byte-level nor SentencePiece-style with "
                             f"byte_fallback is not supported")

    types = [TOKEN_NORMAL] * size
    for i, text in enumerate(tokens):
        if text is None:
            tokens[i], types[i] = f"[PAD{i}]", TOKEN_UNUSED
        elif kind == "llama" and BYTE_TOKEN.fullmatch(text):
            types[i] = TOKEN_BYTE
    for a in added:
        types[a["id"]] = TOKEN_CONTROL if a.get("special") else TOKEN_USER_DEFINED

    merges = [_merge_string(path, m) for m in model.get("merges") or []]
    meta: dict[str, object] = {C.KEY_TOKENIZER_MODEL: kind}
    if pre is not None:
        meta[C.KEY_TOKENIZER_PRE] = pre
    meta[C.KEY_TOKENIZER_TOKENS] = tokens
    meta[C.KEY_TOKENIZER_TOKEN_TYPE] = types
    meta[C.KEY_TOKENIZER_MERGES] = merges
    meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] = add_space_prefix
    specials = _post_processor_specials(tj.get("post_processor"))
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


def _byte_level_pre(path: Path, pre_tokenizer: object, normalizer: object, model: dict) -> str:
    """The runtime's name for a byte-level pre-tokenizer, checking that nothing else differs."""
    if model.get("byte_fallback"):
        raise TokenizerError(f"{path}: byte-level BPE with byte_fallback is not supported")
    pre = None
    if isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "ByteLevel":
        if pre_tokenizer.get("use_regex", True) and not pre_tokenizer.get("add_prefix_space", True):
            pre = "gpt2"
    elif isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "Sequence":
        parts = pre_tokenizer.get("pretokenizers") or []
        if (len(parts) == 2 and parts[0].get("type") == "Split" and parts[0].get("behavior") == "Isolated"
                and not parts[0].get("invert") and parts[1].get("type") == "ByteLevel"
                and not parts[1].get("use_regex", True) and not parts[1].get("add_prefix_space", True)):
            pre = PRE_BY_REGEX.get((parts[0].get("pattern") or {}).get("Regex"))
    if pre is None:
        raise TokenizerError(f"{path}: byte-level pre-tokenizer {json.dumps(pre_tokenizer)[:300]} is not one the "
                             f"runtime implements (the GPT-2, Llama-3 and Qwen2 splits)")
    normalizer_type = normalizer.get("type") if isinstance(normalizer, dict) else None
    if normalizer_type != NORMALIZER_BY_PRE[pre]:
        raise TokenizerError(f"{path}: normalizer {normalizer_type} with the {pre} pre-tokenizer is not supported "
                             f"(the runtime applies {NORMALIZER_BY_PRE[pre]})")
    # Only Llama-3 tokenizers emit a whole pre-token that is in the vocabulary without merging it;
    # the runtime ties that rule to "llama-bpe".
    if bool(model.get("ignore_merges")) != (pre == "llama-bpe"):
        raise TokenizerError(f"{path}: ignore_merges={bool(model.get('ignore_merges'))} with the {pre} "
                             f"pre-tokenizer is not supported")
    return pre


def _sentencepiece_space_prefix(path: Path, pre_tokenizer: object, normalizer: object) -> bool:
    """add_space_prefix of a SentencePiece-style tokenizer.json, checking that spaces become "▁"."""
    def is_replace_space(n: object) -> bool:
        return (isinstance(n, dict) and n.get("type") == "Replace" and n.get("pattern") == {"String": " "}
                and n.get("content") == SPACE_MARK)

    def is_prepend_mark(n: object) -> bool:
        return isinstance(n, dict) and n.get("type") == "Prepend" and n.get("prepend") == SPACE_MARK

    steps = normalizer.get("normalizers") if isinstance(normalizer, dict) and normalizer.get("type") == "Sequence" \
        else [normalizer] if normalizer is not None else []
    if pre_tokenizer is None:
        if len(steps) == 2 and is_prepend_mark(steps[0]) and is_replace_space(steps[1]):
            return True
        if len(steps) == 1 and is_replace_space(steps[0]):
            return False
    elif (isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "Metaspace" and not steps
          and pre_tokenizer.get("replacement") == SPACE_MARK and not pre_tokenizer.get("split", True)):
        scheme = pre_tokenizer.get("prepend_scheme", "always")
        if scheme != "never":
            log.warning("%s: Metaspace prepend_scheme=%s is run as SentencePiece's dummy prefix: text that starts "
                        "with a space, or follows a special token, may tokenize differently", path, scheme)
        return scheme != "never"
    raise TokenizerError(f"{path}: normalizer {json.dumps(normalizer)[:200]} with pre-tokenizer "
                         f"{json.dumps(pre_tokenizer)[:200]} is not supported for a SentencePiece-style BPE "
                         f"(supported: Prepend '▁' + Replace ' '->'▁', or Metaspace without split)")


def _merge_string(path: Path, merge: object) -> str:
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    if " " in left or " " in right:
        raise TokenizerError(f"{path}: merge {merge!r} has a token with a space, which 'left right' cannot hold")
    return f"{left} {right}"


def _post_processor_specials(post: object) -> dict[str, str]:
    """The tokens a TemplateProcessing post-processor puts around a single sequence."""
    if not isinstance(post, dict):
        return {}
    if post.get("type") == "Sequence":
        found: dict[str, str] = {}
        for p in post.get("processors") or []:
            found.update(_post_processor_specials(p))
        return found
    if post.get("type") != "TemplateProcessing":
        return {}
    single = post.get("single") or []
    found = {}
    if single and "SpecialToken" in single[0]:
        found["bos"] = single[0]["SpecialToken"]["id"]
    if len(single) > 1 and "SpecialToken" in single[-1]:
        found["eos"] = single[-1]["SpecialToken"]["id"]
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


def _add_special_ids(meta: dict[str, object], model_dir: Path, tokenizer_config: dict,
                     named_specials: dict[str, str]) -> None:
    """bos/eos/unk/pad ids and add_bos/add_eos. A token named in tokenizer_config.json wins, then
    one tokenizer.json names, then the ids of generation_config.json and config.json."""
    tokens: list[str] = meta[C.KEY_TOKENIZER_TOKENS]
    types: list[int] = meta[C.KEY_TOKENIZER_TOKEN_TYPE]
    id_of: dict[str, int] = {}
    for i, text in enumerate(tokens):
        id_of.setdefault(text, i)
    configs = [_read_json(model_dir / "generation_config.json"), _read_json(model_dir / "config.json")]

    def lookup(name: str, where: str) -> int:
        if name not in id_of:
            raise TokenizerError(f"{model_dir}: {where} names the token {name!r}, which is not in the vocabulary")
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
                    raise TokenizerError(f"{model_dir}: {role}_token_id {value} is outside the {len(tokens)} tokens")
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
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default", next(iter(named.values()), None))
    return template if isinstance(template, str) else None
