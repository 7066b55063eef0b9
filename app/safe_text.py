"""Text from a person or a model made safe for Streamlit's Markdown: nothing in it can reach out.

Streamlit renders Markdown with images, KaTeX, its own directives (``:red[...]``,
``:material/...:``) and links of any scheme. Text we did not write goes through one of
two functions before any ``st.markdown``, ``st.caption``, ``st.info`` or widget label,
and into Markdown exports:

- ``safe_markdown`` keeps ordinary Markdown (bold, lists, quotes, tables, http(s) links,
  bare URLs) and neutralises the rest: an image becomes the text ``[image: alt]``, raw
  HTML and ``$`` are escaped, ``:name[`` directives and Streamlit's icon codes are
  broken, and a link to anything but http(s) is shown as plain text.
- ``plain_markdown`` shows text exactly as written: every Markdown character escaped.

Both work on the whole text, never chunk by chunk: an image split across two streamed
chunks is only an image once they are joined.
"""

from __future__ import annotations

import re

# Between the colon and the name, so Streamlit's icon codes no longer match; invisible.
WORD_JOINER = "\u2060"

# Streamlit turns ``:material/x:`` (before parsing, so a backslash does not help),
# ``:material_x:`` and ``:streamlit:`` (in parsed text, so ``\_`` and ``&#95;`` do not
# help either) into icons and a logo image.
_ICON = r":(?=material\\?[/_]|streamlit\\?:)"
# An entity is decoded after parsing, so ``&#58;`` would spell an icon code's colon.
_ENTITY = r"&(?=\#?[A-Za-z0-9]+;)"
# A directive (``:red[x]``, ``:help[x]``, ``:small``): a colon right before a letter.
_DIRECTIVE = r":(?=[A-Za-z])"
# A link whose destination is http(s); CommonMark allows spaces and one line break first.
_WEB_DESTINATION = re.compile(r"[ \t]*(?:\r?\n[ \t]*)?https?://", re.IGNORECASE)

_IMAGE = re.compile(
    r"""
    !\[(?P<alt>[^\[\]\n]*)\]\(
      [ \t]*(?:<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)
      (?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*
    \)
    """,
    re.VERBOSE,
)
_MARKDOWN_TOKEN = re.compile(
    r"""
      (?P<icon>\\?"""
    + _ICON
    + r""")
    | (?P<escape>\\[!-/:-@\[-`{-~])   # already escaped: kept as it is
    | (?P<image>!\[)                  # an image (an inline one is matched first, below)
    | (?P<definition>\]:)             # a reference definition, [x]: javascript:...
    | (?P<link>\]\()                  # a link's destination follows
    | (?P<escaped><|\$|"""
    + _ENTITY
    + r""")                          # raw HTML, an autolink, KaTeX, an entity
    | (?P<directive>"""
    + _DIRECTIVE
    + r""")
    """,
    re.VERBOSE,
)
_PLAIN_TOKEN = re.compile(
    rf"(?P<icon>{_ICON})|(?P<char>{_DIRECTIVE}|{_ENTITY}|[\\`*_{{}}\[\]<>#|~$])"
)
_PLAIN_LINE_START = re.compile(r"^(\s*)([-+=])|^(\s*\d+)([.)])", re.MULTILINE)


def safe_markdown(text: str) -> str:
    """``text`` as Markdown that can fetch, run and restyle nothing; ordinary Markdown stays."""
    out: list[str] = []
    at = 0
    while m := _MARKDOWN_TOKEN.search(text, at):
        out.append(text[at : m.start()])
        at = m.end()
        kind = m.lastgroup
        if kind == "escape":
            out.append(m[0])
        elif kind == "image":
            image = _IMAGE.match(text, m.start())
            if image:  # the whole image goes, so nothing inside it is left to parse
                alt = image["alt"].strip()
                out.append(r"\[image" + (f": {plain_markdown(alt)}" if alt else "") + r"\]")
                at = image.end()
            else:
                out.append(r"!\[")
        elif kind == "definition":
            out.append(r"]\:")
        elif kind == "link":
            out.append("](" if _WEB_DESTINATION.match(text, at) else r"]\(")
        elif kind == "icon":
            out.append(":" + WORD_JOINER)
        else:  # "<", "$", "&" or a directive's colon
            out.append("\\" + m[0])
    out.append(text[at:])
    return "".join(out)


def _plain_token(m: re.Match) -> str:
    return ":" + WORD_JOINER if m.lastgroup == "icon" else "\\" + m[0]


def plain_markdown(text: str) -> str:
    """``text`` shown exactly as written: every Markdown-active character escaped."""
    escaped = _PLAIN_TOKEN.sub(_plain_token, text)
    return _PLAIN_LINE_START.sub(
        lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[3]}\\{m[4]}", escaped
    )
