"""Text from a person or a model made safe for Streamlit's Markdown (``app.safe_text``)."""

from __future__ import annotations

import itertools
import re

import pytest

from app.safe_text import WORD_JOINER, plain_markdown, safe_markdown

BEACON = "http://198.51.100.7/beacon.png"
WJ = WORD_JOINER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Images become text and fetch nothing.
        (f"![x]({BEACON})", r"\[image: x\]"),
        (f'see ![a chart]( {BEACON} "title") here', r"see \[image: a chart\] here"),
        (f"![]({BEACON})", r"\[image\]"),
        ("![x](<http://h/a b.png>)", r"\[image: x\]"),
        ("![x](http://h/a_(1).png)", r"\[image: x\]"),
        ("![*b*](http://h/a.png)", r"\[image: \*b\*\]"),
        ("![x][ref]", r"!\[x][ref]"),  # a reference image: no image, and no definition either
        ("![x]", r"!\[x]"),
        (r"\![x](http://h/a.png)", r"\![x](http://h/a.png)"),  # already escaped: a link
        # Raw HTML and angle-bracket autolinks are escaped.
        (
            "<img src=http://198.51.100.7/a.png onerror=alert(1)>",
            r"\<img src=http://198.51.100.7/a.png onerror=alert(1)>",
        ),
        ("<script>alert(1)</script>", r"\<script>alert(1)\</script>"),
        ("<javascript:alert(1)>", r"\<javascript\:alert(1)>"),
        (r"\<b>", r"\<b>"),
        (r"\\<b>", r"\\\<b>"),
        # KaTeX never starts.
        ("costs $5 and $10", r"costs \$5 and \$10"),
        ("$$x^2$$", r"\$\$x^2\$\$"),
        # Streamlit directives and icons are broken; emoji shortcodes still work.
        (":red[alert]", r"\:red[alert]"),
        (":blue-background[x]", r"\:blue-background[x]"),
        (':color[x]{foreground="red"}', r'\:color[x]{foreground="red"}'),
        (":help[tip] and :small", r"\:help[tip] and \:small"),
        (":::red\nx\n:::", "::\\:red\nx\n:::"),
        (":material/home:", f":{WJ}material/home:"),
        (r"\:material/home:", f":{WJ}material/home:"),
        (":material_home:", f":{WJ}material_home:"),
        (r":material\_home:", f":{WJ}material\\_home:"),
        ("&#58;material_home&#58;", r"\&#58;material_home\&#58;"),
        (":streamlit:", f":{WJ}streamlit:"),
        (":smile: :+1:", r"\:smile: :+1:"),  # still an emoji once parsed
        # Links to anything but http(s) become text.
        ("[click](javascript:alert(1))", r"[click]\(javascript\:alert(1))"),
        ("[x](  JavaScript:alert(1))", r"[x]\(  JavaScript\:alert(1))"),
        ("[x](data:text/html,hi)", r"[x]\(data\:text/html,hi)"),
        ("[x](file:///etc/passwd)", r"[x]\(file:///etc/passwd)"),
        ("[x](vbscript:msgbox)", r"[x]\(vbscript\:msgbox)"),
        ("[x](javascript&#58;alert(1))", r"[x]\(javascript\&#58;alert(1))"),
        ("[x](<javascript:alert(1)>)", r"[x]\(\<javascript\:alert(1)>)"),
        ("[x](/relative)", r"[x]\(/relative)"),
        ("[x]: javascript:alert(1)\n\n[x]", "[x]\\: javascript\\:alert(1)\n\n[x]"),
        ("[x]:http://h/a.png", r"[x]\:http://h/a.png"),
        # Ordinary Markdown is left alone.
        ("[the article](https://example.com/a)", "[the article](https://example.com/a)"),
        ("[x](\n  HTTP://example.com)", "[x](\n  HTTP://example.com)"),
        (
            "see https://example.com or www.example.com",
            "see https://example.com or www.example.com",
        ),
        (
            "**Plan** the _rota_:\n\n- one\n- two\n\n1. first\n\n> a quote\n\n| a | b |\n|---|---|",
            "**Plan** the _rota_:\n\n- one\n- two\n\n1. first\n\n> a quote\n\n| a | b |\n|---|---|",
        ),
        ("Meet at 10:30, then: talk.", "Meet at 10:30, then: talk."),
        ("R&D, Q&A, 3 < 4 > 2", r"R&D, Q&A, 3 \< 4 > 2"),
        ("", ""),
    ],
)
def test_safe_markdown(text: str, expected: str) -> None:
    assert safe_markdown(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*not bold* [x](y) <b> $5", r"\*not bold\* \[x\](y) \<b\> \$5"),
        ("- a list?\n1. no", "\\- a list?\n1\\. no"),
        (f"![x]({BEACON})", rf"!\[x\]({BEACON})"),
        (":red[x] :material/home: :streamlit:", rf"\:red\[x\] :{WJ}material/home: :{WJ}streamlit:"),
        (":material_home:", f":{WJ}material\\_home:"),
        ("&#58;material_home:", r"\&\#58;material\_home:"),
        ("a_b & c", r"a\_b & c"),
    ],
)
def test_plain_markdown(text: str, expected: str) -> None:
    assert plain_markdown(text) == expected


# ------------------------------------------------ what a CommonMark parser makes of the output

markdown_it = pytest.importorskip("markdown_it")
PIECES = [
    "![x](",
    BEACON,
    ")",
    "[",
    "]",
    "(",
    "javascript:alert(1)",
    "<img src=",
    ">",
    "\\",
    "`",
    "!",
    "]: ",
    "&#58;",
    " ",
    "\n",
    "$",
    "data:x",
]


def _walk(tokens):
    for token in tokens:
        yield token
        yield from _walk(token.children or [])


def _parser():
    parser = markdown_it.MarkdownIt("commonmark")
    parser.validateLink = lambda url: True  # show every link, javascript: ones included
    return parser


PARSER = _parser()


def rendered_problems(markdown: str) -> list[str]:
    """Images, raw HTML and non-http(s) links in what a CommonMark parser reads."""
    problems = []
    for token in _walk(PARSER.parse(markdown)):
        if token.type in ("image", "html_inline", "html_block"):
            problems.append(token.type)
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            if not re.match(r"https?://", href, re.IGNORECASE):
                problems.append(f"link to {href}")
    return problems


def test_the_parser_finds_the_problems_this_test_looks_for() -> None:
    raw = f"![x]({BEACON}) <b>x</b> [c](javascript:alert(1))\n\n[d]: data:x\n\n[d]"
    assert rendered_problems(raw) == [
        "image",
        "html_inline",
        "html_inline",
        "link to javascript:alert(1)",
        "link to data:x",
    ]


@pytest.mark.parametrize("size", [2, 3])
def test_no_combination_of_pieces_renders_an_image_html_or_a_bad_link(size: int) -> None:
    """Every sequence of ``size`` hostile pieces: the escaped text parses to nothing active."""
    checked = 0
    for combo in itertools.product(PIECES, repeat=size):
        text = "".join(combo)
        safe = safe_markdown(text)
        assert rendered_problems(safe) == [], (text, safe)
        assert rendered_problems(plain_markdown(text)) == [], text
        assert not re.search(r"(?<!\\)(?:\\\\)*\$", safe), (text, safe)
        checked += 1
    assert checked == len(PIECES) ** size


@pytest.mark.parametrize(
    "text",
    [
        f"Look: ![x]({BEACON}) and <img src={BEACON}> and [click](javascript:alert(1))",
        f"[![x]({BEACON})](javascript:alert(1))",
        f"[a [b] c](javascript:x) ![a]({BEACON} 'title') [ok](https://ok.example)",
        f"`code ![x]({BEACON})` then ![y]({BEACON})",
        f"[x]\n(javascript:1) [y]( \n javascript:1)\n\n[r]: {BEACON}\n![r]\n[r]",
    ],
)
def test_hostile_text_parses_to_nothing_active(text: str) -> None:
    assert rendered_problems(text)  # the raw text would be dangerous
    assert rendered_problems(safe_markdown(text)) == []
    assert rendered_problems(plain_markdown(text)) == []


def test_ordinary_markdown_still_parses_to_a_link_and_bold() -> None:
    tokens = list(_walk(PARSER.parse(safe_markdown("**Plan** [it](https://example.com/a)"))))
    assert [t.attrGet("href") for t in tokens if t.type == "link_open"] == ["https://example.com/a"]
    assert any(t.type == "strong_open" for t in tokens)
