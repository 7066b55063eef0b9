"""The Streamlit chat app's views and session handling; ``streamlit_app.py`` is the shell."""

from pathlib import Path

# A local file: an emoji or a :material/...: page icon makes the browser fetch it from a CDN.
PAGE_ICON = Path(__file__).parent / "static" / "page-icon.png"
