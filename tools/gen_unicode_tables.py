#!/usr/bin/env python3
"""Write cpp/src/unicode_tables.inc: the Unicode data the C++ tokenizer needs, taken from this
Python's `unicodedata`.

    python tools/gen_unicode_tables.py [OUT]   (default cpp/src/unicode_tables.inc)

- number ranges: general category N*, Rust's `char::is_numeric` (the Digits pre-tokenizer);
- punctuation ranges: general category P*, Rust's `char::is_punctuation` (the Punctuation
  pre-tokenizer);
- whitespace ranges: the White_Space property, Rust's `char::is_whitespace` and what `\\s` means
  in Oniguruma (the regex engine of Hugging Face tokenizers). It is not `str.isspace()`, which
  also accepts U+001C..U+001F;
- canonical combining classes, single-step canonical and compatibility decompositions and which
  canonical ones compose back: enough for NFC, NFD, NFKC and NFKD. Hangul syllables are
  algorithmic and left out;
- lowercase mappings of single characters (`str.lower()` of one character, Rust's
  `char::to_lowercase`: at most two characters, no context such as a final sigma).

The output depends only on the Unicode version of `unicodedata`, which is written into its header.
"""

import sys
import unicodedata
from pathlib import Path

MAX_CODEPOINT = 0x10FFFF
HANGUL_SYLLABLES = range(0xAC00, 0xD7A4)
# The conjoining jamo that combine algorithmically with a preceding L or LV (UAX #15, 3.12).
HANGUL_V_AND_T_JAMO = [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]
# PropList.txt White_Space; unicodedata does not expose it. Unchanged since Unicode 6.3.
WHITE_SPACE = [(0x0009, 0x000D), (0x0020, 0x0020), (0x0085, 0x0085), (0x00A0, 0x00A0), (0x1680, 0x1680),
               (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]


def ranges_where(predicate) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in range(MAX_CODEPOINT + 1):
        if predicate(cp):
            if out and out[-1][1] == cp - 1:
                out[-1] = (out[-1][0], cp)
            else:
                out.append((cp, cp))
    return out


def combining_class_ranges() -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for cp in range(MAX_CODEPOINT + 1):
        ccc = unicodedata.combining(chr(cp))
        if ccc:
            if out and out[-1][1] == cp - 1 and out[-1][2] == ccc:
                out[-1] = (out[-1][0], cp, ccc)
            else:
                out.append((cp, cp, ccc))
    return out


def canonical_decompositions() -> list[tuple[int, int, int, bool]]:
    """(codepoint, first, second or 0, whether first+second compose back to codepoint)."""
    out = []
    for cp in range(MAX_CODEPOINT + 1):
        if cp in HANGUL_SYLLABLES:
            continue
        fields = unicodedata.decomposition(chr(cp)).split()
        if not fields or fields[0].startswith("<"):
            continue  # none, or a compatibility decomposition (compatibility_decompositions)
        parts = [int(f, 16) for f in fields]
        assert len(parts) in (1, 2), (hex(cp), parts)
        # A two-part decomposition composes back unless the codepoint is a composition exclusion;
        # NFC of the single character tells which.
        composes = len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp)
        out.append((cp, parts[0], parts[1] if len(parts) == 2 else 0, composes))
    return out


def compatibility_decompositions() -> list[tuple[int, list[int]]]:
    """(codepoint, its single-step compatibility mapping), for NFKD and NFKC."""
    out = []
    for cp in range(MAX_CODEPOINT + 1):
        fields = unicodedata.decomposition(chr(cp)).split()
        if fields and fields[0].startswith("<"):
            out.append((cp, [int(f, 16) for f in fields[1:]]))
    return out


def lowercase_mappings() -> list[tuple[int, int, int]]:
    """(codepoint, first, second or 0) where a character's lowercase differs from it."""
    out = []
    for cp in range(MAX_CODEPOINT + 1):
        lower = chr(cp).lower()
        if lower != chr(cp):
            assert len(lower) <= 2, hex(cp)
            out.append((cp, ord(lower[0]), ord(lower[1]) if len(lower) == 2 else 0))
    return out


def first_codepoint_nfc_can_touch(decompositions) -> int:
    """Below this, a codepoint is never changed by NFC nor combined with its neighbours, so text
    made only of such codepoints is already NFC."""
    touched = {cp for cp in range(MAX_CODEPOINT + 1) if unicodedata.combining(chr(cp))}
    touched |= {cp for cp in range(MAX_CODEPOINT + 1) if unicodedata.normalize("NFC", chr(cp)) != chr(cp)}
    touched |= {second for _, _, second, composes in decompositions if composes}
    touched |= set(HANGUL_V_AND_T_JAMO)
    return min(touched)


def format_rows(rows: list[str], per_line: int) -> str:
    lines = [" ".join(rows[i:i + per_line]) for i in range(0, len(rows), per_line)]
    return "\n".join("    " + line for line in lines)


def main() -> None:
    default_path = Path(__file__).resolve().parents[1] / "cpp/src/unicode_tables.inc"
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_path
    punctuation = ranges_where(lambda cp: unicodedata.category(chr(cp)).startswith("P"))
    numbers = ranges_where(lambda cp: unicodedata.category(chr(cp)).startswith("N"))
    classes = combining_class_ranges()
    decompositions = canonical_decompositions()
    nfc_floor = first_codepoint_nfc_can_touch(decompositions)
    compatibility = compatibility_decompositions()
    compatibility_rows, compatibility_data = [], []
    for cp, parts in compatibility:
        compatibility_rows.append(f"{{0x{cp:04X}, {len(compatibility_data)}, {len(parts)}}},")
        compatibility_data += parts
    lowercase = lowercase_mappings()

    def range_rows(rs):
        return [f"{{0x{a:04X}, 0x{b:04X}}}," for a, b in rs]

    text = f"""\
// Generated by tools/gen_unicode_tables.py from Python {sys.version.split()[0]} unicodedata,
// Unicode {unicodedata.unidata_version}. Do not edit; run the script again instead.
// Included by tokenizer_unicode.cpp only.

struct CodepointRange {{
    uint32_t first, last;
}};
struct CombiningClassRange {{
    uint32_t first, last;
    uint8_t combining_class;
}};
// One step of a canonical decomposition: codepoint -> first (+ second, 0 for a singleton).
// `composes` is false for composition exclusions, which NFC leaves decomposed.
struct CanonicalDecomposition {{
    uint32_t codepoint, first, second;
    bool composes;
}};
// A compatibility decomposition: `length` codepoints from kCompatibilityData[offset].
struct CompatibilityDecomposition {{
    uint32_t codepoint;
    uint16_t offset;
    uint8_t length;
}};
// codepoint -> first (+ second, 0 for one character).
struct LowercaseMapping {{
    uint32_t codepoint, first, second;
}};

// General category P* (Rust's char::is_punctuation), sorted.
static const CodepointRange kPunctuationRanges[] = {{
{format_rows(range_rows(punctuation), 6)}
}};

// General category N* (\\p{{N}}), sorted.
static const CodepointRange kNumberRanges[] = {{
{format_rows(range_rows(numbers), 6)}
}};

// The White_Space property (\\s in Oniguruma), sorted.
static const CodepointRange kWhitespaceRanges[] = {{
{format_rows(range_rows(WHITE_SPACE), 6)}
}};

// Nonzero canonical combining classes, sorted.
static const CombiningClassRange kCombiningClassRanges[] = {{
{format_rows([f"{{0x{a:04X}, 0x{b:04X}, {c}}}," for a, b, c in classes], 5)}
}};

// Canonical decompositions except Hangul syllables, sorted by codepoint.
static const CanonicalDecomposition kCanonicalDecompositions[] = {{
{format_rows([f"{{0x{cp:04X}, 0x{a:04X}, 0x{b:04X}, {int(c)}}}," for cp, a, b, c in decompositions], 4)}
}};

// Single-step compatibility decompositions, sorted by codepoint.
static const CompatibilityDecomposition kCompatibilityDecompositions[] = {{
{format_rows(compatibility_rows, 5)}
}};
static const uint32_t kCompatibilityData[] = {{
{format_rows([f"0x{c:04X}," for c in compatibility_data], 10)}
}};

// Lowercase of single characters where it differs, sorted by codepoint.
static const LowercaseMapping kLowercaseMappings[] = {{
{format_rows([f"{{0x{cp:04X}, 0x{a:04X}, 0x{b:04X}}}," for cp, a, b in lowercase], 4)}
}};

// Text whose codepoints are all below this is already in NFC.
static const uint32_t kNfcFirstAffectedCodepoint = 0x{nfc_floor:04X};
"""
    out_path.write_text(text, encoding="utf-8")
    print(f"{out_path}: {len(punctuation)} punctuation, {len(numbers)} number, {len(classes)} combining-class ranges, "
          f"{len(decompositions)} canonical and {len(compatibility)} compatibility decompositions, "
          f"{len(lowercase)} lowercase mappings (Unicode {unicodedata.unidata_version})")


if __name__ == "__main__":
    main()
