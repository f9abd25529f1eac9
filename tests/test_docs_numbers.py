"""No hand-typed numbers: every figure a reader sees in docs/ comes from a macro (and so from calc).

The prose of every ``docs/**/*.md`` is scanned with code fences, inline code, Jinja (``{{ }}``, ``{% %}``,
``{# #}``), HTML comments and tags, link targets, autolinks and attribute lists (``{ #id }``) taken out. A
digit left over fails the test unless it is part of a name on :data:`ALLOWED` (data types, model and
GPU names, "4-bit"...). Those are names, not measurements: "Llama 3.1" is a product, "8B" in "Llama 3.1 8B"
is a size and must come from ``preset_name``.

Keep :data:`ALLOWED` short and reviewed. A number that belongs on a page comes from a macro; a number in a
code example belongs in a code fence or inline code.

Also here: no page may contain ``{#`` outside code (``{#id}`` opens a Jinja comment and breaks the build;
write ``{ #id }``, site-toolchain.md §2.3).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

#: Names that contain digits, as regular expressions matched as whole tokens. Reviewed: add a name only
#: when it is a name (a product, a data type, a standard), never a quantity.
ALLOWED = (
    r"bf16", r"fp(?:4|8|16|32)", r"int(?:4|8)", r"nf4", r"b?float(?:16|32)",  # data types (any case)
    r"(?:4|8|16|32)-bit",                                                    # "4-bit NF4", "16-bit base"
    r"Llama [23](?:\.[123])?", r"Qwen(?:1\.5-MoE|1\.5|2\.5|2|3)", r"Gemma [23]", r"Phi-(?:3\.5|3|4)",
    r"GPT-2", r"OLMo 2", r"DeepSeek-V2", r"Mixtral 8x7B", r"Falcon-7B", r"SmolLM2",   # model families
    r"T4", r"L4", r"L40S", r"A10", r"A100", r"H100", r"H200", r"B200", r"MI300X",     # GPUs
    r"RTX (?:3060|3090|4090|5090|A6000)",
    r"ZeRO-[123]",                                                           # DeepSpeed stages
    r"--8<--",                                                               # pymdownx.snippets marker
)
_ALLOWED = re.compile(r"(?<![\w.])(?:" + "|".join(ALLOWED) + r")(?![\w]|\.\d)", re.IGNORECASE)

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_HIDDEN = [
    re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S),        # Jinja
    re.compile(r"<!--.*?-->", re.S),                             # HTML comments
    re.compile(r"(`+)(?:(?!\1).)+?\1", re.S),                    # inline code
    re.compile(r"\]\([^)]*\)"),                                  # link targets
    re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.M),         # reference link definitions
    re.compile(r"<(?:https?|mailto):[^>]*>"),                    # autolinks
    re.compile(r"\{:?[ \t]*[#.][^}\n]*\}"),                      # attribute lists
    re.compile(r"</?[A-Za-z][^>]*>"),                            # HTML tags (the text between them stays)
    re.compile(r"&#?\w+;"),                                      # HTML entities
    re.compile(r"^[ \t]*\d+[.)](?=[ \t])", re.M),                # ordered-list markers
]
_DIGIT_TOKEN = re.compile(r"\S*\d\S*")


def _blank(match: re.Match) -> str:
    """The matched text with everything but newlines turned into spaces, so line numbers survive."""
    return re.sub(r"[^\n]", " ", match.group(0))


def without_fences(source: str) -> str:
    """``source`` with fenced code blocks blanked (fence lines included)."""
    out, fence = [], None
    for line in source.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append("\n" if line.endswith("\n") else "")
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):]:
                fence = None
            out.append("\n" if line.endswith("\n") else "")
        else:
            out.append(line)
    return "".join(out)


def prose(source: str) -> str:
    """What a reader reads as prose: fences, code, Jinja, markup and link targets blanked."""
    text = without_fences(source)
    for pattern in _HIDDEN:
        text = pattern.sub(_blank, text)
    return text


def hand_typed_numbers(source: str) -> list[tuple[int, str]]:
    """(line number, token) for every digit in the prose of ``source`` that is not part of an allowed name."""
    text = _ALLOWED.sub(_blank, prose(source))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [(number, m.group(0)) for m in _DIGIT_TOKEN.finditer(line)]
    return found


def jinja_comment_openers(source: str) -> list[int]:
    """Line numbers where ``{#`` appears outside fenced and inline code."""
    text = without_fences(source)
    text = _HIDDEN[2].sub(_blank, text)
    return [n for n, line in enumerate(text.splitlines(), 1) if "{#" in line]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the checks --------------------------------------------------------------------------------------------------
def test_there_are_pages_to_scan():
    assert len(PAGES) > 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_no_hand_typed_numbers_in_prose(page):
    found = hand_typed_numbers(page.read_text(encoding="utf-8"))
    assert not found, (
        "numbers typed into the prose; take them from a macro (or put code in backticks, or add a *name* to "
        "ALLOWED in tests/test_docs_numbers.py):\n" + "\n".join(f"{_rel(page)}:{n}: {tok}" for n, tok in found))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_no_jinja_comment_opener_outside_code(page):
    lines = jinja_comment_openers(page.read_text(encoding="utf-8"))
    assert not lines, ("'{#' opens a Jinja comment (write '{ #id }' with a space):\n"
                       + "\n".join(f"{_rel(page)}:{n}" for n in lines))


# -- the scanner itself ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", [
    "Trains {{ trainable_params(model, 16) }} parameters.",
    "Use `r=16` or\n\n```python\nLoraConfig(r=16)\n```\n",
    "Stored in bf16, fp32 or 4-bit NF4 on an RTX 4090, an A100 or an H200.",
    "Llama 3.1, Qwen2.5, Gemma 2, Phi-3.5, GPT-2 and Mixtral 8x7B, with ZeRO-3.",
    "## Heading { #faq-x2 }\n[link](page.md#rot-rank-2) <!-- 42 --> <https://example.org/1>",
    '<p id="ref-hu2021" markdown="1">text</p> &#8203;',
    "{% set r = 16 %}{# a comment 1 #}",
    "1. First step\n2. Second step\n   10) nested",
    "Saved in float32, bfloat16 or float16.",
    "~~~\n1\n~~~\n````\n```\n2\n```\n````",
])
def test_scanner_ignores_code_markup_and_names(source):
    assert hand_typed_numbers(source) == []


@pytest.mark.parametrize("source, token", [
    ("LoRA trains 0.5 % of the weights.", "0.5"),
    ("Llama 3.1 8B fits.", "8B"),
    ("Qwen2.5-7B fits.", "-7B"),
    ("It needs 24 GB.", "24"),
    ("A 4090 card.", "4090"),
    ("Rank r = 16.", "16."),
    ("Gemma 2 has 9B parameters", "9B"),
    ("Llama 3.15 is no model", "3.15"),
])
def test_scanner_flags_numbers(source, token):
    assert token in [t for _, t in hand_typed_numbers(source)]


def test_scanner_reports_the_line():
    assert hand_typed_numbers("one\n\n```\n7\n```\nthree 3\n") == [(6, "3")]


def test_jinja_comment_opener_is_found_outside_code_only():
    assert jinja_comment_openers("## Title {#title}\n") == [1]
    assert jinja_comment_openers("`{#x}`\n```\n{#y}\n```\n## Title { #title }\n") == []
