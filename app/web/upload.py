"""The upload panel: a situation file in, its extracted text previewed, then sent to the coach."""

from __future__ import annotations

import math

import streamlit as st

from app.errors import UploadError
from app.settings import Settings
from app.uploads import SUPPORTED_TYPES, extract_text
from app.web import chat
from app.web.turns import plain


def size_label(n: int) -> str:
    """Bytes as people say them: 5 MB, 512 KB."""
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def upload_panel(state: chat.ChatSession, settings: Settings, *, expanded: bool) -> None:
    """File uploader with its size limit, a preview of the extracted text, and a send button."""
    limit = size_label(settings.max_upload_bytes)
    kinds = ", ".join(SUPPORTED_TYPES[:-1]) + " or " + SUPPORTED_TYPES[-1]
    with st.expander("Upload a situation", icon=":material/upload_file:", expanded=expanded):
        uploaded = st.file_uploader(
            f"A {kinds} file, up to {limit}",
            type=[t.lstrip(".") for t in SUPPORTED_TYPES],
            key=f"upload-{state.upload_round}",
            max_upload_size=max(1, math.ceil(settings.max_upload_bytes / 1024**2)),
            help=f"The coach reads the text of the file; files over {limit} are refused.",
        )
        if uploaded is None:
            return
        try:
            extracted = extract_text(
                uploaded.name, uploaded.getvalue(), max_bytes=settings.max_upload_bytes
            )
        except UploadError as exc:
            st.error(exc.message, icon=":material/error:")
            return
        length = f"{len(extracted.text):,} characters"
        if extracted.truncated:
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
