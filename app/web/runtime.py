"""Where the app gets its coach and conversation store: built once per process, swappable in tests.

Tests inject a coach with ``use_coach(factory)`` (for example one built on
``FakeEngine``) before running the app with ``AppTest``; ``use_coach(None)``
restores the real one. The factory is called on every script run, so it should
return the same ``Coach`` each time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import streamlit as st

from app.errors import CoachError
from app.safe_text import safe_markdown
from app.settings import Settings, get_settings
from app.store import ConversationStore, open_store

if TYPE_CHECKING:  # importing the coach loads the model stack; the page draws first
    from app.coach import Coach

log = logging.getLogger(__name__)

CoachFactory = Callable[[], "Coach"]
_coach_factory: CoachFactory | None = None

OFFLINE_HINT = (
    "Answers come from a local classifier and the article, with no language model. "
    "To use an LLM, set `OPENAI_API_KEY` (or `COACH_LLM_BASE_URL` for a local "
    "OpenAI-compatible server such as Ollama) and restart the app."
)


def use_coach(factory: CoachFactory | None) -> None:
    """Make the app get its coach from ``factory`` (tests); None goes back to ``build_coach``."""
    global _coach_factory
    _coach_factory = factory


def _build(engine: str) -> Coach:
    from app.coach import build_coach

    coach = build_coach(engine=engine)
    coach.warm_up()
    return coach


@st.cache_resource(show_spinner=False)
def _coach_future(engine: str, data_dir: str) -> Future:
    """The process-wide build of the coach (once, via st.cache_resource), run in a worker
    thread so the first page is usable while the model stack loads."""
    return ThreadPoolExecutor(1, thread_name_prefix="coach-build").submit(_build, engine)


LOADING_LOCAL = "Loading the local model… the first answer waits until it is ready."


class LoadingCoach:
    """Stands in for the coach while it loads: the page draws at once, and the first use waits.

    ``engine``, ``prompt`` and ``settings`` are known without loading; anything else
    (``ask``, ``sources``) waits for the build and is then served by the real coach.
    """

    def __init__(self, future: Future, settings: Settings) -> None:
        from app.coach import make_engine

        self._future = future
        self.settings = settings
        self.prompt = settings.prompt
        self.engine = make_engine(settings.engine, settings)
        local = self.engine.capabilities.uses_prompt and not self.engine.capabilities.remote
        self.loading = LOADING_LOCAL if local else None  # a model file loads for seconds

    def __getattr__(self, name: str):
        if self.loading and not self._future.done():
            with st.spinner(self.loading):
                return getattr(_result(self._future), name)
        return getattr(_result(self._future), name)


def _result(future: Future) -> Coach:
    try:
        return future.result()
    except CoachError:
        raise
    except Exception as exc:
        log.exception("The coach could not be built")
        raise CoachError(
            "The coach could not start because of an unexpected problem. "
            "Run `coach index` in a terminal to see the details, then reload this page."
        ) from exc


def load_coach() -> Coach:
    """The process-wide coach, or a stand-in while it loads; setup problems stop the page."""
    if _coach_factory is not None:
        return _coach_factory()
    settings = get_settings()
    future = _coach_future(settings.engine, str(settings.data_dir))
    try:
        if future.done():
            return _result(future)
        loading = LoadingCoach(future, settings)
        if loading.loading:
            st.caption(loading.loading)
        return loading  # type: ignore[return-value]
    except CoachError as exc:
        st.error(safe_markdown(exc.message), icon=":material/error:")
        st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def load_store() -> ConversationStore:
    """The conversation store in the data folder; on a problem, the reason is shown.
    Conversations past ``COACH_RETENTION_DAYS`` are deleted once a day per process."""
    try:
        settings = get_settings()
        store = open_store(settings)
        purge_expired(store, settings)
        return store
    except CoachError as exc:
        st.error(safe_markdown(exc.message), icon=":material/error:")
        st.stop()
    raise AssertionError("unreachable")


_PURGED: dict[str, date] = {}


def purge_expired(store: ConversationStore, settings: Settings, today: date | None = None) -> int:
    """Delete conversations untouched for ``settings.retention_days`` (every owner's), at most
    once a day for each database; how many were deleted."""
    if not settings.retention_days:
        return 0
    today = today or datetime.now(UTC).date()
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    key = f"{settings.data_dir}|{url}"
    if _PURGED.get(key) == today:
        return 0
    _PURGED[key] = today
    before = datetime.now(UTC) - timedelta(days=settings.retention_days)
    deleted = store.delete_inactive(before)
    if deleted:
        logging.getLogger(__name__).info("Deleted %d conversations past retention.", deleted)
    return deleted


@dataclass(frozen=True)
class EngineInfo:
    """What the sidebar says about the engine in use; never the key."""

    offline: bool
    label: str
    model: str
    host: str | None = None


def engine_info(coach: Coach) -> EngineInfo:
    engine = coach.engine
    if not engine.capabilities.uses_prompt:
        return EngineInfo(offline=True, label="Offline mode", model=engine.model)
    described = engine.describe()  # the host is shown without credentials (app.urls)
    label = "LLM" if engine.capabilities.remote else "LLM on this machine"
    return EngineInfo(
        offline=False,
        label=label,
        model=described.get("model", engine.model),
        host=described.get("host"),
    )
