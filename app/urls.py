"""How the app shows a server's address: never with credentials, a query string or a fragment."""

from __future__ import annotations

from urllib.parse import urlsplit

OPENAI_URL = "https://api.openai.com/v1"


def display_url(url: str | None, host_only: bool = False) -> str:
    """``url`` safe to print, log or record: ``scheme://host[:port]/path`` (or only
    ``host[:port]`` with ``host_only``), without ``user:password@``, ``?query`` or
    ``#fragment``. No URL means OpenAI's own API. Text that is not a URL with a host is
    shown as given unless it might hold credentials (an ``@``, ``?`` or ``#``)."""
    if not url:
        url = OPENAI_URL
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
    except ValueError:
        hostname = None
    if not hostname:
        return "(an invalid URL)" if any(c in url for c in "@?#") else url
    host = f"[{hostname}]" if ":" in hostname else hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return netloc if host_only else f"{parts.scheme}://{netloc}{parts.path}"
