"""Shared pytest fixtures."""

from collections.abc import Iterator

import pytest

from tests.openai_server import OpenAIServer


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh OpenAI-compatible server on 127.0.0.1 (random port) for one test."""
    with OpenAIServer() as server:
        yield server
