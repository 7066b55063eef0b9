"""The local engine: the LLM engine against the built-in llama.cpp server (app.local_runtime).

The model file is checked when the engine is made, so a wrong ``COACH_LOCAL_MODEL`` is
reported at once; the server itself starts on ``warm_up`` or the first answer, never
earlier, because loading a model takes seconds. Answers then go through ``LLMEngine``
exactly as with any OpenAI-compatible server, with two additions the built-in server
makes possible: each request carries the reply protocol as a grammar
(``reply_format.reply_grammar``), so even a small model answers in the protocol, with
citations limited to the passages retrieved for the question; and nothing leaves the
machine, so the pipeline treats the text as local (``LOCAL_LLM``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from app.answer import CoachRequest, Usage
from app.engines.base import LOCAL_LLM, Engine, EngineEvent
from app.engines.llm import LLMEngine
from app.engines.reply_format import reply_grammar
from app.local_runtime import HOST, check_model, prefill, running_server, start_server
from app.prompts import load_prompt
from app.settings import Settings

# A CPU works through a 2,000-token prompt before the first token: far longer than a hosted
# API's first byte. Unless COACH_LLM_TIMEOUT / COACH_LLM_DEADLINE are set, a local answer
# gets this long for each, so a slow laptop's first answer is not cut short.
LOCAL_WAIT = 300.0


class LocalEngine:
    """Coaches with a GGUF model served in this process; see the module docstring."""

    name = "local"
    capabilities = LOCAL_LLM

    def __init__(
        self, settings: Settings, fallback: Engine | None = None, prompt: str | None = None
    ) -> None:
        self.settings = settings
        self.path = check_model(settings.local_model)  # a plain error now, not at first use
        self.model = self.path.name
        self.fallback = fallback
        self.prompt = prompt
        self._llm: LLMEngine | None = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, str]:
        """Engine, model file, where it listens (once started) and prompt; nothing secret."""
        server = running_server()
        started = server is not None and server.model == self.path
        return {
            "engine": self.name,
            "model": self.model,
            "host": f"{HOST}:{server.port}" if started and server else f"{HOST} (built in)",
            "prompt": self.prompt or self.settings.prompt,
        }

    def warm_up(self) -> None:
        """Start the server, load the model and read the prompt's instructions now, so the
        first question waits only for its own part of the prompt."""
        self.engine()
        prompt = load_prompt(self.prompt or self.settings.prompt, self.settings.prompts_dir)
        system, _ = prompt.render(situation="", passages="", history="", language="English")
        prefill(system)

    def engine(self) -> LLMEngine:
        """The LLM engine pointed at the running local server (started if need be)."""
        with self._lock:
            server = start_server(self.settings)  # at once when it is running already
            if self._llm is None or self._llm.settings.llm_base_url != server.base_url:
                update: dict[str, Any] = {
                    "llm_base_url": server.base_url,
                    "llm_model": self.model,
                    "llm_api_key": SecretStr("local"),  # never the OpenAI key
                }
                for name in ("llm_timeout", "llm_deadline"):
                    if name not in self.settings.model_fields_set:
                        update[name] = max(getattr(self.settings, name), LOCAL_WAIT)
                settings = self.settings.model_copy(update=update)
                llm = LLMEngine(
                    settings,
                    fallback=self.fallback,
                    prompt=self.prompt,
                    remote=False,
                    request_options=self.request_options,
                )
                llm.name = self.name
                self._llm = llm
            return self._llm

    def request_options(self, request: CoachRequest) -> dict[str, Any]:
        """What each coaching request adds to the body: the reply protocol as a grammar, and
        the seed."""
        grammar = reply_grammar(request.retrieved_ids(), self.settings.llm_max_tokens)
        return {"extra_body": {"grammar": grammar, "seed": self.settings.local_seed}}

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        yield from self.engine().run(request)

    def complete(self, system: str, user: str) -> tuple[str, Usage | None]:
        """One plain call without the grammar (the eval judge's kind)."""
        return self.engine().complete(system, user)
