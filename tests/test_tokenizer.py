"""The C++ tokenizer against Hugging Face `tokenizers` (and SentencePiece for stories260K).

Models: stories260K (SentencePiece BPE with byte fallback, bundled), the dev model Qwen2.5-Coder
(byte-level BPE, Qwen2 split, NFC; from $SQLLM_DEV_MODEL or the default cache; a missing one
skips those tests unless SQLLM_REQUIRE_DEV_MODEL=1), and small BPEs trained here with the GPT-2
and Llama-3 splits. Each runs through its tokenizer.json pipeline, and again as a file without
the pipeline key reads it: by the tokenizer.ggml.model / pre names alone. Many more pipelines are
in test_tokenizer_conformance.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from conftest import DATA_FILES, data_text, random_texts

from sqllm._sqllm import Tokenizer
from sqllm.errors import FormatError
from sqllm.converter.tokenizer import LLAMA3_REGEX, tokenizer_metadata
from sqllm.formats import constants as C

hf_tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[1]
STORIES = ROOT / "models" / "stories260K"
DEV_MODEL = Path(os.environ.get("SQLLM_DEV_MODEL")
                 or Path.home() / ".cache/sqllm-models/qwen2.5-coder-0.5b-instruct/hf-float16")

EDGE_TEXTS = [
    "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "a", " a", "a ", "  a  b   c  ",
    "Hello world", "Hello, world!\n", "line one\r\nline two\r\n\r\n\tindented\n", "tabs\tand\t\tmore\t",
    "trailing spaces   \n  leading", "x\u00a0y\u00a0\u00a0 z\u3000w\u2028v\u0085u\u001cq",
    "It's don't I'm we'll they've she'd you're IT'S DON'T 'S 'll 'ſ 'ſt x'Ve",
    "1 12 123 1234 12345 3.14159 1,000,000 ٣٤٥ １２３ ½ ²",
    "café naïve résumé Ångström ﬁ ß ẞ ǅ",
    "e\u0301 a\u0300\u0316 \u1100\u1161\u11a8 한국어 \u212b \u2126 \u212a",
    "\u0915\u094d\u0937 \u09c7\u09be \u0b47\u0b3e \u0dd9\u0dcf \u1025\u102e",
    "\uf900\uf91f\U0002f800 \u0344 \u0f73 \u0958",
    "日本語のテキスト、句読点。", "Привет, мир! Ελληνικά", "مرحبا بالعالم",
    "emoji 😀👍🏽 👨‍👩‍👧 🇺🇸 ❤️",
    "def f(x):\n    return x ** 2  # comment\n\n\nclass A:\n\tpass\n", "<html><body>&amp;</body></html>",
    "a" * 300, "ab" * 200 + " " * 50 + "\n" * 20, "🙂" * 40, "\u0301\u0301 leading combining",
    "<s>", "</s>", "<unk>", "a<s>b</s>c<unk>", "<s> spaced </s>", "<<s>>", "<s<s>>",
    "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_end|>",
    "<tool_call>{}</tool_call>", "<|im_start", "|im_end|>", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
]
# Bytes that are not UTF-8 (HF cannot take them at all): the runtime keeps them byte for byte.
INVALID_UTF8 = [b"\xff", b"abc\xff\xfedef", b"\xc3(", b"\xe6\x97", b"caf\xe9 ol\xe9", b"\xed\xa0\x80x",
                b"\xf4\x90\x80\x80", b"\xc0\xaf", b" \x80 \x80\x80 ",
                "<|im_start|>\udcff".encode("utf-8", "surrogateescape")]

# Characters random strings are made of: the classes the regexes and NFC distinguish.
RANDOM_POOL = list(
    "aZz09 '\t\n\r.,!?-_<>|/\\\"" "éÅß" "\u00a0\u3000\u2028\u0085\u001c"
    "\u0300\u0301\u0316\u0323\u0342\u0345\u05b0\u0327" "\u1100\u1161\u11a8\uac00\ud55c\u1112\u1175"
    "\u212a\u212b\u2126\u017f\u0958\u09c7\u09be\u0dd9\u0dcf\u0344\uf900\u1e9b\u1fc1"
    "日本٣１½ЖΩ😀🏽\u200d\ufe0f"
) + ["<s>", "</s>", "<|im_end|>", "<tool_call>", "'s", "'LL", "123", "\r\n"]


def data_lines() -> list[str]:
    lines = []
    for name in DATA_FILES:
        lines += data_text(name).splitlines(keepends=True)
    return lines


def first_difference(ours: list[int], theirs: list[int]) -> str:
    i = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"first difference at {i}: ours {ours[i:i + 8]}, HF {theirs[i:i + 8]}"


class Case:
    """One tokenizer: ours built from tokenizer_metadata, and HF's from the same tokenizer.json."""

    def __init__(self, model_dir: Path, vocab_size: int | None = None):
        self.meta = tokenizer_metadata(model_dir, vocab_size)
        self.ours = Tokenizer(self.meta)
        self.hf = hf_tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.add_bos = self.meta[C.KEY_TOKENIZER_ADD_BOS]

    def check_encode(self, texts: list[str]) -> None:
        expected = [e.ids for e in self.hf.encode_batch(texts)]
        for text, ids in zip(texts, expected):
            got = self.ours.encode(text)
            assert got == ids, f"{text[:200]!r}: {first_difference(got, ids)}"

    def check_decode(self, ids_list: list[list[int]]) -> None:
        for ids in ids_list:
            for skip in (False, True):
                assert self.ours.decode(ids, skip_special=skip) == self.hf.decode(ids, skip_special_tokens=skip), ids


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stories() -> Case:
    return Case(STORIES, 512)


@pytest.fixture(scope="module")
def stories_sentencepiece(tmp_path_factory) -> Tokenizer:
    """stories260K from its tokenizer.model alone: no merges, so BPE by SentencePiece scores."""
    folder = tmp_path_factory.mktemp("spm")
    shutil.copy(STORIES / "tokenizer.model", folder)
    meta = tokenizer_metadata(folder, 512)
    assert meta[C.KEY_TOKENIZER_MERGES] == [] and len(meta[C.KEY_TOKENIZER_SCORES]) == 512
    return Tokenizer(meta)


@pytest.fixture(scope="module")
def qwen() -> Case:
    if not (DEV_MODEL / "tokenizer.json").is_file():
        message = f"dev model not found at {DEV_MODEL} (set SQLLM_DEV_MODEL or run shared/tools/get_dev_model.sh)"
        if os.environ.get("SQLLM_REQUIRE_DEV_MODEL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    vocab_size = json.loads((DEV_MODEL / "config.json").read_text())["vocab_size"]
    return Case(DEV_MODEL, vocab_size)


def train_byte_level(folder: Path, split_regex: str | None) -> Path:
    """A 1000-token byte-level BPE trained on the data: GPT-2's own ByteLevel split when
    split_regex is None, else Split(split_regex) + ByteLevel as Llama-3 and Qwen2 have it."""
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    tok = hf_tokenizers.Tokenizer(models.BPE())
    if split_regex is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([data_text("tinystories_train.txt"), data_text("wikitext2_valid.txt")[:300_000]], trainer)
    tok.add_tokens(["<tool_call>"])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = split_regex == LLAMA3_REGEX
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Case:
    return Case(train_byte_level(tmp_path_factory.mktemp("bpe") / "gpt2", None))


@pytest.fixture(scope="module")
def llama3(tmp_path_factory) -> Case:
    return Case(train_byte_level(tmp_path_factory.mktemp("bpe") / "llama3", LLAMA3_REGEX))


CASES = ["stories", "qwen", "gpt2", "llama3"]


@pytest.fixture(params=CASES)
def case(request) -> Case:
    return request.getfixturevalue(request.param)


# ---- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATA_FILES)
def test_whole_files_match_hf(case, name):
    text = data_text(name)
    got, expected = case.ours.encode(text), case.hf.encode(text).ids
    assert got == expected, first_difference(got, expected)


def test_every_line_matches_hf(case):
    case.check_encode(data_lines())


def test_files_without_a_pipeline_tokenize_the_same(case):
    """The names of a version-1 file stand for the same pipelines."""
    legacy = Tokenizer({k: v for k, v in case.meta.items() if k != C.KEY_TOKENIZER_PIPELINE})
    texts = data_lines()[:3000] + EDGE_TEXTS + random_texts(RANDOM_POOL, 500, seed=9)
    for text in texts:
        assert legacy.encode(text) == case.ours.encode(text), repr(text)
    ids = [case.ours.encode(t) for t in texts[:500]]
    for i in ids:
        assert legacy.decode(i, skip_special=True) == case.ours.decode(i, skip_special=True)


def test_edge_texts_match_hf(case):
    case.check_encode(EDGE_TEXTS)


def test_random_unicode_matches_hf(case):
    case.check_encode(random_texts(RANDOM_POOL, 3000, seed=1))


def test_parse_special_off_matches_hf_encode_special_tokens(case):
    texts = [t for t in EDGE_TEXTS if "<" in t] + random_texts(RANDOM_POOL, 300, seed=2)
    case.hf.encode_special_tokens = True
    try:
        expected = [e.ids for e in case.hf.encode_batch(texts)]
    finally:
        case.hf.encode_special_tokens = False
    for text, ids in zip(texts, expected):
        assert case.ours.encode(text, add_bos=case.add_bos, parse_special=False) == ids, repr(text)


def test_add_bos(stories):
    assert stories.ours.add_bos and stories.ours.encode("Hi")[0] == stories.ours.bos_id == 1
    assert stories.ours.encode("Hi", add_bos=False) == stories.ours.encode("Hi")[1:]
    assert stories.ours.encode("") == [1] and stories.ours.encode("", add_bos=False) == []


def test_qwen_adds_no_bos_unless_asked(qwen):
    assert not qwen.ours.add_bos and qwen.ours.encode("Hi") == qwen.hf.encode("Hi").ids
    assert qwen.ours.encode("Hi", add_bos=True)[0] == qwen.ours.bos_id == 151643


@pytest.mark.parametrize("name", DATA_FILES)
def test_sentencepiece_scores_match_sentencepiece(stories_sentencepiece, name):
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(STORIES / "tokenizer.model"))
    text = data_text(name)
    got, expected = stories_sentencepiece.encode(text, add_bos=False, parse_special=False), sp.encode(text)
    assert got == expected, first_difference(got, expected)
    lines = text.splitlines(keepends=True)[:3000] + [t for t in EDGE_TEXTS if "<" not in t]
    for line, ids in zip(lines, sp.encode(lines)):
        assert stories_sentencepiece.encode(line, add_bos=False, parse_special=False) == ids, repr(line)


def test_sentencepiece_scores_match_merges(stories, stories_sentencepiece):
    """Scores (tokenizer.model) and merges (tokenizer.json) are two spellings of one BPE."""
    for text in EDGE_TEXTS + random_texts(RANDOM_POOL, 1000, seed=3) + [data_text("wikitext2_valid.txt")]:
        assert stories_sentencepiece.encode(text) == stories.ours.encode(text), repr(text[:200])


def test_invalid_utf8_is_kept_byte_for_byte(case):
    """HF cannot take such text; the runtime keeps its bytes, and decodes them as HF decodes the ids."""
    prefix = b" " if case.meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] else b""
    for data in INVALID_UTF8:
        ids = case.ours.encode(data, add_bos=False, parse_special=False)
        assert b"".join(case.ours.token_to_piece(i, special=True) for i in ids) == prefix + data
        assert case.ours.decode(ids) == case.hf.decode(ids, skip_special_tokens=False)
        if not prefix:  # byte-level: decoding is Rust's from_utf8_lossy, which Python's "replace" equals
            assert case.ours.decode(ids) == data.decode("utf-8", "replace")
    text = "abc\udcffdef"  # str with a surrogate-escaped byte, as os.fsdecode makes
    assert case.ours.encode(text) == case.ours.encode(b"abc\xffdef")


def test_text_types(stories):
    assert stories.ours.encode(b"Hello") == stories.ours.encode("Hello")
    with pytest.raises(TypeError):
        stories.ours.encode(42)


# ---- decoding ---------------------------------------------------------------------------------


def test_decode_of_encode_matches_hf(case):
    texts = EDGE_TEXTS + random_texts(RANDOM_POOL, 500, seed=4) + data_lines()[:2000]
    case.check_decode([case.hf.encode(t).ids for t in texts])


def test_decode_round_trips(case):
    """Text without special tokens comes back (NFC for Qwen2). With them it need not, in HF
    either: stories260K gives each piece between special tokens its own dummy-prefix space."""
    nfc = case.meta.get(C.KEY_TOKENIZER_PRE) == "qwen2"
    for text in [t for t in EDGE_TEXTS + random_texts(RANDOM_POOL, 500, seed=5) if "<" not in t]:
        expected = unicodedata.normalize("NFC", text) if nfc else text
        assert case.ours.decode(case.ours.encode(text, add_bos=False)) == expected, repr(text)


def test_decode_random_ids_matches_hf(case):
    """Arbitrary id sequences: byte tokens out of order, control tokens anywhere, padding rows."""
    rng = random.Random(6)
    n = case.ours.vocab_size
    specials = [i for i in range(n) if case.meta[C.KEY_TOKENIZER_TOKEN_TYPE][i] != 1]
    pool = list(range(min(n, 600))) + specials
    case.check_decode([[rng.choice(pool) if rng.random() < 0.7 else rng.randrange(n) for _ in range(rng.randint(0, 12))]
                       for _ in range(2000)])


# Codepoints NFC acts on: combining marks, precomposed letters, Hangul, singletons, exclusions.
NFC_POOL = [*range(0x300, 0x370), *range(0x591, 0x5C8), *range(0x900, 0xDFF), *range(0xF00, 0xFD0),
            *range(0x1100, 0x1200), *range(0x1DC0, 0x1E00), *range(0x1E00, 0x2000), *range(0x20D0, 0x20F1),
            0x2126, 0x212A, 0x212B, *range(0xAC00, 0xAC40), 0xD7A3, *range(0xF900, 0xFB50), *range(0x1D15E, 0x1D1C1),
            *map(ord, "aeiouAEIOUnNcCsS ")]


def test_nfc_matches_unicodedata(qwen):
    """The C++ NFC against Python's, on the Unicode version its tables come from. (HF's own NFC
    is built on older Unicode data; on these strings it agrees, see test_random_unicode_matches_hf.)"""
    header = (ROOT / "cpp/src/unicode_tables.inc").read_text(encoding="utf-8").splitlines()[1]
    if f"Unicode {unicodedata.unidata_version}." not in header:
        pytest.skip(f"tables are {header}, this Python has Unicode {unicodedata.unidata_version}")
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(chr(rng.choice(NFC_POOL)) for _ in range(rng.randint(1, 8)))
        expected = unicodedata.normalize("NFC", text)
        assert qwen.ours.decode(qwen.ours.encode(text)) == expected, [hex(ord(c)) for c in text]


def test_unicode_tables_are_up_to_date(tmp_path):
    committed = ROOT / "cpp/src/unicode_tables.inc"
    if f"Unicode {unicodedata.unidata_version}." not in committed.read_text(encoding="utf-8").splitlines()[1]:
        pytest.skip("this Python's Unicode version differs from the committed tables'")
    subprocess.run([sys.executable, str(ROOT / "tools/gen_unicode_tables.py"), str(tmp_path / "t.inc")], check=True,
                   capture_output=True)
    generated = (tmp_path / "t.inc").read_text(encoding="utf-8").splitlines()
    assert generated[2:] == committed.read_text(encoding="utf-8").splitlines()[2:]  # past the version header


def test_token_to_piece_stories(stories):
    s = stories.ours
    assert s.token_to_piece(1) == b"" and s.token_to_piece(1, special=True) == b"<s>"
    assert s.token_to_piece(stories.meta[C.KEY_TOKENIZER_TOKENS].index("<0x0A>")) == b"\n"
    assert s.token_to_piece(stories.meta[C.KEY_TOKENIZER_TOKENS].index("\u2581the")) == b" the"
    with pytest.raises(ValueError):
        s.token_to_piece(512)


def test_token_to_piece_qwen(qwen):
    q = qwen.ours
    ids = q.encode("日本語 ok")
    assert b"".join(q.token_to_piece(i) for i in ids) == "日本語 ok".encode()
    assert q.token_to_piece(151644) == b"" and q.token_to_piece(151644, special=True) == b"<|im_start|>"
    assert q.token_to_piece(151657) == b"<tool_call>"  # user-defined: always its text
    assert q.token_to_piece(q.vocab_size - 1) == b""   # padding row
    with pytest.raises(ValueError):
        q.token_to_piece(q.vocab_size)
    with pytest.raises(ValueError):
        q.decode([-1])


# ---- metadata ---------------------------------------------------------------------------------


def test_stories_metadata(stories):
    meta = stories.meta
    assert meta[C.KEY_TOKENIZER_MODEL] == "llama" and C.KEY_TOKENIZER_PRE not in meta
    types = meta[C.KEY_TOKENIZER_TOKEN_TYPE]
    assert types[:4] == [2, 3, 3, 6] and types.count(6) == 256 and len(types) == 512
    assert meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] is True and meta[C.KEY_TOKENIZER_ADD_BOS] is True
    assert (meta[C.KEY_TOKENIZER_BOS], meta[C.KEY_TOKENIZER_EOS], meta[C.KEY_TOKENIZER_UNK]) == (1, 2, 0)
    assert all(isinstance(m, str) and m.count(" ") == 1 for m in meta[C.KEY_TOKENIZER_MERGES])
    assert json.loads(meta[C.KEY_HF_TOKENIZER_JSON])["model"]["type"] == "BPE"


def test_qwen_metadata(qwen):
    meta = qwen.meta
    tokens, types = meta[C.KEY_TOKENIZER_TOKENS], meta[C.KEY_TOKENIZER_TOKEN_TYPE]
    assert (meta[C.KEY_TOKENIZER_MODEL], meta[C.KEY_TOKENIZER_PRE]) == ("gpt2", "qwen2")
    assert len(tokens) == len(types) == 151936 == qwen.ours.vocab_size
    assert tokens[151644] == "<|im_start|>" and types[151644] == 3 and types[151657] == 4
    assert tokens[151665] == "[PAD151665]" and set(types[151665:]) == {5}
    assert meta[C.KEY_TOKENIZER_EOS] == 151645 and meta[C.KEY_TOKENIZER_ADD_BOS] is False
    assert "<|im_start|>" in meta[C.KEY_CHAT_TEMPLATE]
    for key, value in meta.items():  # plain Python values only, as the writer wants
        assert type(value) in (str, int, bool, list), key
        if isinstance(value, list):
            assert {type(v) for v in value} <= {str, int, float}, key


def test_sentencepiece_metadata_matches_sentencepiece(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(STORIES / "tokenizer.model"))
    shutil.copy(STORIES / "tokenizer.model", tmp_path)
    meta = tokenizer_metadata(tmp_path)
    n = sp.get_piece_size()
    assert meta[C.KEY_TOKENIZER_TOKENS] == [sp.id_to_piece(i) for i in range(n)]
    assert all(math.isclose(a, sp.get_score(i)) for i, a in enumerate(meta[C.KEY_TOKENIZER_SCORES]))
    assert [t == 6 for t in meta[C.KEY_TOKENIZER_TOKEN_TYPE]] == [sp.is_byte(i) for i in range(n)]
    assert [t == 3 for t in meta[C.KEY_TOKENIZER_TOKEN_TYPE]] == [sp.is_control(i) for i in range(n)]
    ids = (meta[C.KEY_TOKENIZER_BOS], meta[C.KEY_TOKENIZER_EOS], meta[C.KEY_TOKENIZER_UNK])
    assert ids == (sp.bos_id(), sp.eos_id(), sp.unk_id())


def test_padding_to_vocab_size(tmp_path):
    shutil.copy(STORIES / "tokenizer.json", tmp_path)
    meta = tokenizer_metadata(tmp_path, vocab_size=520)
    assert len(meta[C.KEY_TOKENIZER_TOKENS]) == 520 and meta[C.KEY_TOKENIZER_TOKENS][519] == "[PAD519]"
    unpadded = Tokenizer(tokenizer_metadata(tmp_path))
    assert Tokenizer(meta).encode("Once upon a time") == unpadded.encode("Once upon a time")
    with pytest.raises(ValueError, match="vocab_size"):
        tokenizer_metadata(tmp_path, vocab_size=100)


def edited_tokenizer_json(tmp_path: Path, edit) -> Path:
    tmp_path.mkdir(exist_ok=True)
    spec = json.loads((STORIES / "tokenizer.json").read_text(encoding="utf-8"))
    edit(spec)
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return tmp_path


SPLIT_DIGITS = {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated", "invert": False}


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["model"].update(type="Unigram"), "Unigram"),
    (lambda s: s.update(normalizer={"type": "BertNormalizer"}), "normalizer 'BertNormalizer' is not supported"),
    (lambda s: s.update(normalizer={"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "StripAccents"}]}),
     "normalizer 'Sequence': normalizer 'StripAccents' is not supported"),
    (lambda s: s.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [SPLIT_DIGITS, {"type": "UnicodeScripts"}]}),
     "pre-tokenizer 'UnicodeScripts' is not supported"),
    (lambda s: s.update(pre_tokenizer={"type": "Split", "pattern": {"Regex": "(\\d+"}, "behavior": "Isolated"}),
     "pre-tokenizer 'Split': pattern: .*offset"),
    (lambda s: s.update(pre_tokenizer={"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Sideways"}),
     "unknown behavior 'Sideways'"),
    (lambda s: s.update(pre_tokenizer={"type": "Metaspace", "replacement": "ab"}), "replacement is not one character"),
    (lambda s: s.update(decoder={"type": "WordPiece", "prefix": "##"}), "decoder 'WordPiece' is not supported"),
    (lambda s: s.update(post_processor={"type": "RobertaProcessing"}), "post-processor 'RobertaProcessing'"),
    (lambda s: s["model"].update(unk_token="<nope>"), "names the token .<nope>., which is not in the vocabulary"),
    (lambda s: s["model"].update(continuing_subword_prefix="##"), "continuing_subword_prefix"),
    (lambda s: s["model"].update(merges=[["a b", "c"]]), "space"),
    (lambda s: s["model"].update(merges=[["▁t", "zz"]]), "merge 0 .* not in the vocabulary"),
    (lambda s: s["added_tokens"].append({"id": 5, "content": "<new>", "special": True}), "reuses id"),
    (lambda s: s["model"]["vocab"].update({"x": "7"}), "token ids must be integers"),
    (lambda s: s.update(model="BPE"), "malformed"),
])
def test_unsupported_tokenizer_json_is_a_value_error(tmp_path, edit, message):
    folder = edited_tokenizer_json(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as info:
        tokenizer_metadata(folder)
    assert "tokenizer.json" in str(info.value) and "\n" not in str(info.value)


METASPACE_VARIANTS = [
    pytest.param({"prepend_scheme": scheme, "split": split}, id=f"{scheme}-split={split}")
    for scheme in ("always", "first", "never") for split in (False, True)
]


@pytest.mark.parametrize("metaspace", METASPACE_VARIANTS)
def test_sentencepiece_style_variants(tmp_path, metaspace):
    """stories260K's BPE behind a Metaspace pre-tokenizer instead of its Prepend + Replace
    normalizer: every prepend scheme, with and without split, matches HF, also on text that starts
    with a space or follows a special token."""
    folder = edited_tokenizer_json(tmp_path, lambda s: s.update(normalizer=None, pre_tokenizer={
        "type": "Metaspace", "replacement": "\u2581", **metaspace}, decoder={
        "type": "Sequence", "decoders": [{"type": "Metaspace", "replacement": "\u2581", **metaspace},
                                         {"type": "ByteFallback"}, {"type": "Fuse"}]}))
    case = Case(folder)
    assert case.meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] is (metaspace["prepend_scheme"] != "never")
    lines = data_lines()[:2000] + EDGE_TEXTS + random_texts(RANDOM_POOL, 500, seed=8)
    case.check_encode(lines)
    case.check_decode([case.hf.encode(t).ids for t in lines[:500]])


def test_replace_only_normalizer(tmp_path):
    replace_only = edited_tokenizer_json(tmp_path, lambda s: s.update(normalizer=s["normalizer"]["normalizers"][1]))
    case = Case(replace_only)
    assert case.meta[C.KEY_TOKENIZER_ADD_SPACE_PREFIX] is False
    case.check_encode(data_lines()[:2000] + EDGE_TEXTS)


def test_unsupported_sentencepiece_model_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no tokenizer.json or tokenizer.model"):
        tokenizer_metadata(tmp_path)
    # A later trainer_spec field overrides: model_type = 1 (unigram).
    (tmp_path / "tokenizer.model").write_bytes((STORIES / "tokenizer.model").read_bytes() + b"\x12\x02\x18\x01")
    with pytest.raises(ValueError, match="model type 1"):
        tokenizer_metadata(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\xff")
    with pytest.raises(ValueError, match="SentencePiece"):
        tokenizer_metadata(tmp_path)


def tiny_gpt2_meta() -> dict:
    alphabet = hf_tokenizers.pre_tokenizers.ByteLevel.alphabet()
    tokens = sorted(alphabet) + ["ab", "<|end|>"]
    return {C.KEY_TOKENIZER_MODEL: "gpt2", C.KEY_TOKENIZER_PRE: "qwen2", C.KEY_TOKENIZER_TOKENS: tokens,
            C.KEY_TOKENIZER_TOKEN_TYPE: [1] * 257 + [3], C.KEY_TOKENIZER_MERGES: ["a b"], C.KEY_TOKENIZER_EOS: 257}


def test_tiny_handmade_tokenizer():
    tok = Tokenizer(tiny_gpt2_meta())
    ab = tok.encode("ab")
    assert len(ab) == 1 and tok.decode(ab) == "ab"
    assert tok.encode("xab<|end|>")[-1] == 257 and tok.encode("<|end|>", parse_special=False) != [257]


@pytest.mark.parametrize("change, message", [
    ({C.KEY_TOKENIZER_MODEL: "bert"}, "unknown tokenizer model"),
    ({C.KEY_TOKENIZER_PRE: "falcon"}, "unknown pre-tokenizer"),
    ({C.KEY_TOKENIZER_TOKENS: []}, "no tokens"),
    ({C.KEY_TOKENIZER_MERGES: ["a"]}, "merge 0"),
    ({C.KEY_TOKENIZER_MERGES: ["a zz"]}, "not in the vocabulary"),
    ({C.KEY_TOKENIZER_MERGES: ["a c"]}, "not in the vocabulary"),  # "ac" is no token
    ({C.KEY_TOKENIZER_MERGES: []}, "needs merges"),
    ({C.KEY_TOKENIZER_TOKEN_TYPE: [1] * 10}, "token types"),
    ({C.KEY_TOKENIZER_TOKEN_TYPE: [1] * 257 + [9]}, "unknown type"),
    ({C.KEY_TOKENIZER_SCORES: [0.0]}, "scores"),
    ({C.KEY_TOKENIZER_SCORES: [float("nan")] * 258}, "NaN"),
    ({C.KEY_TOKENIZER_EOS: 258}, "eos token id"),
    ({C.KEY_TOKENIZER_BOS: -5}, "bos"),
    ({C.KEY_TOKENIZER_TOKENS: ["x"] * 258}, "not in the vocabulary"),  # no "a": a byte-level vocabulary may lack bytes
    ({C.KEY_TOKENIZER_TOKENS: "abc"}, "wrong type"),
    ({C.KEY_TOKENIZER_TOKENS: None}, "no tokenizer.ggml.tokens"),
    ({C.KEY_TOKENIZER_MERGES: [1, 2]}, "wrong type"),
])
def test_bad_gpt2_metadata_is_a_value_error(change, message):
    meta = tiny_gpt2_meta() | change
    with pytest.raises(ValueError, match=message):
        Tokenizer(meta)


@pytest.mark.parametrize("change, message", [
    ({C.KEY_TOKENIZER_TOKEN_TYPE: [2, 3, 3] + [6] * 509}, "not <0xXX>"),  # "▁t" typed as a byte
    ({C.KEY_TOKENIZER_TOKEN_TYPE: [1] * 512, C.KEY_TOKENIZER_UNK: None}, "byte fallback"),
    ({C.KEY_TOKENIZER_MERGES: []}, "merges or scores"),
    ({C.KEY_TOKENIZER_PRE: "qwen2"}, "not supported with the llama tokenizer"),
])
def test_bad_llama_metadata_is_a_value_error(stories, change, message):
    """Files without a pipeline (written before it, or from a bare tokenizer.model)."""
    legacy = {k: v for k, v in stories.meta.items() if k != C.KEY_TOKENIZER_PIPELINE}
    with pytest.raises(ValueError, match=message):
        Tokenizer(legacy | change)


def test_converted_file_carries_the_pipeline(stories):
    from sqllm.formats.reader import SqfReader
    from sqllm.runtime import Model

    md = SqfReader(ROOT / "tests" / "data" / "stories260K-q4.sqf").metadata
    pipeline = json.loads(md[C.KEY_TOKENIZER_PIPELINE])
    assert pipeline["model"]["byte_fallback"] and pipeline["normalizer"]["type"] == "Sequence"
    from sqllm.formats.inspect import inspect_file
    summary = inspect_file(ROOT / "tests" / "data" / "stories260K-q4.sqf")["tokenizer"]["pipeline"]
    assert summary == "Prepend+Replace | - | BPE(byte_fallback) | Replace+ByteFallback+Fuse+Strip"
    text = data_text("tinystories_valid.txt")[:20000]
    assert Model(ROOT / "tests" / "data" / "stories260K-q4.sqf").tokenize(text) == stories.hf.encode(text).ids


def test_scores_instead_of_merges_through_the_entry_point(stories, tmp_path):
    """A tokenizer.json-shaped dict without merges (as a GGUF's llama vocabulary gives) and the
    SentencePiece scores: the same ids as the merges give."""
    from sqllm.converter.tokenizer import metadata_from_tokenizer_json

    shutil.copy(STORIES / "tokenizer.model", tmp_path)
    scores = tokenizer_metadata(tmp_path)[C.KEY_TOKENIZER_SCORES]
    spec = json.loads((STORIES / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["merges"] = []
    tok = Tokenizer(metadata_from_tokenizer_json(spec, scores=scores))
    for text in data_lines()[:2000] + EDGE_TEXTS:
        assert tok.encode(text) == stories.ours.encode(text), repr(text)
    with pytest.raises(ValueError, match="3 scores for 512 tokens"):
        metadata_from_tokenizer_json(spec, scores=[0.0] * 3)


def test_a_runaway_pattern_is_an_error_not_a_hang():
    """A Split pattern that backtracks without bound (a hostile or corrupt file) stops at PCRE2's
    match limit with an error naming the pattern's failure, instead of hanging or truncating."""
    pipeline = {"normalizer": None,
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": "(a|a?)+$"}, "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
                "model": {"type": "BPE", "byte_fallback": False, "ignore_merges": False, "fuse_unk": False,
                          "unk_token": None},
                "added_tokens": [], "decoder": {"type": "ByteLevel"}}
    tok = Tokenizer(tiny_gpt2_meta() | {C.KEY_TOKENIZER_PIPELINE: json.dumps(pipeline)})
    assert tok.decode(tok.encode("ab aab")) == "ab aab"
    with pytest.raises(FormatError, match="pattern of the file.s pipeline failed on this text \\(match limit exceeded\\)"):
        tok.encode("a" * 40 + "b")
