"""Leadership Coach in the browser: a thin shell over ``app.web`` (streamlit run streamlit_app.py)."""

import streamlit as st

from app.settings import get_settings
from app.web import PAGE_ICON, auth, chat, runtime, sidebar, turns, upload

st.set_page_config(page_title="Leadership Coach", page_icon=str(PAGE_ICON))

visitor = auth.visitor(get_settings())  # sign-in screen or open-address warning, or go on
store = auth.owned(runtime.load_store(), visitor)  # only this visitor's conversations
state = chat.session(store)  # this tab's conversation id and queued actions (session_state)

st.title("Leadership Coach")
# The input is drawn before the coach loads, so a first visitor can type while it does.
typed = st.chat_input("Describe a situation at work…", submit_mode="disable")
coach = runtime.load_coach()  # built once per process in the background; tests inject a fake

with turns.errors_shown():
    turn = chat.take_turn(store, state, typed)  # stored before the engine is called
    upload.upload_panel(state, get_settings(), expanded=state.conversation_id is None)
    turns.conversation(coach, store, state, in_flight=turn.id if turn else None)
    if turn is not None:
        with st.chat_message("assistant"):
            stop = turns.stop_button(turn.id)  # a click reruns the page: the partial answer stays
            live = st.empty()
            reply = chat.Reply(coach, store, turn, state.prompt)
            with live.container():
                turns.streamed(reply.chunks())  # made safe as a whole, chunk by chunk
            stop.empty()
            # Redraw from the stored answer: a repaired LLM answer may differ from the stream.
            with live.container():
                if reply.stored is not None and reply.stored.role == "assistant":
                    turns.assistant_turn(coach, store, state, reply.stored)
                elif reply.stored is not None:
                    turns.failed_turn(state, reply.stored)
    turns.replying_banner(state)  # a coach's question being answered, just above the input
    sidebar.draw(coach, store, state)
