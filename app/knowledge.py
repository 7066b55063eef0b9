"""Loads Markdown articles from ``knowledge/`` into passages that follow their structure.

Each article has YAML front matter (title, author, publisher, and optionally
``exclude_sections``, ``sides`` and ``responsibilities``). A passage is one
paragraph or one bullet; list lead-ins ("Key responsibilities ... include:") are
kept in the file but not made passages, since they say nothing on their own.
Every passage carries character offsets into its file, so ``text`` is exactly
``file[start:end]`` and the UI can quote it verbatim. Optional ``retrieval_hints``
(everyday phrasings of a bullet) are embedded with it but never shown.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from app.errors import KnowledgeError
from app.passages import FOCUS_CODES, Passage

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_BULLET = re.compile(r"^[-*•]\s+")


def _slug(text: str) -> str:
    head = text.split(":", 1)[0]
    return re.sub(r"[^a-z0-9]+", "-", head.lower()).strip("-") or "section"


def _front_matter(path: Path, raw: str) -> tuple[dict, int]:
    """Parse the front matter; return it and the offset where the body starts."""
    if not raw.startswith("---\n"):
        raise KnowledgeError(
            f"{path.name}, line 1: front matter is missing. Start the file with a '---' line, "
            "then title, author and publisher, then another '---' line."
        )
    close = raw.find("\n---\n", 3)
    if close == -1:
        raise KnowledgeError(
            f"{path.name}, line 1: front matter is not closed. Add a '---' line after it."
        )
    block = raw[4 : close + 1]
    try:
        meta = yaml.safe_load(block) or {}
    except yaml.YAMLError as exc:
        # The context mark is where the broken construct starts, which is what a person fixes.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise KnowledgeError(
            f"{path.name}, line {line}: front matter is not valid YAML ({problem}). Fix it."
        ) from None
    if not isinstance(meta, dict) or not meta.get("title"):
        raise KnowledgeError(f"{path.name}, line 2: front matter needs a 'title'. Add one.")
    codes = (meta.get("responsibilities") or {}).values()
    bad = [c for c in codes if c not in FOCUS_CODES]
    if bad:
        raise KnowledgeError(
            f"{path.name}: unknown responsibility code {bad[0]!r}; use one of "
            f"{', '.join(FOCUS_CODES)}."
        )
    return meta, close + 5


def _blocks(raw: str, start: int):
    """Yield (begin, end, lines) for each run of non-blank lines from ``start``."""
    pos = start
    block: list[tuple[int, str]] = []
    for line in raw[start:].splitlines(keepends=True):
        if line.strip():
            block.append((pos, line.rstrip("\r\n")))
        elif block:
            yield block
            block = []
        pos += len(line)
    if block:
        yield block


def load_article(path: Path) -> list[Passage]:
    """The retrievable passages of one Markdown article."""
    raw = path.read_text(encoding="utf-8")
    meta, body = _front_matter(path, raw)
    doc_id = path.stem
    excluded = set(meta.get("exclude_sections") or [])
    sides: dict[str, str] = meta.get("sides") or {}
    codes: dict[str, str] = meta.get("responsibilities") or {}
    hints: dict[str, str] = meta.get("retrieval_hints") or {}
    section = str(meta["title"])
    section_slug = "introduction"
    counts: dict[str, int] = {}
    passages: list[Passage] = []

    def add(begin: int, end: int, kind: str, code: str | None, hint: str = "") -> None:
        counts[section_slug] = counts.get(section_slug, 0) + 1
        passages.append(
            Passage(
                id=f"{doc_id}#{section_slug}-{counts[section_slug]}",
                doc_id=doc_id,
                title=str(meta["title"]),
                author=str(meta.get("author") or ""),
                publisher=str(meta.get("publisher") or ""),
                section=section,
                kind=kind,
                side=sides.get(section, "none"),
                code=code,
                text=raw[begin:end],
                source=path.name,
                start=begin,
                end=end,
                hint=hint,
            )
        )

    first_heading = True
    for block in _blocks(raw, body):
        begin, first = block[0]
        heading = _HEADING.match(first)
        if heading:
            level, text = len(heading.group(1)), heading.group(2)
            if level == 1 and first_heading:
                section, section_slug = str(meta["title"]), "introduction"
            else:
                section, section_slug = text, _slug(text)
            first_heading = False
            block = block[1:]
            if not block:
                continue
        if section in excluded:
            continue
        if all(_BULLET.match(line) for _, line in block):
            for pos, line in block:
                lead = _BULLET.match(line).end()
                title = line[lead:].split(":", 1)[0].strip()
                code = codes.get(title)
                kind = "responsibility" if code else "paragraph"
                add(pos + lead, pos + len(line), kind, code, str(hints.get(title, "")))
            continue
        end = block[-1][0] + len(block[-1][1])
        text = raw[begin:end]
        if text.rstrip().endswith(":"):
            continue  # a list lead-in
        add(begin, end, "paragraph", None)
    return passages


def knowledge_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.md"))


def load_knowledge(folder: Path) -> list[Passage]:
    """All passages of every ``*.md`` article in ``folder``."""
    files = knowledge_files(folder)
    if not files:
        raise KnowledgeError(
            f"No articles found in {folder}: add a Markdown file with front matter there."
        )
    passages: list[Passage] = []
    for path in files:
        passages.extend(load_article(path))
    return passages


def knowledge_hash(folder: Path) -> str:
    """A hash of every article's name and bytes, to tell when the index is stale."""
    digest = hashlib.sha256()
    for path in knowledge_files(folder):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def article_meta(folder: Path) -> dict[str, dict]:
    """Front matter of every article by doc id, for attribution."""
    out = {}
    for path in knowledge_files(folder):
        meta, _ = _front_matter(path, path.read_text(encoding="utf-8"))
        out[path.stem] = meta
    return out
