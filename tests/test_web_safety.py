"""Nothing a person types or a model writes is drawn as an image, HTML, KaTeX, a Streamlit
directive or a non-http(s) link, on the page (AppTest) or in the Markdown download."""

from __future__ import annotations

import re

import pytest

from app.web.export import conversation_markdown
from tests.test_safe_text import rendered_problems
from tests.test_web_app import Harness, app, article, send  # noqa: F401 (fixtures)

BEACON = "http://198.51.100.7/beacon.png"
HOSTILE = (
    f"![x]({BEACON}) <img src=http://198.51.100.7/a.png onerror=alert(1)> "
    "[click](javascript:alert(1)) :red[red] :material/home: $x^2$"
)
# What would be active if it reached st.markdown as it is.
ACTIVE = [
    re.compile(r"(?<!\\):red\["),
    re.compile(r":material/home:"),
    re.compile(r"(?<![\\])\$"),
]


@pytest.fixture
def warm(app: Harness) -> Harness:  # noqa: F811 (the fixture imported above)
    """The app with its coach warmed up: the first question then fits AppTest's timeout."""
    app.coach.warm_up()
    return app


def drawn_markdown(at) -> list[str]:
    """Every Markdown body and label on the page, main area and sidebar."""
    out = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success"):
        out += [e.value for e in at.get(kind)]
    out += [b.label for b in at.button]
    out += [e.label for e in at.expander]
    return out


def problems(markdown: str) -> list[str]:
    found = rendered_problems(markdown)
    found += [p.pattern for p in ACTIVE if p.search(markdown)]
    return found


def test_hostile_text_from_the_user_and_the_model_is_drawn_inert(warm: Harness) -> None:
    warm.engine.enqueue(
        warm.answer(
            summary=f"Summary {HOSTILE}",
            coaching=f"**Plan** the rota. {HOSTILE}\n\n[the article](https://example.com/a)",
            follow_up_questions=[f"Question {HOSTILE}?"],
        )
    )
    at = send(warm.tab(), f"My team lead wrote this in the planning meeting: {HOSTILE}")
    assert not at.exception, [e.value for e in at.exception]
    drawn = drawn_markdown(at)
    assert any("**Plan** the rota." in d for d in drawn)  # ordinary Markdown still works
    assert any("[the article](https://example.com/a)" in d for d in drawn)
    hostile_bodies = [d for d in drawn if "198.51.100.7" in d or "alert" in d]
    assert len(hostile_bodies) >= 4  # user text, title, summary, coaching, question
    for body in drawn:
        assert problems(body) == [], body
    assert problems(HOSTILE)  # the checks do see what they look for


def test_the_markdown_download_is_inert(warm: Harness) -> None:
    warm.engine.enqueue(warm.answer(coaching=f"Do this. {HOSTILE}", summary=HOSTILE))
    send(warm.tab(), f"My team lead wrote this in the planning meeting: {HOSTILE}")
    (conversation,) = warm.store.list_conversations()
    text = conversation_markdown(
        conversation, warm.store.messages(conversation.id), warm.coach.sources
    )
    assert text.count("198.51.100.7") >= 2 and "Do this." in text
    assert problems(text) == []
