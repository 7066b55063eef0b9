"""The coaching pipeline: situation → guard → classifier → retrieval → engine → checks.

Every engine goes through this one path, so the guard, the citation check, the
second opinion and the timing apply to all of them. ``Coach.ask`` returns an
``AnswerStream``: iterate it for the coaching text as it arrives, then read
``.answer``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from app.answer import CoachingAnswer, CoachRequest, Evidence, SecondOpinion, Turn
from app.canary import CanaryFilter
from app.classifier import ClassifierStore, embed_situations
from app.coaching_context import read_context
from app.engines.base import Engine
from app.errors import CoachError, ConfigError
from app.guard import enforce_canary, load_rules, screen, stop_answer
from app.history import (
    mask_known,
    merge_masked_notice,
    screen_history,
    withhold_values,
    withholding,
)
from app.index import ArticleIndex, get_index
from app.language import detect_language
from app.move_match import MoveStore
from app.passages import Passage, ScoredPassage
from app.personal_data import mask
from app.reading import read_situation
from app.safety_model import SafetyModelStore
from app.settings import Settings, get_settings
from app.uploads import prepare_text


class AnswerStream:
    """Coaching text chunks as they arrive; ``answer`` once the stream is done."""

    def __init__(self, events: Iterator[str | CoachingAnswer]) -> None:
        self._events = events
        self.answer: CoachingAnswer | None = None

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if isinstance(event, CoachingAnswer):
                self.answer = event
            else:
                yield event

    def result(self) -> CoachingAnswer:
        """Consume the stream and return the final answer."""
        for _ in self:
            pass
        if self.answer is None:  # an engine that ended without an answer is a bug
            raise CoachError("The coach ended without an answer. Please try again.")
        return self.answer


def context_text(message: str, history: Sequence[Turn], limit: int) -> str:
    """The situation to judge: the first message of the conversation plus this one."""
    earlier = [t.text for t in history if t.role == "user"]
    if not earlier:
        return message
    first = earlier[0][: limit // 2]
    return f"{first}\n\n{message}"[-limit:] if limit else message


def bounded_history(history: Sequence[Turn], limit: int) -> list[Turn]:
    """The newest turns that fit in ``limit`` characters, with the first user turn kept."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        if used + len(turn.text) > limit:
            break
        kept.insert(0, turn)
        used += len(turn.text)
    first = next((t for t in history if t.role == "user"), None)
    if first is not None and first not in kept:
        kept.insert(0, Turn(role=first.role, text=first.text[: max(limit // 3, 200)]))
    return kept


class Coach:
    """The coach: one engine, the article index and the local classifier."""

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings | None = None,
        index: ArticleIndex | None = None,
        classifiers: ClassifierStore | None = None,
        safety: SafetyModelStore | None = None,
        moves: MoveStore | None = None,
        prompt: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.engine = engine
        self.index = index or get_index(self.settings)
        self.classifiers = classifiers or ClassifierStore(self.settings, self.index.embedder)
        self.safety = safety or SafetyModelStore(self.settings, self.index.embedder)
        self.moves = moves or MoveStore(self.settings, self.index.embedder)
        self.prompt = prompt or self.settings.prompt

    def warm_up(self) -> None:
        """Load the model, the classifier and the index now instead of on the first question."""
        self.classifiers.get()
        self.safety.get()
        self.moves.get()
        read_situation("Warm up the situation reader.")
        self.index.retrieve("warm up", 1)
        load_rules(self.settings.prompts_dir)
        mask("Warm up the name finder and the language detector.", self.settings.prompts_dir)
        detect_language("Warm up the name finder and the language detector.")
        self.engine.warm_up()

    def ask(
        self, message: str, history: Sequence[Turn] = (), prompt: str | None = None
    ) -> AnswerStream:
        """Coach ``message``; ``history`` holds the earlier turns of the conversation."""
        return AnswerStream(self._run(message, list(history), prompt or self.prompt))

    def sources(self, ids: Sequence[str]) -> list[Passage]:
        """The cited passages, in citation order, for quoting."""
        if not ids:
            return []
        found = {p.id: p for p in self.index.passages(ids=list(ids))}
        return [found[i] for i in ids if i in found]

    def _run(
        self, message: str, history: list[Turn], prompt: str
    ) -> Iterator[str | CoachingAnswer]:
        started = time.perf_counter()
        settings = self.settings
        rules = load_rules(settings.prompts_dir)
        prepared = prepare_text(message or "", max_chars=settings.max_input_chars)
        remote = self.engine.capabilities.remote
        screening = screen(prepared.text, rules, remote=remote, detector=self.safety.get())
        notices = list(prepared.notices) + screening.notices
        masked = screening.masked

        if screening.stop:
            answer = stop_answer(screening.stop, rules, screening.text)
            answer.meta.engine, answer.meta.model = self.engine.name, self.engine.model
            answer.meta.safety = screening.stop
        else:
            # Every turn is screened: the engine gets earlier turns masked and without injected
            # instructions, and a value masked in any turn is masked in all, answer included.
            earlier = screen_history(history, rules, settings.prompts_dir)
            found = mask(prepared.text, settings.prompts_dir).found + earlier.found
            screening.text, again = mask_known(screening.text, found)
            this_turn = list(dict.fromkeys(screening.masked + again))
            engine_events = self._engine_answer(screening, earlier.turns, prompt, rules)
            answer = yield from withholding(engine_events, found)
            withheld = withhold_values(answer, found)
            masked = list(dict.fromkeys(this_turn + earlier.masked + withheld))
            notices = merge_masked_notice(notices, screening.masked, masked, rules, remote=remote)
            # An LLM answers in the person's language; the offline engine says it cannot.
            if answer.meta.engine == "offline" and screening.language != "English":
                notices.append(
                    rules.notices["language_offline"].format(language=screening.language)
                )
        answer.meta.safety = answer.meta.safety or screening.caught
        answer.meta.masked = masked
        answer.meta.injection_ignored = screening.injection
        answer.meta.language = screening.language
        answer.notices = notices + answer.notices
        if screening.stop:
            yield from _paragraphs(answer.coaching)
        answer.meta.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        yield answer

    def _engine_answer(self, screening, history: list[Turn], prompt: str, rules):
        settings = self.settings
        situation = context_text(screening.text, history, settings.max_input_chars)
        vector = embed_situations(self.index.embedder, [situation])[0]
        prediction = self.classifiers.get().predict(situation, vector)
        passages = self._retrieve(situation, vector, prediction.focus)
        context = read_context(
            moves=self.moves,
            embedder=self.index.embedder,
            message=screening.text,
            history=history,
            vector=vector,
            verdict=prediction.verdict,
            focus=prediction.focus,
        )
        request = CoachRequest(
            situation=screening.text,
            history=bounded_history(history, settings.history_chars),
            passages=passages,
            prompt=prompt,
            language=screening.language,
            local_verdict=prediction.verdict,
            local_confidence=prediction.confidence,
            local_probabilities=prediction.probabilities,
            local_focus=prediction.focus,
            local_focus_scores=prediction.focus_scores,
            local_evidence=[Evidence(**vars(e)) for e in prediction.evidence],
            context=situation,
            reading=context.reading,
            moves=context.moves,
            question_move=context.question_move,
            turn_questions=context.turn_questions,
        )
        answer: CoachingAnswer | None = None
        # The canary never streams out. An engine without a prompt has no canary to leak.
        canary = _canary(settings, prompt) if self.engine.capabilities.uses_prompt else None
        shown = CanaryFilter(canary)
        for event in self.engine.run(request):
            if isinstance(event, CoachingAnswer):
                answer = event
            elif text := shown.feed(event):
                yield text
        if text := shown.flush():
            yield text
        if answer is None:
            raise CoachError("The engine ended without an answer. Please try again.")
        answer.meta.engine = answer.meta.engine or self.engine.name
        answer.meta.model = answer.meta.model or self.engine.model
        if self.engine.capabilities.uses_prompt:
            answer.meta.prompt = answer.meta.prompt or prompt
        if answer.meta.model_safety not in (None, "none"):
            answer = _escalated(answer, screening.text, rules)
            yield from _paragraphs(answer.coaching)
            return answer
        answer.evidence = self._evidence(answer, situation, prediction)
        check_citations(answer, request.retrieved_ids())
        enforce_canary(answer, canary, rules)
        if self.engine.capabilities.second_opinion and answer.verdict and not answer.meta.fallback:
            answer.second_opinion = second_opinion(answer, prediction)
        return answer

    def _evidence(self, answer: CoachingAnswer, situation: str, prediction) -> list[Evidence]:
        """The person's sentences behind the answer's verdict (the engine's, not only ours)."""
        if answer.verdict is None:
            return []
        found = prediction.evidence
        if answer.verdict != prediction.verdict:
            found = self.classifiers.get().evidence(situation, answer.verdict)
        return [Evidence(**vars(e)) for e in found]

    def _retrieve(self, situation: str, vector, focus: list[str]) -> list[ScoredPassage]:
        """The closest passages, plus the responsibilities the classifier points at."""
        found = self.index.retrieve(situation, self.settings.k, vector=vector)
        have = {sp.passage.id for sp in found}
        for passage in self.index.passages(codes=focus):
            if passage.id not in have:
                found.append(ScoredPassage(passage=passage, score=0.0))
                have.add(passage.id)
        return found


def _paragraphs(text: str) -> Iterator[str]:
    for i, part in enumerate(text.split("\n\n")):
        yield ("\n\n" if i else "") + part


def _escalated(answer: CoachingAnswer, text: str, rules) -> CoachingAnswer:
    """The model read a stop kind the guard did not: the stricter reading wins, recorded."""
    kind = answer.meta.model_safety
    stopped = stop_answer(kind, rules, text)
    stopped.meta = answer.meta.model_copy()
    stopped.meta.safety = kind
    stopped.meta.safety_disagreement = f"guard: none; model: {kind}"
    stopped.notices = [*answer.notices, rules.notices["model_escalated"].format(kind=kind)]
    return stopped


def check_citations(answer: CoachingAnswer, retrieved: list[str]) -> None:
    """Keep only citations of passages retrieved for this question; count the rest."""
    allowed = set(retrieved)
    kept = list(dict.fromkeys(c for c in answer.citations if c in allowed))
    dropped = [c for c in answer.citations if c not in allowed]
    answer.citations = kept
    answer.meta.retrieved = list(retrieved)
    answer.meta.dropped_citations = dropped
    answer.meta.citation_errors = len(dropped)


def second_opinion(answer: CoachingAnswer, prediction) -> SecondOpinion:
    agrees = prediction.verdict == answer.verdict
    note = None
    if not agrees:
        note = (
            f"A second, local model reads this as {prediction.verdict} "
            f"({prediction.confidence:.2f})."
        )
    return SecondOpinion(
        verdict=prediction.verdict, confidence=prediction.confidence, agrees=agrees, note=note
    )


_CANARIES: dict[str, str | None] = {}
_CANARY_LOCK = threading.Lock()


def _canary(settings: Settings, prompt: str) -> str | None:
    with _CANARY_LOCK:
        if prompt not in _CANARIES:
            try:
                from app.prompts import load_prompt

                _CANARIES[prompt] = load_prompt(prompt, settings.prompts_dir).canary
            except (CoachError, ImportError):
                _CANARIES[prompt] = None
        return _CANARIES[prompt]


def make_engine(kind: str | None = None, settings: Settings | None = None) -> Engine:
    """The engine for ``kind`` (offline, llm, local or auto; default from settings)."""
    from app.engines.offline import OfflineEngine

    settings = settings or get_settings()
    kind = kind or settings.engine
    if kind == "auto":
        kind = settings.resolved_engine()
    if kind == "offline":
        return OfflineEngine(settings)
    if kind == "llm":
        if not settings.llm_configured():
            raise ConfigError(
                "No LLM is configured: set OPENAI_API_KEY or COACH_LLM_BASE_URL, "
                "or use the offline engine (--engine offline)."
            )
        from app.engines.llm import LLMEngine

        return LLMEngine(settings, fallback=OfflineEngine(settings))
    if kind == "local":  # the built-in llama.cpp server; it starts on first use
        from app.engines.local import LocalEngine

        return LocalEngine(settings, fallback=OfflineEngine(settings))
    raise ConfigError(f"Unknown engine {kind!r}: use offline, llm, local or auto.")


def build_coach(
    engine: str | None = None, prompt: str | None = None, settings: Settings | None = None
) -> Coach:
    """A ready coach; the index and classifier are built when missing or stale."""
    settings = settings or get_settings()
    coach = Coach(make_engine(engine, settings), settings=settings, prompt=prompt)
    coach.index.build()
    coach.classifiers.ensure()
    coach.safety.ensure()
    coach.moves.ensure()
    return coach
