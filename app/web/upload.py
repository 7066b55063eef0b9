"""The upload panel: a situation file in, its extracted text previewed, then sent to the coach."""

from __future__ import annotations

import math

import streamlit as st

from app.errors import UploadError
from app.safe_text import safe_markdown
from app.settings import Settings
from app.uploads import SUPPORTED_TYPES, extract_text, size_label
from app.web import chat
from app.web.turns import plain


def browser_limit_mb(max_upload_bytes: int) -> int:
    """The uploader's own cap, in whole MB, at or above the app's byte limit.

    Streamlit's browser code counts an MB as 1,000,000 bytes (1,048,576 on Windows) and its
    server as 1,048,576 (server.maxUploadSize). With the 5,000,000-byte default the browser
    refuses exactly what the CLI refuses, in Streamlit's words ("File must be 5.0MB or
    smaller."); whatever gets past it (Windows, scripts) meets the app's own check and the
    CLI's sentence.
    """
    return max(1, math.ceil(max_upload_bytes / 1000**2))


def upload_panel(state: chat.ChatSession, settings: Settings, *, expanded: bool) -> None:
    """File uploader with its size limit, a preview of the extracted text, and a send button."""
    limit = size_label(settings.max_upload_bytes)
    kinds = ", ".join(SUPPORTED_TYPES[:-1]) + " or " + SUPPORTED_TYPES[-1]
    with st.expander("Upload a situation", icon=":material/upload_file:", expanded=expanded):
        uploaded = st.file_uploader(
            f"A {kinds} file, up to {limit}",
            type=[t.lstrip(".") for t in SUPPORTED_TYPES],
            key=f"upload-{state.upload_round}",
            max_upload_size=browser_limit_mb(settings.max_upload_bytes),
            help=f"The coach reads the text of the file; files over {limit} are refused.",
        )
        if uploaded is None:
            return
        try:
            extracted = extract_text(
                uploaded.name, uploaded.getvalue(), max_bytes=settings.max_upload_bytes
            )
        except UploadError as exc:
            st.error(safe_markdown(exc.message), icon=":material/error:")
            return
        length = f"{len(extracted.text):,} characters"
        if extracted.original_chars is None:
            length += " (the file is longer)"
        elif extracted.truncated:
            length += f" of {extracted.original_chars:,}"
        st.caption(f":material/description: **{plain(extracted.source)}** · {length}")
        for notice in extracted.notices:
            st.warning(plain(notice), icon=":material/info:")
        st.text_area(
            "Preview of the extracted text",
            value=extracted.text,
            height=180,
            disabled=True,
            key=f"preview-{uploaded.file_id}",
        )
        st.button(
            "Coach this situation",
            type="primary",
            icon=":material/send:",
            on_click=chat.send_upload,
            args=(state, extracted),
        )
