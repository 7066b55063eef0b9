"""One browser tab's conversation: what to send next, storing it, and streaming the reply."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import streamlit as st

from app.answer import AnswerMeta, CoachingAnswer
from app.errors import CoachError
from app.situation_text import ExtractedText, clean_text
from app.store import ConversationStore, StoredMessage

if TYPE_CHECKING:  # importing the coach loads the model stack; the page draws first
    from app.coach import Coach

log = logging.getLogger(__name__)

STATE_KEY = "coach_chat"
QUERY_KEY = "c"
STOPPED_NOTICE = (
    "Stopped — partial answer: the coach was stopped before it finished, so this is only "
    "what it had written by then. Send the message again for a full answer."
)
UNEXPECTED_FAILURE = (
    "The coach stopped because of an unexpected problem ({kind}). "
    "Press Retry; if it happens again, the app's log has the details."
)


@dataclass
class Outgoing:
    """A message waiting to be sent: typed, a follow-up question, or an uploaded file's text."""

    text: str
    source: str | None = None
    notices: list[str] = field(default_factory=list)


@dataclass
class ChatSession:
    """What one browser tab is doing; kept in ``st.session_state``, never shared."""

    conversation_id: str | None = None
    outbox: Outgoing | None = None
    retry_id: int | None = None
    prompt: str | None = None
    upload_round: int = 0
    replying_to: str | None = None  # the coach's question the person chose to answer
    streaming: int | None = None  # the user message whose answer this tab last streamed


def session(store: ConversationStore) -> ChatSession:
    """This tab's chat session; a reload reopens the conversation named in the URL."""
    state = st.session_state.get(STATE_KEY)
    if state is None:
        state = ChatSession()
        wanted = st.query_params.get(QUERY_KEY)
        if wanted and store.conversation(wanted) is not None:
            state.conversation_id = wanted
        st.session_state[STATE_KEY] = state
    elif state.conversation_id and store.conversation(state.conversation_id) is None:
        state.conversation_id = None  # deleted in another tab
    _sync_url(state)
    return state


def _sync_url(state: ChatSession) -> None:
    if state.conversation_id:
        if st.query_params.get(QUERY_KEY) != state.conversation_id:
            st.query_params[QUERY_KEY] = state.conversation_id
    elif QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


# ---------------------------------------------------------------- callbacks (run before a rerun)


def send(state: ChatSession, text: str) -> None:
    """Queue a message, e.g. a follow-up question the user clicked."""
    state.outbox = Outgoing(text=text)


def answer_question(state: ChatSession, question: str | None) -> None:
    """Show the coach's question above the input for the person to answer (None: hide it)."""
    state.replying_to = question


def send_upload(state: ChatSession, extracted: ExtractedText) -> None:
    """Queue an uploaded file's text, and clear the uploader."""
    state.outbox = Outgoing(
        text=extracted.text, source=extracted.source, notices=list(extracted.notices)
    )
    state.upload_round += 1


def retry(state: ChatSession, message_id: int) -> None:
    state.retry_id = message_id


def open_conversation(state: ChatSession, conversation_id: str | None) -> None:
    state.conversation_id = conversation_id
    state.outbox = None
    state.retry_id = None
    state.replying_to = None


def new_conversation(state: ChatSession) -> None:
    open_conversation(state, None)


def delete_conversation(store: ConversationStore, state: ChatSession, conversation_id: str) -> None:
    store.delete(conversation_id)
    if state.conversation_id == conversation_id:
        new_conversation(state)


# ---------------------------------------------------------------- a turn


def take_turn(
    store: ConversationStore, state: ChatSession, typed: str | None
) -> StoredMessage | None:
    """The user message to answer in this run, saved before the engine sees it (or None).

    A click during streaming (Stop, or any other) starts this run while the interrupted
    one is still ending in its own thread; it is waited for, so that the partial answer it
    stores is on the page of this run."""
    if state.streaming is not None:
        settled(state.streaming)
        state.streaming = None
    if state.retry_id is not None:
        message = store.message(state.retry_id)
        state.retry_id = None
        if message and message.role == "user" and message.conversation_id == state.conversation_id:
            state.streaming = message.id
            return store.mark_pending(message.id)
    outgoing = None
    typed = clean_text(typed) if typed is not None else ""
    if typed:
        outgoing = Outgoing(text=typed)
        state.replying_to = None
    elif state.outbox is not None:
        outgoing, state.outbox = state.outbox, None
        outgoing.text = clean_text(outgoing.text)
    # Stored as the coach reads it: no bidi overrides or zero-width characters to show later.
    if outgoing is None or not outgoing.text:
        return None
    if state.conversation_id is None or store.conversation(state.conversation_id) is None:
        state.conversation_id = store.create_conversation(outgoing.text).id
        _sync_url(state)
    turn = store.add_user_message(
        state.conversation_id, outgoing.text, source=outgoing.source, notices=outgoing.notices
    )
    state.streaming = turn.id
    return turn


# Replies streaming in this process, by user message id; set once each has stored its answer.
_STREAMING: dict[int, threading.Event] = {}
_STREAMING_LOCK = threading.Lock()
STOP_WAIT_S = 10.0  # an interrupted reply notices at its next chunk; a stalled one may not


def settled(message_id: int, timeout: float = STOP_WAIT_S) -> bool:
    """Wait until the reply to ``message_id`` (if one is streaming) has stored its answer."""
    with _STREAMING_LOCK:
        done = _STREAMING.get(message_id)
    return True if done is None else done.wait(timeout)


class Reply:
    """The coach's reply to one stored user message: stream ``chunks()``, then read ``stored``.

    The stream never raises: a failure is stored on the user message (so Retry can send it
    again) and ``stored`` is then that failed message; otherwise it is the stored answer.
    Closing the stream before it ends (Stop, or any click that reruns the page) stops the
    coach, which closes the connection to the LLM, and stores what was shown so far as a
    partial answer marked stopped; if nothing was shown, the message stays unanswered.
    """

    def __init__(
        self, coach: Coach, store: ConversationStore, turn: StoredMessage, prompt: str | None
    ) -> None:
        self.coach = coach
        self.store = store
        self.turn = turn
        self.prompt = prompt
        self.stored: StoredMessage | None = None

    def chunks(self) -> Iterator[str]:
        turn = self.turn
        done = threading.Event()
        with _STREAMING_LOCK:
            _STREAMING[turn.id] = done
        started = time.perf_counter()
        shown: list[str] = []  # bounded by the engine's reply cap
        events: Iterator[str] = iter(())
        try:
            history = self.store.history(turn.conversation_id, before=turn.id)
            stream = self.coach.ask(turn.text, history, self.prompt)
            events = iter(stream)
            for chunk in events:
                shown.append(chunk)
                yield chunk
            answer = stream.result()
            answer.notices = [*turn.notices, *answer.notices]
            self.stored = self.store.add_answer(turn.id, answer)
        except GeneratorExit:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # now, not when collected: the LLM server stops generating at once
            self.stored = self._stopped("".join(shown), time.perf_counter() - started)
            raise
        except CoachError as exc:
            self.stored = self._failed(exc.message)
        except Exception as exc:
            log.exception("The coach failed on message %s", turn.id)
            self.stored = self._failed(UNEXPECTED_FAILURE.format(kind=type(exc).__name__))
        finally:
            with _STREAMING_LOCK:
                _STREAMING.pop(turn.id, None)
            done.set()

    def _stopped(self, text: str, seconds: float) -> StoredMessage | None:
        """Store the partial answer shown before the stop (None when nothing was shown)."""
        if not text.strip():
            return None
        engine = self.coach.engine
        answer = CoachingAnswer(
            coaching=text.strip(),
            notices=[*self.turn.notices, STOPPED_NOTICE],
            meta=AnswerMeta(
                engine=engine.name,
                model=engine.model,
                latency_ms=round(seconds * 1000, 2),
                cut_off="stopped",
            ),
        )
        try:
            return self.store.add_answer(self.turn.id, answer)
        except Exception:  # the conversation was deleted meanwhile, or the store is gone
            log.exception("The partial answer to message %s was not stored", self.turn.id)
            return None

    def _failed(self, error: str) -> StoredMessage:
        try:
            return self.store.mark_failed(self.turn.id, error)
        except CoachError:
            # The conversation was deleted meanwhile; still tell the user what happened.
            return StoredMessage(
                id=self.turn.id,
                conversation_id=self.turn.conversation_id,
                role="user",
                text=self.turn.text,
                status="failed",
                created_at=self.turn.created_at,
                error=error,
            )
