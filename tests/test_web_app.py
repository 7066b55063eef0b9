"""The chat app through Streamlit's AppTest, with a FakeEngine coach: what a user sees and keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.answer import CoachingAnswer
from app.classifier import Prediction
from app.coach import Coach
from app.engines.fake import FakeEngine
from app.engines.llm import LLMEngine
from app.engines.offline import OfflineEngine
from app.errors import LLMError
from app.index import ArticleIndex
from app.passages import Passage
from app.prompts import list_prompts
from app.settings import Settings, get_settings
from app.store import ConversationStore, open_store
from app.web import runtime
from app.web.export import conversation_markdown
from tests.coach_env import seed_models

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
SITUATION = (
    "Two of my senior engineers stopped talking after a reorg and now hide problems from me."
)
COACHING = (
    "**Rebuild trust first.**\n\n"
    "Meet each engineer alone this week and ask what changed for them in the reorg."
)
QUESTION = "What did each of them lose in the reorg?"
ASK_NEXT = "How do I open that conversation?"
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]<>#|~$+\-=.)])")


def unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


class LocalReading:
    """Stands in for the trained classifier: always reads the situation as management, M2."""

    def get(self) -> LocalReading:
        return self

    def predict(self, text: str, vector=None) -> Prediction:
        return Prediction("management", 0.7, {"management": 0.7}, ["M2"])

    def evidence(self, text: str, verdict: str) -> list:
        return []


@dataclass
class Article:
    settings: Settings
    index: ArticleIndex
    m2: Passage


@pytest.fixture(scope="module")
def article(tmp_path_factory) -> Article:
    settings = Settings(data_dir=tmp_path_factory.mktemp("article-index"))
    seed_models(settings.data_dir)
    index = ArticleIndex(settings)
    index.build()
    (m2,) = index.passages(codes=["M2"])
    return Article(settings, index, m2)


@dataclass
class Harness:
    engine: FakeEngine
    coach: Coach
    article: Article

    @property
    def store(self) -> ConversationStore:
        return open_store()

    def answer(self, **changes) -> CoachingAnswer:
        """A leadership answer citing the M2 passage (always retrieved: the reading's focus)."""
        fields = {
            "verdict": "leadership",
            "confidence": 0.82,
            "focus": ["L3"],
            "summary": "This calls for leadership: building trust.",
            "coaching": COACHING,
            "follow_up_questions": [QUESTION],
            "citations": [self.article.m2.id],
        }
        return CoachingAnswer(**{**fields, **changes})

    def tab(self, **query: str) -> AppTest:
        """A new browser tab (its own session) on the app, optionally with URL query params."""
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update(query)
        return at.run()


@pytest.fixture
def app(tmp_path, monkeypatch, article) -> Harness:
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    engine = FakeEngine()
    coach = Coach(
        engine, settings=article.settings, index=article.index, classifiers=LocalReading()
    )
    runtime.use_coach(lambda: coach)
    yield Harness(engine, coach, article)
    runtime.use_coach(None)
    get_settings.cache_clear()


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text)
    return at.run()


def chat_texts(at: AppTest, role: str) -> list[str]:
    """Everything written in the chat messages of one role, unescaped, in order."""
    out = []
    for message in at.main.chat_message:
        if message.name != role:
            continue
        for kind in ("markdown", "caption", "info", "warning", "error"):
            out += [unescape(e.value) for e in getattr(message, kind)]
    return out


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ---------------------------------------------------------------- chat


def test_first_visit_shows_welcome_and_no_conversations(app: Harness) -> None:
    at = app.tab()
    assert_clean(at)
    assert any("management" in t and "leadership" in t for t in chat_texts(at, "assistant"))
    assert "None yet" in " ".join(c.value for c in at.sidebar.caption)
    assert at.chat_input[0].placeholder.startswith("Describe a situation")


def test_answer_streams_in_with_badge_focus_coaching_and_sources(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    assert_clean(at)

    assert SITUATION in chat_texts(at, "user")
    shown = chat_texts(at, "assistant")
    badge = next(t for t in shown if "-badge[" in t)
    assert "Leadership · 82%" in badge and "Building trust" in badge
    # The streamed text was replaced by the stored answer, not drawn twice.
    assert shown.count(COACHING) == 1
    assert "**Second opinion:** A second, local model reads this as management (0.70)." in shown

    (sources,) = [e for e in at.main.expander if e.label.startswith("Sources")]
    quoted = [unescape(m.value) for m in sources.markdown]
    p = app.article.m2
    assert f"> {p.text}" in quoted
    assert any(p.section in q and p.title in q and p.author in q for q in quoted)
    assert [b.label for b in at.main.button if "reorg" in b.label] == [QUESTION]
    assert len(app.engine.calls) == 1 and app.engine.calls[0].situation == SITUATION


def test_a_rerun_redraws_the_same_answer_without_asking_again(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    before = chat_texts(at, "assistant")
    at.run()
    assert_clean(at)
    assert chat_texts(at, "assistant") == before
    assert len(app.engine.calls) == 1


def test_clicking_a_suggested_question_sends_it_with_the_conversation_so_far(
    app: Harness,
) -> None:
    app.engine.enqueue(
        app.answer(suggested_questions=[ASK_NEXT]),
        app.answer(coaching="Ask them both, separately."),
    )
    at = send(app.tab(), SITUATION)
    next(b for b in at.main.button if b.label == ASK_NEXT).click()
    at.run()
    assert_clean(at)
    assert app.engine.calls[1].situation == ASK_NEXT
    assert [t.text for t in app.engine.calls[1].history] == [SITUATION, COACHING]
    assert chat_texts(at, "user") == [SITUATION, ASK_NEXT]
    assert "Ask them both, separately." in chat_texts(at, "assistant")


def test_clicking_the_coachs_question_puts_it_above_the_input_to_answer(app: Harness) -> None:
    app.engine.enqueue(app.answer(), app.answer(coaching="That changes things."))
    at = send(app.tab(), SITUATION)
    next(b for b in at.main.button if b.label == QUESTION).click()
    at.run()
    assert_clean(at)
    assert len(app.engine.calls) == 1  # nothing was sent on their behalf
    assert any(QUESTION in unescape(i.value) for i in at.info)
    at.chat_input[0].set_value("They each lost a direct report.").run()
    assert_clean(at)
    assert app.engine.calls[1].situation == "They each lost a direct report."
    assert not any(QUESTION in unescape(i.value) for i in at.info)  # answered: gone


def test_clarifying_answer_shows_needs_more_detail(app: Harness) -> None:
    app.engine.enqueue(
        app.answer(
            verdict=None,
            focus=[],
            confidence=0.3,
            coaching="Tell me a little more.",
            follow_up_questions=["Who is involved?", "What have you tried?"],
            citations=[],
        )
    )
    at = send(app.tab(), SITUATION)
    assert_clean(at)
    shown = chat_texts(at, "assistant")
    assert any("Needs more detail" in t for t in shown)
    assert [b.label for b in at.main.button if b.label.endswith("?")] == [
        "Who is involved?",
        "What have you tried?",
    ]
    assert not [e for e in at.main.expander if e.label.startswith("Sources")]


def test_model_and_user_text_is_markdown_never_html(app: Harness) -> None:
    app.engine.enqueue(app.answer(coaching="<script>alert(1)</script> **Plan** the rota."))
    at = send(app.tab(), "<img src=x onerror=alert(1)> our $5 budget *matters*")
    assert_clean(at)
    assert not [m for m in at.markdown if m.proto.allow_html]
    assert "<img src=x onerror=alert(1)> our $5 budget *matters*" in chat_texts(at, "user")


# ---------------------------------------------------------------- uploads


def test_upload_is_previewed_with_its_length_then_coached(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = app.tab()
    assert "up to 5 MB" in at.file_uploader[0].label
    at.file_uploader[0].upload("situation.txt", SITUATION.encode(), "text/plain")
    at.run()
    assert_clean(at)
    assert f"**situation.txt** · {len(SITUATION)} characters" in unescape(at.caption[0].value)
    (preview,) = at.text_area
    assert (preview.label, preview.value) == ("Preview of the extracted text", SITUATION)
    assert not app.engine.calls  # previewed, not sent yet

    next(b for b in at.button if b.label == "Coach this situation").click()
    at.run()
    assert_clean(at)
    assert app.engine.calls[0].situation == SITUATION
    user = chat_texts(at, "user")
    assert any("From **situation.txt**" in t for t in user) and SITUATION in user
    assert at.file_uploader[0].value is None  # cleared for the next file


def test_truncated_upload_says_so_in_the_preview_and_the_answer(app: Harness, monkeypatch) -> None:
    monkeypatch.setenv("COACH_MAX_INPUT_CHARS", "100")
    get_settings.cache_clear()
    app.engine.enqueue(app.answer())
    long_text = ("Our night shift keeps missing its handover. " * 10).strip()
    at = app.tab()
    at.file_uploader[0].upload("long.md", long_text.encode(), "text/markdown")
    at.run()
    notice = f"long.md was {len(long_text):,} characters; the coach read the first 100."
    assert notice in [unescape(w.value) for w in at.warning]
    assert f"of {len(long_text):,}" in unescape(at.caption[0].value)
    next(b for b in at.button if b.label == "Coach this situation").click()
    at.run()
    assert notice in chat_texts(at, "assistant")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "broken.pdf",
            b"%PDF-1.4 this is not really a pdf",
            "broken.pdf could not be read as a PDF",
        ),
        ("empty.txt", b"   \n\n  ", "empty.txt contains no text"),
        ("big.txt", b"x" * 2048, "big.txt is 2 KB; the limit is 1 KB"),
    ],
)
def test_bad_upload_shows_a_plain_error(
    app: Harness, monkeypatch, name: str, data: bytes, message: str
) -> None:
    monkeypatch.setenv("COACH_MAX_UPLOAD_BYTES", "1024")
    get_settings.cache_clear()
    at = app.tab()
    assert "up to 1 KB" in at.file_uploader[0].label
    at.file_uploader[0].upload(name, data, "application/octet-stream")
    at.run()
    assert_clean(at)
    assert [e.value for e in at.error if message in e.value]
    assert not [b for b in at.button if b.label == "Coach this situation"]
    assert not app.engine.calls


# ---------------------------------------------------------------- failures


def test_engine_failure_keeps_the_message_and_retry_sends_it_again(app: Harness) -> None:
    app.engine.enqueue(
        LLMError("The LLM server did not answer in time: try again, or use the offline engine."),
        app.answer(),
    )
    at = send(app.tab(), SITUATION)
    assert_clean(at)
    assert SITUATION in chat_texts(at, "user")
    assert [e.value for e in at.error] == [
        "The LLM server did not answer in time: try again, or use the offline engine."
    ]
    (conversation,) = app.store.list_conversations()
    (stored,) = app.store.messages(conversation.id)
    assert (stored.text, stored.status) == (SITUATION, "failed")

    at.button(key=f"retry-{stored.id}").click()
    at.run()
    assert_clean(at)
    assert not at.error
    assert chat_texts(at, "user") == [SITUATION]
    assert COACHING in chat_texts(at, "assistant")
    assert [c.situation for c in app.engine.calls] == [SITUATION, SITUATION]
    assert [m.role for m in app.store.messages(conversation.id)] == ["user", "assistant"]


def test_unexpected_engine_crash_is_shown_in_plain_words(app: Harness) -> None:
    app.engine.enqueue(RuntimeError("socket exploded at 0x7f"))
    at = send(app.tab(), SITUATION)
    assert_clean(at)
    (error,) = at.error
    assert "unexpected problem (RuntimeError)" in error.value
    assert "0x7f" not in error.value
    assert [b for b in at.button if b.label == "Retry"]


# ---------------------------------------------------------------- feedback


def test_thumbs_and_a_correction_are_stored_with_the_answer(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    (conversation,) = app.store.list_conversations()
    answer_id = app.store.messages(conversation.id)[1].id

    at.feedback[0].set_value(0).run()
    assert app.store.feedback(answer_id).rating == 0

    at.selectbox(key=f"correct-verdict-{answer_id}").set_value("both")
    at.multiselect(key=f"correct-focus-{answer_id}").set_value(["M2", "L3"])
    at.text_area(key=f"correct-comment-{answer_id}").input("The rota is half of it.")
    next(b for b in at.button if b.label == "Save correction").click()
    at.run()
    assert_clean(at)
    saved = app.store.feedback(answer_id)
    assert (saved.rating, saved.corrected_verdict, saved.corrected_focus, saved.comment) == (
        0,
        "both",
        ["M2", "L3"],
        "The rota is half of it.",
    )
    assert any(
        "Your correction: **Both** (Organizing resources, Building trust) — “The rota is half of it.”"
        in unescape(c.value)
        for c in at.caption
    )

    reopened = app.tab(c=conversation.id)
    assert reopened.feedback[0].value == 0


def test_a_correction_whose_focus_does_not_fit_the_verdict_is_refused(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    (conversation,) = app.store.list_conversations()
    answer_id = app.store.messages(conversation.id)[1].id
    at.selectbox(key=f"correct-verdict-{answer_id}").set_value("leadership")
    at.multiselect(key=f"correct-focus-{answer_id}").set_value(["M2"])
    next(b for b in at.button if b.label == "Save correction").click()
    at.run()
    assert [e.value for e in at.error] == [
        "For Leadership, pick only leadership focus areas, or none."
    ]
    assert app.store.feedback(answer_id) is None


# ---------------------------------------------------------------- conversations


def test_a_stored_conversation_can_be_reopened_from_the_sidebar(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    send(app.tab(), SITUATION)

    later = app.tab()  # a new session, as after an app restart
    assert SITUATION not in chat_texts(later, "user")
    (entry,) = [b for b in later.sidebar.button if b.key and b.key.startswith("open-")]
    assert entry.label.startswith(SITUATION[:40]) and "Today" in entry.label
    entry.click()
    later.run()
    assert_clean(later)
    assert SITUATION in chat_texts(later, "user")
    assert COACHING in chat_texts(later, "assistant")
    assert len(app.engine.calls) == 1


def test_reloading_the_page_reopens_the_conversation_in_the_url(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    conversation_id = at.query_params["c"]
    reloaded = app.tab(c=conversation_id)
    assert SITUATION in chat_texts(reloaded, "user")
    assert any("Leadership · 82%" in t for t in chat_texts(reloaded, "assistant"))


def test_new_rename_and_delete(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    (conversation,) = app.store.list_conversations()

    at.sidebar.text_input(key=f"rename-{conversation.id}").input("Engineers not talking")
    at.sidebar.button(key=f"save-title-{conversation.id}").click()
    at.run()
    assert app.store.conversation(conversation.id).title == "Engineers not talking"
    assert at.sidebar.button(key=f"open-{conversation.id}").label.startswith(
        "Engineers not talking"
    )

    next(b for b in at.sidebar.button if b.label == "New conversation").click()
    at.run()
    assert not chat_texts(at, "user")
    assert "c" not in at.query_params

    at.sidebar.button(key=f"open-{conversation.id}").click()
    at.run()
    at.sidebar.button(key=f"delete-{conversation.id}").click()
    at.run()
    assert_clean(at)
    assert app.store.list_conversations() == []
    assert not chat_texts(at, "user")


def test_two_tabs_hold_two_conversations_without_mixing(app: Harness) -> None:
    app.engine.enqueue(app.answer(coaching="Answer for tab one."))
    app.engine.enqueue(app.answer(coaching="Answer for tab two."))
    one, two = app.tab(), app.tab()
    send(one, "Tab one: our rota is a mess.")
    send(two, "Tab two: nobody trusts the new director.")
    one.run()
    assert chat_texts(one, "user") == ["Tab one: our rota is a mess."]
    assert "Answer for tab one." in chat_texts(one, "assistant")
    assert "Answer for tab two." not in chat_texts(one, "assistant")
    assert chat_texts(two, "user") == ["Tab two: nobody trusts the new director."]
    assert len(app.store.list_conversations()) == 2
    assert one.query_params["c"] != two.query_params["c"]


def test_markdown_download_has_verdicts_and_sources(app: Harness) -> None:
    app.engine.enqueue(app.answer())
    at = send(app.tab(), SITUATION)
    (download,) = at.sidebar.get("download_button")
    assert download.proto.label == "Download as Markdown"
    (conversation,) = app.store.list_conversations()
    text = conversation_markdown(
        conversation, app.store.messages(conversation.id), app.coach.sources
    )
    p = app.article.m2
    assert f"> {SITUATION}" in text
    assert "Verdict: Leadership (82%)" in text
    assert "Focus: Building trust (L3)" in text
    assert COACHING in text
    assert f'{p.section} — "{p.title}" ({p.author}, {p.publisher})' in text
    assert f"  > {p.text}" in text
    assert f"- {QUESTION}" in text


# ---------------------------------------------------------------- sidebar


def test_sidebar_lists_prompt_versions_and_sends_the_chosen_one(app: Harness) -> None:
    refs = list_prompts("coach")
    assert len(refs) >= 2
    app.engine.enqueue(app.answer())
    at = app.tab()
    picker = at.sidebar.selectbox(key="prompt_ref")
    assert list(picker.options) == refs
    picker.set_value(refs[-1]).run()
    send(at, SITUATION)
    assert app.engine.calls[0].prompt == refs[-1]


def test_sidebar_says_offline_mode_and_how_to_connect_an_llm(app: Harness, article) -> None:
    offline = Coach(
        OfflineEngine(article.settings),
        settings=article.settings,
        index=article.index,
        classifiers=LocalReading(),
    )
    runtime.use_coach(lambda: offline)
    at = app.tab()
    sidebar = " ".join(unescape(e.value) for e in [*at.sidebar.markdown, *at.sidebar.caption])
    assert "Offline mode" in sidebar
    assert "OPENAI_API_KEY" in sidebar and "COACH_LLM_BASE_URL" in sidebar


def test_sidebar_shows_llm_model_and_host_but_never_the_key(app: Harness, article) -> None:
    settings = article.settings.model_copy(
        update={
            "llm_api_key": "sk-very-secret",
            "llm_base_url": "http://user:hunter2@127.0.0.1:9/v1",
            "llm_model": "tiny-chat",
        }
    )
    llm = Coach(
        LLMEngine(settings), settings=settings, index=article.index, classifiers=LocalReading()
    )
    runtime.use_coach(lambda: llm)
    at = app.tab()
    sidebar = " ".join(unescape(e.value) for e in [*at.sidebar.markdown, *at.sidebar.caption])
    assert "tiny-chat" in sidebar and "127.0.0.1:9" in sidebar
    assert "Offline mode" not in sidebar
    assert "sk-very-secret" not in sidebar and "hunter2" not in sidebar


# ---------------------------------------------------------------- hostile files and text


def _hostile(name: str) -> bytes:
    from tests.test_uploads import control_heavy, elf_binary

    return {"program.txt": elf_binary, "capture.txt": control_heavy}.get(
        name, lambda: b"a" * 5_000_001
    )()


@pytest.mark.parametrize("name", ["program.txt", "capture.txt", "big.txt"])
def test_hostile_upload_gets_the_same_sentence_as_the_cli(app: Harness, name: str) -> None:
    from tests.test_uploads import NOT_TEXT, TOO_BIG

    at = app.tab()
    assert "up to 5 MB" in at.file_uploader[0].label
    at.file_uploader[0].upload(name, _hostile(name), "text/plain")
    at.run()
    assert_clean(at)
    expected = TOO_BIG if name == "big.txt" else f"{name} {NOT_TEXT}"
    assert [e.value for e in at.error] == [expected]
    assert not at.text_area and not [b for b in at.button if b.label == "Coach this situation"]
    assert not app.engine.calls


def test_huge_docx_upload_is_read_up_to_the_limit_with_the_notice(
    app: Harness, tmp_path, monkeypatch
) -> None:
    from tests.test_uploads import make_huge_docx

    monkeypatch.setenv("COACH_MAX_INPUT_CHARS", "2000")  # a short situation keeps the run quick
    get_settings.cache_clear()
    app.engine.enqueue(app.answer())
    data = make_huge_docx(tmp_path / "handover.docx").read_bytes()
    at = app.tab()
    at.file_uploader[0].upload("handover.docx", data, "application/octet-stream")
    at.run()
    assert_clean(at)
    notice = "handover.docx is too long to read in full; the coach read the first 2,000 characters."
    assert [unescape(w.value) for w in at.warning] == [notice]
    assert "(the file is longer)" in unescape(at.caption[0].value)
    (preview,) = at.text_area
    previewed = preview.value
    assert 1_950 < len(previewed) <= 2_000 and "THE-END" not in previewed
    next(b for b in at.button if b.label == "Coach this situation").click()
    at.run()
    assert_clean(at)
    assert app.engine.calls[0].situation == previewed
    assert notice in chat_texts(at, "assistant")


def _stored_user_texts(app: Harness) -> list[str]:
    (conversation,) = app.store.list_conversations()
    return [m.text for m in app.store.messages(conversation.id) if m.role == "user"]


def test_typed_bidi_and_zero_width_characters_are_never_stored_or_shown(app: Harness) -> None:
    from tests.test_uploads import PLANTED, SPOOFED, SPOOFED_CLEAN

    app.engine.enqueue(app.answer())
    at = send(app.tab(), SPOOFED)
    assert_clean(at)
    assert _stored_user_texts(app) == [SPOOFED_CLEAN]
    assert app.engine.calls[0].situation == SPOOFED_CLEAN
    assert SPOOFED_CLEAN in chat_texts(at, "user")
    shown = "".join(chat_texts(at, "user") + chat_texts(at, "assistant"))
    assert not set(shown) & PLANTED
    assert app.store.list_conversations()[0].title.startswith("Our deadlines slip")


def test_an_answer_quoting_the_message_back_quotes_it_cleaned(app: Harness, article) -> None:
    from tests.test_uploads import PLANTED, SPOOFED, SPOOFED_CLEAN, EchoEngine

    echo = Coach(
        EchoEngine(), settings=article.settings, index=article.index, classifiers=LocalReading()
    )
    runtime.use_coach(lambda: echo)
    at = send(app.tab(), SPOOFED)
    assert_clean(at)
    assert _stored_user_texts(app) == [SPOOFED_CLEAN]
    (conversation,) = app.store.list_conversations()
    (answer,) = [m.answer for m in app.store.messages(conversation.id) if m.answer]
    assert answer.coaching == f'You said "{SPOOFED_CLEAN}".'
    assert not set("".join(chat_texts(at, "assistant"))) & PLANTED


def test_bidi_characters_in_an_uploaded_file_and_its_name_are_stripped(app: Harness) -> None:
    from tests.test_uploads import PLANTED, SPOOFED, SPOOFED_CLEAN

    app.engine.enqueue(app.answer())
    at = app.tab()
    at.file_uploader[0].upload("notes\u202etxt.md", SPOOFED.encode(), "text/markdown")
    at.run()
    assert_clean(at)
    (preview,) = at.text_area
    assert preview.value == SPOOFED_CLEAN
    assert "**notestxt.md**" in unescape(at.caption[0].value)
    next(b for b in at.button if b.label == "Coach this situation").click()
    at.run()
    assert_clean(at)
    assert _stored_user_texts(app) == [SPOOFED_CLEAN]
    (conversation,) = app.store.list_conversations()
    (stored,) = [m for m in app.store.messages(conversation.id) if m.role == "user"]
    assert stored.source == "notestxt.md"
    assert not set("".join(chat_texts(at, "user"))) & PLANTED


def test_a_crisis_is_answered_with_help_first_under_a_safety_badge(app):
    at = send(
        app.tab(),
        "One of my drivers told me this morning he has a plan to kill himself tonight. "
        "Who should take his route tomorrow?",
    )
    assert_clean(at)
    shown = chat_texts(at, "assistant")
    assert any("Safety first" in t for t in shown)
    assert not any("Needs more detail" in t for t in shown)
    assert any("988" in t for t in shown)
    assert app.engine.calls == []  # the guard answered; the engine never saw it


def test_delete_all_my_data_removes_every_conversation(app: Harness) -> None:
    app.engine.enqueue(app.answer(), app.answer())
    at = send(app.tab(), SITUATION)
    at.button(key="delete-all-my-data").click().run()  # a fresh conversation, then everything
    assert_clean(at)
    assert app.store.list_conversations() == []
    assert chat_texts(at, "user") == []


def test_conversations_past_retention_are_deleted_once_a_day(app: Harness, monkeypatch) -> None:
    from datetime import UTC, datetime, timedelta

    from app.settings import Settings
    from app.web.runtime import purge_expired

    store = app.store
    old = store.create_conversation("An old situation")
    store.create_conversation("A recent situation")
    with store._write() as conn:  # age the first one by 40 days
        from sqlalchemy import update

        from app.store_schema import conversations

        conn.execute(
            update(conversations)
            .where(conversations.c.id == old.id)
            .values(updated_at=(datetime.now(UTC) - timedelta(days=40)).isoformat())
        )
    settings = Settings(retention_days=30)
    assert purge_expired(store, settings) == 1
    assert [c.title for c in store.list_conversations()] == ["A recent situation"]
    assert purge_expired(store, settings) == 0  # at most once a day
    assert purge_expired(store, Settings(retention_days=None)) == 0
