"""Drawing the conversation: user messages, the coach's answers, failures with Retry, feedback."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import streamlit as st

from app.answer import CoachingAnswer
from app.errors import CoachError
from app.feedback_cli import focus_fits
from app.passages import FOCUS_CODES, FOCUS_NAMES, VERDICTS, Passage
from app.render import SAFETY_LABELS, VERDICT_LABELS, evidence_groups, reading_lines
from app.safe_text import plain_markdown as plain
from app.safe_text import safe_markdown
from app.store import ConversationStore, StoredMessage
from app.web import chat

if TYPE_CHECKING:  # importing the coach loads the model stack; the page draws first
    from streamlit.delta_generator import DeltaGenerator

    from app.coach import Coach

VERDICT_STYLE = {
    "management": ("blue", ":material/account_tree:"),
    "leadership": ("violet", ":material/diversity_3:"),
    "both": ("orange", ":material/join:"),
}
PREVIEW_CHARS = 1_200
STREAM_CURSOR = " ▏"

WELCOME = (
    "Describe a situation at work in a few sentences: what is happening, who is involved, "
    "what you want to change. The coach tells you whether it calls for **management**, "
    "**leadership** or **both**, which responsibilities to focus on, and quotes the passages "
    "of the article it relies on. You can also upload the situation as a file."
)


def verdict_badge(answer: CoachingAnswer) -> str:
    """The verdict and confidence as a coloured Markdown badge, e.g. Management · 82%."""
    if answer.meta.cut_off == "stopped":
        return ":gray-badge[:material/stop_circle: Stopped — partial answer]"
    if answer.verdict is None:
        if answer.meta.safety == "crisis":
            return f":red-badge[:material/emergency: {SAFETY_LABELS['crisis']}]"
        if answer.meta.safety in SAFETY_LABELS:
            return f":gray-badge[:material/block: {SAFETY_LABELS[answer.meta.safety]}]"
        return ":gray-badge[:material/help: Needs more detail]"
    color, icon = VERDICT_STYLE[answer.verdict]
    return f":{color}-badge[{icon} {VERDICT_LABELS[answer.verdict]} · {answer.confidence:.0%}]"


def focus_badges(answer: CoachingAnswer) -> str:
    return " ".join(f":gray-badge[{name}]" for name in answer.focus_names())


@contextmanager
def errors_shown() -> Iterator[None]:
    """Show a coach error in plain words (st.error) instead of a traceback."""
    try:
        yield
    except CoachError as exc:
        st.error(safe_markdown(exc.message), icon=":material/error:")


def streamed(chunks: Iterable[str]) -> str:
    """Model text drawn as it arrives; the whole text so far is made safe on every chunk,
    since an image or a link can be split across two chunks. A rerun (the Stop button, any
    click) interrupts the drawing; the chunks are then closed at once, which stops the coach."""
    box = st.empty()
    text = ""
    try:
        for chunk in chunks:
            text += chunk
            box.markdown(safe_markdown(text) + STREAM_CURSOR)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    box.markdown(safe_markdown(text))
    return text


def stop_button(turn_id: int) -> DeltaGenerator:
    """A Stop button for the answer about to stream, in a slot to ``.empty()`` when it ends.

    A click reruns the page, which interrupts the streaming; ``chat.Reply`` then keeps the
    partial answer, marked stopped, and the input is free again."""
    slot = st.empty()
    slot.button("Stop", key=f"stop-{turn_id}", icon=":material/stop_circle:")
    return slot


def welcome() -> None:
    with st.chat_message("assistant"):
        st.markdown(WELCOME)


def conversation(
    coach: Coach, store: ConversationStore, state: chat.ChatSession, in_flight: int | None
) -> None:
    """Every stored message of the open conversation, in reading order."""
    if state.conversation_id is None:
        welcome()
        return
    messages = store.messages(state.conversation_id)
    if not messages:
        welcome()
    for m in messages:
        if m.role == "assistant":
            with st.chat_message("assistant"):
                assistant_turn(coach, store, state, m)
            continue
        user_turn(m)
        if m.id == in_flight:
            continue
        if m.status == "failed":
            with st.chat_message("assistant"):
                failed_turn(state, m)
        elif m.status == "pending":
            with st.chat_message("assistant"):
                failed_turn(state, m, interrupted=True)


def user_turn(m: StoredMessage) -> None:
    with st.chat_message("user"):
        if m.source:
            st.caption(
                f":material/description: From **{plain(m.source)}** · {len(m.text):,} characters"
            )
        if len(m.text) > PREVIEW_CHARS:
            st.markdown(plain(m.text[:PREVIEW_CHARS].rstrip()) + " …")
            with st.expander("Show the full text"):
                st.markdown(plain(m.text))
        else:
            st.markdown(plain(m.text))


def failed_turn(state: chat.ChatSession, m: StoredMessage, *, interrupted: bool = False) -> None:
    """The failure in plain words, and a Retry button that sends the message again."""
    if interrupted:
        st.warning(
            "This message was not answered: it was stopped before the coach wrote anything, "
            "the page was closed, or another message interrupted it.",
            icon=":material/pending:",
        )
    else:
        st.error(
            safe_markdown(m.error or "The coach could not answer this message."),
            icon=":material/error:",
        )
    st.button(
        "Retry",
        key=f"retry-{m.id}",
        icon=":material/refresh:",
        on_click=chat.retry,
        args=(state, m.id),
    )


def assistant_turn(
    coach: Coach, store: ConversationStore, state: chat.ChatSession, m: StoredMessage
) -> None:
    """A stored answer: verdict, focus, coaching, follow-ups, sources, notes and feedback."""
    answer = m.answer
    if answer is None:
        return
    st.markdown(f"{verdict_badge(answer)} {focus_badges(answer)}".strip())
    for notice in answer.notices:
        st.info(plain(notice), icon=":material/info:")
    if answer.second_opinion and answer.second_opinion.note:
        st.info(
            f"**Second opinion:** {plain(answer.second_opinion.note)}",
            icon=":material/balance:",
        )
    if answer.summary and answer.verdict is not None:
        st.markdown(f"_{safe_markdown(answer.summary.strip())}_")
    st.markdown(safe_markdown(answer.coaching))
    evidence(answer)
    understood(answer)
    follow_ups(state, m.id, answer)
    sources(coach.sources(answer.citations))
    st.caption(meta_line(answer))
    feedback(store, m)


def meta_line(answer: CoachingAnswer) -> str:
    meta = answer.meta
    bits = [meta.engine or "engine", meta.model]
    if meta.prompt:
        bits.append(meta.prompt)
    if meta.fallback:
        bits.append("fallback")
    bits.append(f"{meta.latency_ms / 1000:.1f} s")
    return " · ".join(plain(b) for b in bits if b)


def follow_ups(state: chat.ChatSession, message_id: int, answer: CoachingAnswer) -> None:
    """The coach's own questions (a click puts the question above the input, to answer it)
    and what the person might ask next (a click sends it as theirs)."""
    _question_buttons(
        "**The coach asks you** · click one to answer it",
        answer.follow_up_questions,
        f"coach-asks-{message_id}",
        ":material/reply:",
        lambda question: (chat.answer_question, (state, question)),
    )
    _question_buttons(
        "**You might ask next** · click one to ask it",
        answer.suggested_questions,
        f"follow-up-{message_id}",
        ":material/subdirectory_arrow_right:",
        lambda question: (chat.send, (state, question)),
    )


def _question_buttons(title: str, questions: list[str], key: str, icon: str, action) -> None:
    if not questions:
        return
    st.markdown(title)
    for i, question in enumerate(questions):
        on_click, args = action(question)
        st.button(
            plain(question),
            key=f"{key}-{i}",
            icon=icon,
            type="tertiary",
            on_click=on_click,
            args=args,
        )


def replying_banner(state: chat.ChatSession) -> None:
    """The coach's question the person chose to answer, shown just above the input."""
    if not state.replying_to:
        return
    with st.container(key="replying-to"):
        st.info(
            f"**The coach asked:** {plain(state.replying_to)}  \nType your answer below.",
            icon=":material/reply:",
        )
        st.button(
            "Not now", key="replying-cancel", on_click=chat.answer_question, args=(state, None)
        )


def evidence(answer: CoachingAnswer) -> None:
    """The person's own sentences that drove each side of the verdict."""
    groups = evidence_groups(answer)
    if not groups:
        return
    with st.expander("Why this verdict: your words", icon=":material/format_quote:"):
        for title, items in groups:
            st.markdown(f"**{title}**")
            for quote, why in items:
                st.markdown(f"> {plain(quote)}\n\n{plain(why)}")


def understood(answer: CoachingAnswer) -> None:
    """What the coach read in the situation (role, team, limits, what was tried, questions),
    so a misreading is visible and can be corrected in the next message."""
    lines = reading_lines(answer)
    if not lines:
        return
    with st.expander("What I understood", icon=":material/person_search:"):
        st.markdown("\n".join(f"- {plain(line)}" for line in lines))
        st.caption("Something wrong or missing? Say so in your next message.")


def sources(passages: list[Passage]) -> None:
    """The cited passages quoted exactly, with section, article title and author."""
    if not passages:
        return
    with st.expander(f"Sources ({len(passages)})", icon=":material/menu_book:"):
        for p in passages:
            byline = ", ".join(plain(x) for x in (p.author, p.publisher) if x)
            st.markdown(
                f"**{plain(p.section)}** — _{plain(p.title)}_" + (f" · {byline}" if byline else "")
            )
            st.markdown(
                "\n".join(f"> {plain(line)}" if line else ">" for line in p.text.splitlines())
            )


# ---------------------------------------------------------------- feedback


def _rate(store: ConversationStore, message_id: int) -> None:
    store.save_feedback(message_id, rating=st.session_state.get(f"thumbs-{message_id}"))


def _correct(store: ConversationStore, message_id: int) -> None:
    verdict = st.session_state.get(f"correct-verdict-{message_id}")
    focus = list(st.session_state.get(f"correct-focus-{message_id}") or [])
    comment = st.session_state.get(f"correct-comment-{message_id}") or ""
    problem = focus_problem(verdict, focus)
    st.session_state[f"correct-problem-{message_id}"] = problem
    if problem:
        return
    store.save_feedback(
        message_id, corrected_verdict=verdict, corrected_focus=focus, comment=comment
    )


def focus_problem(verdict: str | None, focus: list[str]) -> str | None:
    """Why the chosen focus areas do not fit the chosen verdict (None when they do)."""
    if verdict not in VERDICTS:
        return "Choose the verdict you think is right."
    if not focus or focus_fits(verdict, focus):  # the eval suite's rule, so exports stay valid
        return None
    if verdict == "both":
        return "For Both, pick at least one management and one leadership focus area, or none."
    return f"For {VERDICT_LABELS[verdict]}, pick only {verdict} focus areas, or none."


def feedback(store: ConversationStore, m: StoredMessage) -> None:
    """Thumbs up or down, and an optional correction of the verdict with a comment."""
    saved = m.feedback
    row = st.container(horizontal=True, vertical_alignment="center", gap="medium")
    with row:
        st.feedback(
            "thumbs",
            key=f"thumbs-{m.id}",
            default=saved.rating if saved else None,
            on_change=_rate,
            args=(store, m.id),
        )
    with row, st.popover("Correct this answer", icon=":material/edit_note:"):
        answer = m.answer
        current = (saved and saved.corrected_verdict) or (answer and answer.verdict)
        with st.form(key=f"correct-{m.id}", border=False):
            st.selectbox(
                "The verdict I think is right",
                VERDICTS,
                index=VERDICTS.index(current) if current in VERDICTS else None,
                format_func=VERDICT_LABELS.__getitem__,
                key=f"correct-verdict-{m.id}",
            )
            st.multiselect(
                "Focus areas that fit (optional)",
                FOCUS_CODES,
                default=saved.corrected_focus if saved else [],
                format_func=lambda c: f"{FOCUS_NAMES[c]} ({c})",
                key=f"correct-focus-{m.id}",
                max_selections=3,
            )
            st.text_area(
                "Comment (optional)",
                value=saved.comment if saved else "",
                key=f"correct-comment-{m.id}",
                max_chars=2000,
            )
            st.form_submit_button("Save correction", on_click=_correct, args=(store, m.id))
    problem = st.session_state.get(f"correct-problem-{m.id}")
    if problem:
        st.error(problem, icon=":material/error:")
    elif saved and saved.corrected_verdict:
        text = f":material/check: Your correction: **{VERDICT_LABELS[saved.corrected_verdict]}**"
        if saved.corrected_focus:
            text += " (" + ", ".join(FOCUS_NAMES[c] for c in saved.corrected_focus) + ")"
        if saved.comment:
            text += f" — “{plain(saved.comment)}”"
        st.caption(text)
