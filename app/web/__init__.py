"""The Streamlit chat app's views and session handling; ``streamlit_app.py`` is the shell."""
