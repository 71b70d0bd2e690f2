"""Conformance of the C++ tokenizer with Hugging Face `tokenizers` over many pipelines.

Each pipeline is modelled on a real tokenizer.json (GPT-2, RoBERTa, Llama-3, Qwen2, DeepSeek-V3,
Tekken, Llama-2, Mistral, ...) and trained here with `tokenizers` on the evaluation texts
(vocabularies of 512 to 4096), once per session. For each: the same ids as `tokenizers` on the
three data files whole and line by line and on an adversarial corpus, with and without special
tokens parsed; the same text from decode; decode(encode(x)) == x wherever `tokenizers` round-trips.
"""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from conftest import DATA_FILES, data_text, random_texts

from sqllm._sqllm import Tokenizer
from sqllm.converter.tokenizer import LLAMA3_REGEX, QWEN2_REGEX, tokenizer_metadata
from sqllm.formats import constants as C

hf_tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[1]
SPACE_MARK = "\u2581"

ADVERSARIAL = [
    # emoji, modifiers, ZWJ sequences, flags, keycaps
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽👍🏿 🇺🇸🇯🇵🇩🇪 ❤️‍🔥 1️⃣ #️⃣ 🙂🙂🙂", "😀" * 30, "a😀b 😀 😀😀 c",
    # CJK, kana, Hangul, full and half width
    "日本語のテキスト、句読点。カタカナ ひらがな", "中文分词测试：北京欢迎你！（括号）", "한국어 텍스트 \u1100\u1161\u11a8 ᄀᄁ",
    "ＡＢＣ１２３ full width ｶﾀｶﾅ half", "龘靐齉 𠀀𠀁 𪚥",
    # combining marks, ligatures, case oddities, compatibility characters
    "e\u0301\u0302 a\u0300\u0316 o\u0308\u0304 Z\u0324\u0308a\u0334l\u0338g\u0336o\u0337", "\u0301\u0301 leading marks",
    "ﬁ ﬂ ﬃ ǅ ǆ Ǆ ẞ ß İstanbul ΣΑΣ ὈΔΥΣΣΕΎΣ Straße", "Å Å Ω Ω K K ſ ſt ﬅ", "㍱ ㎏ ℡ ™ ① ⑴ ⒜ ¼ x² H₂O",
    "\u0915\u094d\u0937 \u09c7\u09be \u0dd9\u0dcf \u1025\u102e ผู้ใหญ่ ພາສາລາວ", "\uf900\uf91f \u0344 \u0f73 \u0958",
    # right to left, bidi controls
    "مرحبا بالعالم 123 ٣٤٥", "שלום עולם! (עברית)", "\u202eRTL override\u202c \u200f\u200e \u2066x\u2069",
    "فارسی ۱۲۳ اردو", "ܫܠܡܐ ދިވެހި",
    # control characters and unusual whitespace
    "\x00\x01\x02\x03\x04\x05\x07\x08\x0b\x0c\x0e\x1b\x1c\x1f\x7f end", "nel\x85here \u2028ls \u2029ps",
    "tab\tsep\vvt\fff\rcr\r\nlf", "\u00a0nbsp\u2002en\u2003em\u2009thin\u200bzw\u3000ideo\u205fmm", "\ufeffbom \ufffd \ue000\uf8ff",
    # long digit and whitespace runs
    "1234567890" * 12, "3.14159265358979323846 1,000,000 -42 +7e-10 0x1F 1_000", "٣٤٥٦ ١٢ ۱۲۳ १२३ ௧௨ ๑๒ ½ ² ⅕ Ⅻ ⑩",
    " " * 100 + "x", " " * 20000 + "x", "ab" * 5000, "\n" * 40 + "y", " \t \n" * 25, "\u3000" * 12 + "z", "a" + " " * 33 + "b" + "\t" * 9 + "c",
    "word  \n\n  word\r\n\r\n\tword   ", "   leading", "trailing   ", " ", "\n", "",
    # special-token strings inside text, and near misses
    "<|endoftext|>", "a<|endoftext|>b <|endoftext|> c", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<s>Hello</s> <s> spaced </s>", "<unk><s></s>", "<<s>>", "<s<s>>", "<|im_start", "|im_end|>",
    "<|begin_of_text|>x<|end_of_text|>", "<｜begin▁of▁sentence｜>hi", "<tool_call>{}</tool_call>", "[MASK] [mask] [Mask]",
    "a <mask> b <mask>c d<mask> <sep>  e <sep>f", "foo food foo_bar (foo) foo, afoo foo", "Hello World hello world HELLO WORLD",
    "ab abc cab <|tool|>x", "NAME: NAME NAMES  NAME  ",
    # code, markup, contractions, mixed scripts
    "def f(x):\n    return x ** 2  # comment\n\n\nclass A:\n\tpass\n", "<html><body>&amp;&lt;</body></html>",
    "C:\\path\\to\\file.txt https://example.com/a?b=c&d=e#f", "It's don't I'M we'LL 'S 'ſ they've she'd YOU'RE x'Ve",
    "abc123def 4x4 COVID-19 2024-01-01T12:00:00Z v1.2.3", "HELLO World ÀÉÎÕÜ àéîõü", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈 𝐀𝐁𝐂",
    "Привет, мир! Ελληνικά ქართული Հայերեն", "mixedСкрипт混合テキスト123abc", "▁ ▁▁ x▁y ▁start",
]
# Bytes that are not UTF-8, which `tokenizers` cannot take at all.
INVALID_UTF8 = [b"\xff", b"abc\xff\xfedef", b"\xc3(", b"\xe6\x97", b"caf\xe9 ol\xe9", b"\xed\xa0\x80x",
                b"\xf4\x90\x80\x80", b"\xc0\xaf", b" \x80 \x80\x80 ", b"12\xff34 \xf5\xf6", b"<s>\xff</s>"]

RANDOM_POOL = list(
    "aZz09 '\t\n\r.,!?-_<>|/\\\"" "éÅß" "\u00a0\u3000\u2028\u0085\u001c\u0004"
    "\u0300\u0301\u0316\u0323\u0342\u0345\u05b0\u0327" "\u1100\u1161\u11a8\uac00\ud55c"
    "\u212a\u212b\u2126\u017f\u0958\u0dd9\u0dcf\u0344\uf900\u1e9b\u1fc1\ufb01"
    "日本٣１½ЖΩΣς😀🏽\u200d\ufe0f▁"
) + ["<s>", "</s>", "<|endoftext|>", "<|im_end|>", "<tool_call>", "<mask>", "foo", "'s", "'LL", "123", "\r\n", "  "]


# ---- pipelines ----------------------------------------------------------------------------------

def byte_level(add_prefix_space: bool = False, use_regex: bool = True) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def split(pattern: str, behavior: str = "Isolated", invert: bool = False, literal: bool = False) -> dict:
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
            "invert": invert}


def sequence(kind: str, *items: dict) -> dict:
    return {"type": "Sequence", kind: list(items)}


def metaspace(scheme: str, split_: bool) -> dict:
    return {"type": "Metaspace", "replacement": SPACE_MARK, "prepend_scheme": scheme, "split": split_}


def replace(pattern: str, content: str, regex: bool = False) -> dict:
    return {"type": "Replace", "pattern": {"Regex" if regex else "String": pattern}, "content": content}


BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
# Llama-2 / Mistral: "▁" back to spaces, byte tokens back to bytes, the dummy-prefix space dropped.
SENTENCEPIECE_DECODER = sequence("decoders", replace(SPACE_MARK, " "), {"type": "ByteFallback"}, {"type": "Fuse"},
                                 {"type": "Strip", "content": " ", "start": 1, "stop": 0})
DEEPSEEK_SPLITS = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
]
TEKKEN_REGEX = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
                r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
# Bytes the Llama checkpoint has no symbol for: a control byte, and bytes that never occur in UTF-8.
MISSING_BYTES = [0x04, 0xC0, *range(0xF5, 0x100)]


@dataclass
class Pipeline:
    """A tokenizer.json to train: its components, the BPE options, and edits after training."""
    vocab_size: int
    pre_tokenizer: dict | None
    normalizer: dict | None = None
    decoder: dict | None = None
    specials: list[str] = field(default_factory=list)
    byte_alphabet: bool = False          # start from all 256 byte-level symbols
    limit_alphabet: int | None = None    # keep rare characters out (byte fallback / unk)
    byte_fallback: bool = False          # add <0x00>..<0xFF> to the vocabulary
    unk: str | None = None
    fuse_unk: bool = False
    ignore_merges: bool = False
    template: tuple[str | None, str | None] = (None, None)   # special tokens before / after $A
    added: list[dict] = field(default_factory=list)           # added tokens beyond the specials
    missing_bytes: list[int] = field(default_factory=list)    # byte-level symbols to drop
    post_processor: dict | None = None
    spells_every_byte: bool = False      # any bytes come back from the pieces of their ids
    merges_as_strings: bool = False      # the older "left right" spelling of merges


def added(content: str, special: bool = False, **flags) -> dict:
    return {"content": content, "special": special, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, **flags}


PIPELINES: dict[str, Pipeline] = {
    "gpt2": Pipeline(1000, byte_level(), decoder=BYTE_LEVEL_DECODER, specials=["<|endoftext|>"], byte_alphabet=True,
                     spells_every_byte=True, merges_as_strings=True),
    "roberta-prefix-space": Pipeline(768, byte_level(add_prefix_space=True), decoder=BYTE_LEVEL_DECODER,
                                     specials=["<s>", "</s>", "<pad>"], byte_alphabet=True,
                                     post_processor={"type": "ByteLevel", "add_prefix_space": True,
                                                     "trim_offsets": True, "use_regex": True}),
    "llama3": Pipeline(2048, sequence("pretokenizers", split(LLAMA3_REGEX), byte_level(use_regex=False)),
                       decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, ignore_merges=True,
                       specials=["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)],
                       template=("<|begin_of_text|>", None), spells_every_byte=True),
    "llama3-bos-eos-512": Pipeline(512, sequence("pretokenizers", split(LLAMA3_REGEX), byte_level(use_regex=False)),
                                   decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, ignore_merges=True,
                                   specials=["<|begin_of_text|>", "<|end_of_text|>"],
                                   template=("<|begin_of_text|>", "<|end_of_text|>"), spells_every_byte=True),
    "qwen2": Pipeline(1500, sequence("pretokenizers", split(QWEN2_REGEX), byte_level(use_regex=False)),
                      normalizer={"type": "NFC"}, decoder=BYTE_LEVEL_DECODER, byte_alphabet=True,
                      specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                      added=[added("<tool_call>", normalized=False), added("</tool_call>", normalized=False)], spells_every_byte=True),
    "digits-bytelevel-missing-bytes": Pipeline(
        1200, sequence("pretokenizers", {"type": "Digits", "individual_digits": True}, byte_level()),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, specials=["<unk>", "<s>", "</s>"], template=("<s>", None),
        missing_bytes=MISSING_BYTES, spells_every_byte=False),
    "digits-contiguous-bytelevel-unk": Pipeline(
        900, sequence("pretokenizers", {"type": "Digits", "individual_digits": False}, byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, specials=["<unk>"], unk="<unk>", fuse_unk=True,
        missing_bytes=MISSING_BYTES, spells_every_byte=False),
    "deepseek-v3-chained-splits": Pipeline(
        3000, sequence("pretokenizers", *(split(p) for p in DEEPSEEK_SPLITS), byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True,
        specials=["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"], template=("<｜begin▁of▁sentence｜>", None), spells_every_byte=True),
    "tekken": Pipeline(4096, sequence("pretokenizers", split(TEKKEN_REGEX), byte_level(use_regex=False)),
                       decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, specials=["<unk>", "<s>", "</s>"],
                       template=("<s>", None), spells_every_byte=True),
    "mistral-metaspace-byte-fallback": Pipeline(
        1024, metaspace("first", False), decoder=SENTENCEPIECE_DECODER, specials=["<unk>", "<s>", "</s>"],
        limit_alphabet=150, byte_fallback=True, unk="<unk>", fuse_unk=True, template=("<s>", None)),
    "llama2-legacy": Pipeline(
        1024, None, normalizer=sequence("normalizers", {"type": "Prepend", "prepend": SPACE_MARK}, replace(" ", SPACE_MARK)),
        decoder=SENTENCEPIECE_DECODER, specials=["<unk>", "<s>", "</s>"], limit_alphabet=120, byte_fallback=True,
        unk="<unk>", fuse_unk=True, template=("<s>", None)),
    "metaspace-split-always": Pipeline(
        800, metaspace("always", True), decoder=sequence("decoders", {"type": "ByteFallback"}, metaspace("always", True)),
        specials=["<unk>"], limit_alphabet=100, byte_fallback=True, unk="<unk>"),
    "metaspace-never-digits": Pipeline(
        700, sequence("pretokenizers", metaspace("never", True), {"type": "Digits", "individual_digits": True}),
        decoder=sequence("decoders", {"type": "ByteFallback"}, metaspace("never", True), {"type": "Fuse"}),
        specials=["<unk>", "<s>"], limit_alphabet=90, byte_fallback=True, unk="<unk>", fuse_unk=True),
    "lowercase-nfkc": Pipeline(
        1000, byte_level(), normalizer=sequence("normalizers", {"type": "NFKC"}, {"type": "Lowercase"}),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, specials=["[MASK]"],
        added=[added("Hello World"), added("[CLS]", special=True, normalized=True)]),
    "added-token-flags": Pipeline(
        900, byte_level(), decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, specials=["<|endoftext|>"],
        added=[added("<mask>", special=True, lstrip=True), added("<sep>", special=True, rstrip=True),
               added("foo", single_word=True, normalized=False), added("<|tool|>"), added("ab"),
               added("NAME", single_word=True, lstrip=True, rstrip=True, normalized=False)]),
    "nfd-strip-marks-whitespace": Pipeline(
        800, {"type": "Whitespace"},
        normalizer=sequence("normalizers", {"type": "NFD"}, replace(r"\p{Mn}", "", regex=True)),
        specials=["[UNK]"], limit_alphabet=300, unk="[UNK]"),
    "nfkd-strip-whitespace-split": Pipeline(
        700, {"type": "WhitespaceSplit"},
        normalizer=sequence("normalizers", {"type": "NFKD"}, {"type": "Strip", "strip_left": True, "strip_right": True}),
        specials=["<unk>"], limit_alphabet=250, unk="<unk>", fuse_unk=True),
    "punctuation-digits-sequence": Pipeline(
        600, sequence("pretokenizers", {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
                      {"type": "Digits", "individual_digits": True}),
        specials=["<unk>"], limit_alphabet=200, unk="<unk>"),
    "split-string-merged-with-previous": Pipeline(
        700, sequence("pretokenizers", split(" ", "MergedWithPrevious", literal=True), byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, spells_every_byte=True),
    "split-merged-with-next": Pipeline(
        700, sequence("pretokenizers", split(r"\s", "MergedWithNext"), byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, spells_every_byte=True),
    "split-contiguous-invert": Pipeline(
        700, sequence("pretokenizers", split(r"\p{L}+", "Contiguous", invert=True), byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, spells_every_byte=True),
    "split-removed-invert-word": Pipeline(
        700, sequence("pretokenizers", split(r"\w+|[^\w\s]+", "Removed", invert=True), byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True),
    "replace-regex-strip-metaspace": Pipeline(
        900, metaspace("always", True),
        normalizer=sequence("normalizers", replace(r"\s+", " ", regex=True), {"type": "Strip", "strip_left": False,
                                                                            "strip_right": True}),
        decoder=SENTENCEPIECE_DECODER, specials=["<unk>"], limit_alphabet=150, byte_fallback=True, unk="<unk>"),
    "punctuation-merged-with-next-prefix-space": Pipeline(
        800, sequence("pretokenizers", {"type": "Punctuation", "behavior": "MergedWithNext"}, byte_level(add_prefix_space=True)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True),
    "case-insensitive-ignore-merges": Pipeline(
        1000, sequence("pretokenizers", split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+|\s+"),
                       byte_level(use_regex=False)),
        decoder=BYTE_LEVEL_DECODER, byte_alphabet=True, ignore_merges=True, specials=["<|endoftext|>"], spells_every_byte=True),
}


def training_texts() -> list[str]:
    lines = data_text("tinystories_train.txt").splitlines(keepends=True)
    lines += data_text("wikitext2_valid.txt")[:300_000].splitlines(keepends=True)
    return lines + ADVERSARIAL * 3


def train(name: str, p: Pipeline, folder: Path, texts: list[str]) -> Path:
    """Trains the pipeline's BPE with `tokenizers` and writes its tokenizer.json into folder."""
    from tokenizers import pre_tokenizers, trainers

    skeleton = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                "normalizer": p.normalizer, "pre_tokenizer": p.pre_tokenizer, "post_processor": None,
                "decoder": p.decoder,
                "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                          "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                          "ignore_merges": False, "vocab": {}, "merges": []}}
    tok = hf_tokenizers.Tokenizer.from_str(json.dumps(skeleton))
    options = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if p.byte_alphabet else {}
    if p.limit_alphabet is not None:
        options["limit_alphabet"] = p.limit_alphabet
    trainer = trainers.BpeTrainer(vocab_size=p.vocab_size - (256 if p.byte_fallback else 0), show_progress=False,
                                  special_tokens=p.specials, **options)
    tok.train_from_iterator(texts, trainer)
    spec = json.loads(tok.to_str())
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    if p.missing_bytes:
        byte_chars = {chr(c) for c in _byte_level_codepoints(p.missing_bytes)}
        vocab = {t: i for t, i in vocab.items() if not set(t) & byte_chars}
        model["merges"] = [m for m in model["merges"] if not set("".join(m)) & byte_chars]
    next_id = max(vocab.values()) + 1
    if p.byte_fallback:
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", next_id + b)
        next_id += 256
    if p.merges_as_strings:
        model["merges"] = [" ".join(m) for m in model["merges"]]
    model.update(vocab=vocab, byte_fallback=p.byte_fallback, unk_token=p.unk, fuse_unk=p.fuse_unk,
                 ignore_merges=p.ignore_merges)
    for a in p.added:  # as tokenizers numbers them: a token in the vocabulary keeps its id
        if a["content"] in vocab:
            spec["added_tokens"].append({"id": vocab[a["content"]], **a})
        else:
            spec["added_tokens"].append({"id": next_id, **a})
            next_id += 1
    before, after = p.template
    if before or after:
        single = ([{"SpecialToken": {"id": before, "type_id": 0}}] if before else []) + \
                 [{"Sequence": {"id": "A", "type_id": 0}}] + \
                 ([{"SpecialToken": {"id": after, "type_id": 0}}] if after else [])
        spec["post_processor"] = {
            "type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in (before, after) if t}}
    elif p.post_processor:
        spec["post_processor"] = p.post_processor
    out = folder / name
    out.mkdir(parents=True)
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return out


def _byte_level_codepoints(byte_values: list[int]) -> list[int]:
    """The GPT-2 byte-level symbols of some bytes."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = b
        else:
            table[b] = 0x100 + extra
            extra += 1
    return [table[b] for b in byte_values]


class Case:
    def __init__(self, folder: Path, pipeline: Pipeline):
        self.pipeline = pipeline
        self.meta = tokenizer_metadata(folder)
        self.ours = Tokenizer(self.meta)
        self.hf = hf_tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.add_bos, self.add_eos = self.meta[C.KEY_TOKENIZER_ADD_BOS], self.meta[C.KEY_TOKENIZER_ADD_EOS]
        self.eos = self.meta.get(C.KEY_TOKENIZER_EOS)

    def encode(self, text: str | bytes, parse_special: bool = True) -> list[int]:
        ids = self.ours.encode(text, add_bos=self.add_bos, parse_special=parse_special)
        return ids + [self.eos] if self.add_eos else ids

    def check_encode(self, texts: list[str], parse_special: bool = True) -> None:
        # Both release the GIL: ours runs in a thread while tokenizers encodes.
        with ThreadPoolExecutor(1) as pool:
            ours = pool.submit(lambda: [self.encode(t, parse_special) for t in texts])
            self.hf.encode_special_tokens = not parse_special
            try:
                expected = [e.ids for e in self.hf.encode_batch_fast(texts)]
            finally:
                self.hf.encode_special_tokens = False
            got_all = ours.result()
        for text, got, ids in zip(texts, got_all, expected):
            assert got == ids, f"{text[:120]!r}: {first_difference(got, ids)}"


def first_difference(ours: list[int], theirs: list[int]) -> str:
    i = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"first difference at {i} of {len(ours)}/{len(theirs)}: ours {ours[i:i + 8]}, HF {theirs[i:i + 8]}"


@pytest.fixture(scope="session")
def conformance_case(tmp_path_factory) -> Callable[[str], Case]:
    """Trains each pipeline on first use, once per session."""
    folder = tmp_path_factory.mktemp("conformance")
    cases: dict[str, Case] = {}
    texts: list[str] = []

    def get(name: str) -> Case:
        if name not in cases:
            if not texts:
                texts.extend(training_texts())
            cases[name] = Case(train(name, PIPELINES[name], folder, texts), PIPELINES[name])
        return cases[name]

    return get


NAMES = list(PIPELINES)


# ---- the checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_data_files_whole_and_by_line(conformance_case, name):
    case = conformance_case(name)
    texts = [data_text(f) for f in DATA_FILES]
    lines = [line for t in texts for line in t.splitlines(keepends=True)]
    case.check_encode(texts + lines)


@pytest.mark.parametrize("name", NAMES)
def test_adversarial_corpus(conformance_case, name):
    case = conformance_case(name)
    texts = ADVERSARIAL + random_texts(RANDOM_POOL, 400, seed=11) + ["\n".join(ADVERSARIAL)]
    case.check_encode(texts)
    case.check_encode(texts, parse_special=False)


@pytest.mark.parametrize("name", NAMES)
def test_decode(conformance_case, name):
    """decode(encode(x)) == x wherever tokenizers round-trips, and decode equals HF's on any ids."""
    case = conformance_case(name)
    texts = ADVERSARIAL + random_texts(RANDOM_POOL, 300, seed=12) + data_text("tinystories_train.txt").splitlines(keepends=True)[:300]
    round_trips = 0
    for text in texts:
        ids = case.encode(text)
        assert ids == case.hf.encode(text).ids, repr(text)
        ours = case.ours.decode(ids, skip_special=True)
        assert ours == case.hf.decode(ids, skip_special_tokens=True), repr(text)
        assert case.ours.decode(ids, skip_special=False) == case.hf.decode(ids, skip_special_tokens=False), repr(text)
        if case.hf.decode(ids) == text:
            assert ours == text
            round_trips += 1
    rng = random.Random(13)
    n = case.ours.vocab_size
    for _ in range(300):
        ids = [rng.randrange(n) for _ in range(rng.randint(0, 10))]
        for skip in (False, True):
            assert case.ours.decode(ids, skip_special=skip) == case.hf.decode(ids, skip_special_tokens=skip), ids
    if case.pipeline.decoder is not None:
        assert round_trips > 0


@pytest.mark.parametrize("name", NAMES)
def test_invalid_utf8(conformance_case, name):
    """Text tokenizers cannot take: the ids decode as HF decodes them, and the pieces give the
    bytes back wherever the vocabulary can spell every byte."""
    case = conformance_case(name)
    for data in INVALID_UTF8:
        ids = case.ours.encode(data, add_bos=False, parse_special=False)
        assert case.ours.decode(ids, skip_special=False) == case.hf.decode(ids, skip_special_tokens=False)
        if case.pipeline.spells_every_byte:
            assert b"".join(case.ours.token_to_piece(i, special=True) for i in ids) == data, data


def test_the_suite_is_broad():
    """At least 20 pipelines, vocabularies of 512 to 4096, every component type the runtime supports."""
    assert len(PIPELINES) >= 20
    assert all(512 <= p.vocab_size <= 4096 for p in PIPELINES.values())
    assert {p.merges_as_strings for p in PIPELINES.values()} == {True, False}  # both spellings of merges
    everything = json.dumps([[p.normalizer, p.pre_tokenizer, p.decoder] for p in PIPELINES.values()])
    for component in ["NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Strip", "Replace", "Prepend", "ByteLevel", "Split",
                      "Digits", "Metaspace", "Whitespace", "WhitespaceSplit", "Punctuation", "ByteFallback", "Fuse",
                      "Sequence", "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        assert f'"{component}"' in everything, component


# ---- a model with a conformance tokenizer, end to end ----------------------------------------------


def model_folder(folder: Path, tokenizer_dir: Path, bos: str | None) -> Path:
    """stories260K's weights with the embedding tiled to the tokenizer's vocabulary; bos (and the
    token after it as EOS) from the tokenizer's specials, or none."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    stories = ROOT / "models" / "stories260K"
    folder.mkdir()
    tokens = tokenizer_metadata(tokenizer_dir)[C.KEY_TOKENIZER_TOKENS]
    config = json.loads((stories / "config.json").read_text())
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    bos_id = spec["model"]["vocab"][bos] if bos is not None else None
    config.update(vocab_size=len(tokens), bos_token_id=bos_id, eos_token_id=None if bos is None else bos_id + 1)
    (folder / "config.json").write_text(json.dumps(config))
    weights = load_file(stories / "model.safetensors")
    weights["model.embed_tokens.weight"] = np.resize(weights["model.embed_tokens.weight"], (len(tokens), 64))
    save_file(weights, folder / "model.safetensors")
    (folder / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                              **({"bos_token": bos} if bos else {})}))
    return folder


@pytest.mark.parametrize("name", list(PIPELINES))
def test_model_with_each_tokenizer_converts_and_runs(conformance_case, tmp_path, name):
    """Each conformance tokenizer in a model folder: sqconvert writes it, the runtime gives HF's ids
    and torch's perplexity (the weights are stories260K's, the embedding tiled to the vocabulary)."""
    from conftest import sqconvert
    from sqllm.converter.evaluate import reference_perplexity
    from sqllm.runtime import Model

    case = conformance_case(name)
    pipeline = PIPELINES[name]
    tokenizer_dir = tmp_path / "tok"
    tokenizer_dir.mkdir()
    spec = json.loads(case.hf.to_str())
    (tokenizer_dir / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    bos = pipeline.template[0] or (pipeline.specials[0] if pipeline.specials else None)
    folder = model_folder(tmp_path / "model", tokenizer_dir, bos)
    out = tmp_path / "m.sqf"
    sqconvert(folder, "-o", out, "--method", "rtn", "--bits", "8", "--quiet")
    model = Model(out)
    eos = [case.eos] if case.add_eos else []  # the runtime never appends EOS to a prompt
    for text in ADVERSARIAL[:20] + data_text("tinystories_valid.txt").splitlines()[:20]:
        assert model.tokenize(text) + eos == case.hf.encode(text).ids, repr(text)
    text = data_text("tinystories_valid.txt")[:3000] + "Call 555-0100 at 12:30, room 4B.\n"
    # Against torch on the weights the file holds (the tiled embedding makes a model whose
    # perplexity magnifies any difference in the weights themselves).
    sqconvert("dequant", out, "-o", tmp_path / "dequant")
    ours = model.perplexity(text, ctx=128, max_windows=2)
    reference = reference_perplexity(tmp_path / "dequant", text, ctx=128, max_windows=2)
    assert abs(math.log(ours) / math.log(reference) - 1) < 1e-3, (ours, reference)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(pre_tokenizer={"type": "UnicodeScripts"}), "pre-tokenizer 'UnicodeScripts' is not supported"),
    (lambda s: s.update(decoder={"type": "CTC"}), "decoder 'CTC' is not supported"),
    (lambda s: s["model"].update(type="WordPiece"), "tokenizer model 'WordPiece' is not supported"),
    (lambda s: s.update(normalizer={"type": "Replace", "pattern": {"Regex": "[a-"}, "content": ""}),
     "normalizer 'Replace': pattern"),
    ("{\"model\": ", "tokenizer.json: cannot read"),
])
def test_bad_tokenizer_json_is_a_one_line_error(tmp_path, edit, message):
    from conftest import STORIES, sqconvert

    model = tmp_path / "model"
    model.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (model / f).write_bytes((STORIES / f).read_bytes())
    if isinstance(edit, str):
        (model / "tokenizer.json").write_text(edit)
    else:
        spec = json.loads((STORIES / "tokenizer.json").read_text(encoding="utf-8"))
        edit(spec)
        (model / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    p = sqconvert(model, "-o", out / "m.sqf", "--method", "rtn", "--quiet", check=False)
    assert p.returncode == 1, p.stderr
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert list(out.iterdir()) == []


REGEX_CONSTRUCTS = ["^a", "b$", "a$", ".+", r"\h+", r"\Aa", r"b\z", r"\n\Z", "(?i)s+", "(?i:σ)", "(?i)k", r"\d+", r"\w+",
                    r"\W", r"\s", r"\S+", r"[^\s]", "[[:alpha:]]+", r"\p{Greek}+", "(?m)^.", r"\X", r"\R", "a|", "(?=b)",
                    "x*", r"\p{L}\p{M}*", "(?<=a)b", r"[\p{Lu}\p{Lt}]+", r"\p{N}{2,3}", r"[^\r\n\p{L}\p{N}]?\p{L}+",
                    r"\s+(?!\S)", "(?i:'s|'t|'re)", r"[一-龥]+", r"\x{2581}", r"[\x00-\x1f]+"]
REGEX_TEXT = ("a\nb a\nab\n ΣσςſS K k Kelvin ٣4 x\u0301y _z ab12 \t\u00a0\u0085 end.\n"
              "IT'S it'ſ 中文 ▁x \x01\x1f ½² ǅǅ Straße 𝔘𝔫 ﬁ  \r\n")


@pytest.mark.parametrize("pattern", REGEX_CONSTRUCTS)
def test_regex_constructs_match_oniguruma(pattern):
    """Split(pattern, Removed) over every byte-level symbol: the ids show exactly what matched."""
    alphabet = sorted(hf_tokenizers.pre_tokenizers.ByteLevel.alphabet())
    spec = {"version": "1.0", "added_tokens": [], "normalizer": None, "post_processor": None, "decoder": None,
            "pre_tokenizer": sequence("pretokenizers", split(pattern, "Removed"), byte_level(use_regex=False)),
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {c: i for i, c in enumerate(alphabet)}, "merges": []}}
    from sqllm.converter.tokenizer import metadata_from_tokenizer_json

    hf = hf_tokenizers.Tokenizer.from_str(json.dumps(spec))
    ours = Tokenizer(metadata_from_tokenizer_json(spec))
    for text in (REGEX_TEXT, *REGEX_TEXT.split("\n")):
        assert ours.encode(text, add_bos=False) == hf.encode(text).ids, repr(text)
