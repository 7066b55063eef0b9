"""One browser tab's conversation: what to send next, storing it, and streaming the reply."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import streamlit as st

from app.errors import CoachError
from app.situation_text import ExtractedText, clean_text
from app.store import ConversationStore, StoredMessage

if TYPE_CHECKING:  # importing the coach loads the model stack; the page draws first
    from app.coach import Coach

log = logging.getLogger(__name__)

STATE_KEY = "coach_chat"
QUERY_KEY = "c"
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
    """The user message to answer in this run, saved before the engine sees it (or None)."""
    if state.retry_id is not None:
        message = store.message(state.retry_id)
        state.retry_id = None
        if message and message.role == "user" and message.conversation_id == state.conversation_id:
            return store.mark_pending(message.id)
    outgoing = None
    typed = clean_text(typed) if typed is not None else ""
    if typed:
        outgoing = Outgoing(text=typed)
    elif state.outbox is not None:
        outgoing, state.outbox = state.outbox, None
        outgoing.text = clean_text(outgoing.text)
    # Stored as the coach reads it: no bidi overrides or zero-width characters to show later.
    if outgoing is None or not outgoing.text:
        return None
    if state.conversation_id is None or store.conversation(state.conversation_id) is None:
        state.conversation_id = store.create_conversation(outgoing.text).id
        _sync_url(state)
    return store.add_user_message(
        state.conversation_id, outgoing.text, source=outgoing.source, notices=outgoing.notices
    )


class Reply:
    """The coach's reply to one stored user message: stream ``chunks()``, then read ``stored``.

    The stream never raises: a failure is stored on the user message (so Retry can send it
    again) and ``stored`` is then that failed message; otherwise it is the stored answer.
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
        try:
            history = self.store.history(turn.conversation_id, before=turn.id)
            stream = self.coach.ask(turn.text, history, self.prompt)
            yield from stream
            answer = stream.result()
            answer.notices = [*turn.notices, *answer.notices]
            self.stored = self.store.add_answer(turn.id, answer)
        except CoachError as exc:
            self.stored = self._failed(exc.message)
        except Exception as exc:
            log.exception("The coach failed on message %s", turn.id)
            self.stored = self._failed(UNEXPECTED_FAILURE.format(kind=type(exc).__name__))

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
