"""Shared pytest fixtures."""

import os
from collections.abc import Iterator

import pytest

from app.settings import get_settings
from tests.chroma_server import chroma_server  # noqa: F401  (a session fixture)
from tests.openai_server import OpenAIServer
from tests.pg_server import postgres  # noqa: F401 - one PostgreSQL server per session

# The developer's shell must not change what a test sees: an exported OPENAI_API_KEY or
# COACH_ENGINE would switch engines, a COACH_LLM_BASE_URL would send text to a real server.
ISOLATED_PREFIXES = ("OPENAI_", "COACH_")
TEST_SWITCHES = {"COACH_UPDATE_SCREENSHOT"}  # tells a test what to do; not a setting


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without OPENAI_* and COACH_* variables and with fresh settings."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name not in TEST_SWITCHES:
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh OpenAI-compatible server on 127.0.0.1 (random port) for one test."""
    with OpenAIServer() as server:
        yield server
