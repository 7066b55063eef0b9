"""The sidebar: the engine in use, the prompt version, and the saved conversations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from app.store import Conversation, ConversationStore
from app.web import chat
from app.web.export import conversation_markdown, file_name
from app.web.runtime import OFFLINE_HINT, engine_info
from app.web.turns import plain

if TYPE_CHECKING:  # importing the coach loads the model stack; the page draws first
    from app.coach import Coach

PROMPT_KEY = "prompt_ref"


def coach_prompts() -> list[str]:
    """The ``coach@…`` prompt versions found in prompts/."""
    try:
        from app.prompts import list_prompts
    except ImportError:  # the prompt registry is optional for the app
        return []
    return list_prompts("coach")


def _local(moment: datetime) -> datetime:
    """A stored UTC time in the browser's time zone when it is known."""
    try:
        zone = st.context.timezone
        return moment.astimezone(ZoneInfo(zone) if zone else None)
    except (ZoneInfoNotFoundError, ValueError):
        return moment.astimezone()


def when(moment: datetime, now: datetime | None = None) -> str:
    """A short date: 14:05 today, 3 Mar, or 3 Mar 2024 in another year."""
    local = _local(moment)
    today = _local(now or datetime.now(moment.tzinfo))
    if local.date() == today.date():
        return f"Today {local:%H:%M}"
    if local.year == today.year:
        return f"{local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y}"


def draw(coach: Coach, store: ConversationStore, state: chat.ChatSession) -> None:
    with st.sidebar:
        engine_panel(coach)
        prompt_picker(coach, state)
        st.divider()
        conversations(coach, store, state)


def engine_panel(coach: Coach) -> None:
    info = engine_info(coach)
    if info.offline:
        st.markdown("**Engine** :green-badge[:material/cloud_off: Offline mode]")
        st.caption(OFFLINE_HINT)
        return
    st.markdown(f"**Engine** :blue-badge[:material/cloud: {plain(info.label)}]")
    where = f" at `{info.host}`" if info.host else ""
    st.caption(f"Model `{info.model}`{where}")


def _pick_prompt(state: chat.ChatSession) -> None:
    state.prompt = st.session_state.get(PROMPT_KEY)


def prompt_picker(coach: Coach, state: chat.ChatSession) -> None:
    refs = coach_prompts()
    if not refs:
        return
    current = state.prompt or coach.prompt
    st.selectbox(
        "Prompt version",
        refs,
        index=refs.index(current) if current in refs else len(refs) - 1,
        key=PROMPT_KEY,
        on_change=_pick_prompt,
        args=(state,),
        help="The prompt file under prompts/coach/ that the LLM engine sends.",
    )
    if engine_info(coach).offline:
        st.caption("The offline engine does not use a prompt; an LLM does.")


def conversations(coach: Coach, store: ConversationStore, state: chat.ChatSession) -> None:
    """New conversation, the saved ones (newest first), and tools for the open one."""
    st.button(
        "New conversation",
        icon=":material/add_comment:",
        width="stretch",
        on_click=chat.new_conversation,
        args=(state,),
    )
    saved = store.list_conversations()
    st.markdown("**Conversations**")
    if not saved:
        st.caption("None yet. Every conversation is saved here.")
    for c in saved:
        is_open = c.id == state.conversation_id
        st.button(
            f"{plain(c.title)}  \n:gray[{when(c.updated_at)}]",
            key=f"open-{c.id}",
            type="secondary" if is_open else "tertiary",
            width="stretch",
            on_click=chat.open_conversation,
            args=(state, c.id),
            help=f"Started {when(c.created_at)}",
        )
    current = next((c for c in saved if c.id == state.conversation_id), None)
    if current is not None:
        st.divider()
        conversation_tools(coach, store, state, current)
    if saved:
        st.divider()
        your_data(store, state)


def _delete_everything(store: ConversationStore, state: chat.ChatSession) -> None:
    deleted = store.delete_all()
    chat.new_conversation(state)
    st.toast(f"Deleted {deleted} conversation{'s' if deleted != 1 else ''} and their feedback.")


def your_data(store: ConversationStore, state: chat.ChatSession) -> None:
    """Delete every conversation of this user (all of them in single-user mode)."""
    with st.popover("Delete all my data", icon=":material/delete_forever:", width="stretch"):
        st.markdown(
            "Delete **all** your conversations, their answers and your feedback? "
            "This cannot be undone."
        )
        st.button(
            "Delete everything",
            key="delete-all-my-data",
            type="primary",
            on_click=_delete_everything,
            args=(store, state),
        )


def _rename(store: ConversationStore, conversation_id: str) -> None:
    title = st.session_state.get(f"rename-{conversation_id}") or ""
    if title.strip():
        store.rename(conversation_id, title)


def conversation_tools(
    coach: Coach, store: ConversationStore, state: chat.ChatSession, current: Conversation
) -> None:
    """Download, rename and delete the open conversation."""
    st.markdown("**This conversation**")
    st.download_button(
        "Download as Markdown",
        # Built when clicked, so it holds every answer so far without slowing each rerun.
        data=lambda: conversation_markdown(current, store.messages(current.id), coach.sources),
        file_name=file_name(current),
        mime="text/markdown",
        icon=":material/download:",
        on_click="ignore",
        width="stretch",
    )
    with st.popover("Rename", icon=":material/edit:", width="stretch"):
        st.text_input("New title", value=current.title, key=f"rename-{current.id}", max_chars=200)
        st.button(
            "Save title",
            key=f"save-title-{current.id}",
            on_click=_rename,
            args=(store, current.id),
        )
    with st.popover("Delete", icon=":material/delete:", width="stretch"):
        st.markdown(
            "Delete this conversation, its answers and their feedback? This cannot be undone."
        )
        st.button(
            "Delete for good",
            key=f"delete-{current.id}",
            type="primary",
            on_click=chat.delete_conversation,
            args=(store, state, current.id),
        )
