"""The web app with the LLM engine against misbehaving servers, and stopping an answer.

Through Streamlit's AppTest with a real ``LLMEngine`` on the test server: a generation
that never ends is cut at the deadline with a plain note. ``chat.Reply`` closed
mid-stream (what a Stop click does to the running script) keeps the partial answer,
marked stopped, and the server sees the connection close.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from app.coach import Coach
from app.engines.llm import LLMEngine
from app.engines.offline import OfflineEngine
from app.index import ArticleIndex
from app.settings import Settings, get_settings
from app.store import open_store
from app.web import chat, runtime
from tests.coach_env import seed_models
from tests.openai_server import DEFAULT_REPLY, OpenAIServer, forever
from tests.test_web_app import APP, LocalReading, chat_texts

SITUATION = "Nobody knows who owns which task, so our releases slip every single week."
OPENING = DEFAULT_REPLY.rsplit("\n---\n", 1)[0] + "\n"  # header and coaching, no trailer


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> ArticleIndex:
    settings = Settings(data_dir=tmp_path_factory.mktemp("web-bounds-index"))
    seed_models(settings.data_dir)
    built = ArticleIndex(settings)
    built.build()
    return built


@pytest.fixture
def llm_coach(tmp_path, monkeypatch, index, openai_server: OpenAIServer) -> Iterator[Coach]:
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    settings = index.settings.model_copy(
        update={
            "llm_base_url": openai_server.base_url,
            "llm_model": "test-model",
            "llm_deadline": 2.0,
        }
    )
    engine = LLMEngine(settings, fallback=OfflineEngine(settings))
    engine.warm_up()
    coach = Coach(engine, settings=settings, index=index, classifiers=LocalReading())
    runtime.use_coach(lambda: coach)
    yield coach
    runtime.use_coach(None)
    get_settings.cache_clear()


def test_a_never_ending_answer_ends_in_the_page_with_a_plain_note(
    llm_coach: Coach, openai_server: OpenAIServer
) -> None:
    openai_server.enqueue(forever(OPENING, filler="and more ", interval=0.01))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.chat_input[0].set_value(SITUATION)
    at.run()

    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(chat_texts(at, "assistant"))
    assert "This is mostly **management**" in shown and "and more and more" in shown
    assert "was still writing after 2 s" in shown and "COACH_LLM_DEADLINE" in shown


def stored_turn(text: str = SITUATION):
    store = open_store()
    conversation = store.create_conversation(text)
    return store, store.add_user_message(conversation.id, text)


def test_closing_the_reply_mid_stream_keeps_the_partial_answer_marked_stopped(
    llm_coach: Coach, openai_server: OpenAIServer
) -> None:
    openai_server.enqueue(forever(OPENING, filler="and more ", interval=0.01))
    store, turn = stored_turn()
    reply = chat.Reply(llm_coach, store, turn, None)
    chunks = reply.chunks()
    shown = ""
    for chunk in chunks:
        shown += chunk
        if "and more and more" in shown:
            break
    chunks.close()  # what the interrupted script run does (turns.streamed)

    assert reply.stored is not None and reply.stored.role == "assistant"
    answer = reply.stored.answer
    assert answer.meta.cut_off == "stopped" and answer.verdict is None
    assert answer.coaching == shown.strip()
    assert any(n.startswith("Stopped — partial answer") for n in answer.notices)
    assert store.message(turn.id).status == "answered"
    assert chat.settled(turn.id, timeout=0)  # a rerun does not wait for it any more
    end = time.monotonic() + 10
    while openai_server.client_gone < 1 and time.monotonic() < end:
        time.sleep(0.05)
    assert openai_server.client_gone == 1, "the LLM server kept generating"

    # Reopened, the page shows it as a stopped partial answer.
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["c"] = turn.conversation_id
    at.run()
    shown_again = " ".join(chat_texts(at, "assistant"))
    assert "Stopped — partial answer" in shown_again and "This is mostly" in shown_again


def test_stopped_before_any_text_the_message_stays_unanswered(llm_coach: Coach) -> None:
    store, turn = stored_turn()
    reply = chat.Reply(llm_coach, store, turn, None)
    reply.chunks().close()  # the run was stopped before the coach was even asked
    assert reply.stored is None and store.message(turn.id).status == "pending"

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["c"] = turn.conversation_id
    at.run()
    warnings = " ".join(w.value for w in at.main.warning)
    assert "stopped before the coach wrote anything" in warnings
    assert any(b.label == "Retry" for b in at.main.button)
