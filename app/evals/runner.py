"""The eval runner: every case through the real coach pipeline, cached, scored, in one run record."""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import __version__
from app.evals import coaching_scorers, metrics, scorers
from app.evals.judge import Judge, judge_answer_text, parse_judgement
from app.evals.suites import Case, Suite, display_path
from app.settings import PROJECT_ROOT, Settings
from app.urls import display_url

if TYPE_CHECKING:
    from app.answer import CoachingAnswer, CoachRequest
    from app.coach import Coach
    from app.engines.base import Engine, EngineEvent

CACHE_FILE = "eval-cache.sqlite"
# 2: cases may leave out the verdict (safety-only); the engine's input is recorded and cached.
RUN_FORMAT = 2
# The answer-producing code: a change here changes answers, so it is part of the cache key.
# The eval package itself is left out: editing a scorer re-scores cached answers instead.
CODE_DIR = PROJECT_ROOT / "app"

ExtraScorer = Callable[[Case, "CoachingAnswer"], scorers.Score]
# The judge prompt that rates how useful an answer is to the person (with --judge).
USEFULNESS_PROMPT = "judge@usefulness"


# ----------------------------------------------------------------------------- cache


class EvalCache:
    """Engine outputs by key in SQLite: a hit costs a row read instead of a pipeline run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outputs "
            "(key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL, created REAL)"
        )
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM outputs WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, kind: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO outputs (key, kind, value, created) VALUES (?, ?, ?, ?)",
                (key, kind, data, time.time()),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_cache(settings: Settings) -> EvalCache:
    """The cache in the data folder (``eval-cache.sqlite``)."""
    return EvalCache(settings.ensure_data_dir() / CACHE_FILE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_hash(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except OSError:
        return None


@lru_cache(maxsize=4)
def code_hash(root: Path = CODE_DIR) -> str:
    """A hash of the coach's Python source (without ``app/evals``), once per process: the
    code that runs is the code that was imported."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("evals/"):
            continue
        digest.update(relative.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def code_version() -> str:
    """``app.__version__``, plus ``git describe`` when the project is a git checkout with commits."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    tag = described.stdout.strip()
    return f"{__version__}+{tag}" if described.returncode == 0 and tag else __version__


def knowledge_fingerprint(settings: Settings) -> str:
    digest = hashlib.sha256()
    for path in sorted(settings.knowledge_dir.glob("*.md")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def support_fingerprint(settings: Settings) -> str:
    """The prompt folder's unversioned files (guard rules, offline templates)."""
    digest = hashlib.sha256()
    for path in sorted(settings.prompts_dir.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- target


class RecordingEngine:
    """An engine that passes every request to the engine it wraps and records it.

    It implements the same ``Engine`` protocol, so the pipeline cannot tell it apart;
    other attributes (capabilities, ``host``) are the wrapped engine's. What a case
    sent is recorded per thread, inside ``recording()``: the runner runs cases in
    parallel, each on one worker thread from question to answer.
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self._local = threading.local()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> str:
        return self.inner.model

    def __getattr__(self, attribute: str) -> Any:
        if attribute in ("inner", "_local"):  # not set yet: no recursion through __getattr__
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    @contextmanager
    def recording(self) -> Iterator[list[CoachRequest]]:
        """The requests this thread sends to the engine until the block ends."""
        seen: list[CoachRequest] = []
        self._local.seen = seen
        try:
            yield seen
        finally:
            self._local.seen = None

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        seen = getattr(self._local, "seen", None)
        if seen is not None:
            seen.append(request.model_copy(deep=True))
        return self.inner.run(request)


def engine_input(requests: Sequence[CoachRequest]) -> list[dict[str, Any]]:
    """What the engine was given, as recorded in a run: each request's situation and history."""
    return [
        {
            "situation": r.situation,
            "history": [{"role": t.role, "text": t.text} for t in r.history],
        }
        for r in requests
    ]


def received_texts(recorded: Sequence[dict[str, Any]] | None) -> list[str]:
    """Every text in a recorded engine input, for the scorers to search."""
    texts = []
    for request in recorded or ():
        texts.append(request["situation"])
        texts += [turn["text"] for turn in request.get("history") or ()]
    return texts


@dataclass
class Target:
    """What is evaluated: an engine, its model, the prompt and settings; the coach is built lazily.

    A fully cached run never builds the coach, so it loads no model and no index.
    """

    engine: str
    model: str
    prompt: str
    settings: Settings
    factory: Callable[[], Coach]
    _coach: Coach | None = field(default=None, repr=False)
    _recorded: Coach | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_coach(cls, coach: Coach) -> Target:
        """A target on an already built coach (tests, the fake engine)."""
        target = cls(
            engine=coach.engine.name,
            model=coach.engine.model,
            prompt=coach.prompt,
            settings=coach.settings,
            factory=lambda: coach,
        )
        target._coach = coach
        return target

    @classmethod
    def from_settings(
        cls, engine: str | None = None, prompt: str | None = None, settings: Settings | None = None
    ) -> Target:
        """A target for ``coach eval run``: the engine as ``build_coach`` would make it."""
        from app.settings import get_settings

        settings = settings or get_settings()
        kind = engine or settings.resolved_engine()
        if kind == "auto":
            kind = settings.resolved_engine()
        prompt = prompt or settings.prompt
        if kind == "offline":
            from app.engines.offline import OfflineEngine

            model = OfflineEngine.model
        elif kind == "local":
            model = Path(settings.local_model or "").name  # the GGUF file, as LocalEngine names it
        else:
            model = settings.llm_model

        def build() -> Coach:
            from app.coach import build_coach

            return build_coach(kind, prompt, settings)

        return cls(engine=kind, model=model, prompt=prompt, settings=settings, factory=build)

    def coach(self) -> Coach:
        """The coach under evaluation, its engine wrapped in a ``RecordingEngine``.

        The wrapping is on a shallow copy: a coach passed to ``from_coach`` is not changed.
        """
        with self._lock:
            if self._coach is None:
                self._coach = self.factory()
            if self._recorded is None:
                self._recorded = copy.copy(self._coach)
                if not isinstance(self._recorded.engine, RecordingEngine):
                    self._recorded.engine = RecordingEngine(self._recorded.engine)
            return self._recorded

    @property
    def recorder(self) -> RecordingEngine:
        return self.coach().engine  # type: ignore[return-value]

    @property
    def built(self) -> bool:
        return self._coach is not None


def prompt_info(ref: str, settings: Settings) -> dict[str, Any]:
    """The prompt's ref, file and sha256, and its canary (not written to the run)."""
    try:
        from app.prompts import load_prompt

        prompt = load_prompt(ref, settings.prompts_dir)
    except Exception as exc:  # a missing prompt is fine for the offline engine
        return {"ref": ref, "sha256": None, "path": None, "canary": None, "problem": str(exc)}
    return {
        "ref": prompt.ref,
        "sha256": prompt.sha256,
        "path": display_path(prompt.path),
        "canary": prompt.canary,
    }


def canaries(ref: str, settings: Settings) -> tuple[str, ...]:
    """The canary of the run's prompt, plus coach@v1's as a fallback."""
    found = []
    for candidate in (ref, "coach@v1"):
        canary = prompt_info(candidate, settings).get("canary")
        if canary and canary not in found:
            found.append(canary)
    return tuple(found)


def identity(target: Target, prompt: dict[str, Any]) -> dict[str, Any]:
    """Everything an answer depends on besides the case text: the cache key's fixed part."""
    s = target.settings
    return {
        "format": RUN_FORMAT,
        "engine": target.engine,
        "model": target.model,
        "prompt": prompt["ref"],
        "prompt_sha256": prompt["sha256"],
        "k": s.k,
        # The package version and the source itself, not git's commit: a commit that only
        # touches docs or tests must not throw the cache away, an uncommitted edit must.
        "code_version": __version__,
        "code_sha256": code_hash(),
        "knowledge_sha256": knowledge_fingerprint(s),
        "training_sha256": _file_hash(s.training_path),
        "support_sha256": support_fingerprint(s),
        "params": {
            "min_confidence": s.min_confidence,
            "max_input_chars": s.max_input_chars,
            "history_chars": s.history_chars,
            "llm_temperature": s.llm_temperature,
            "llm_base_url": display_url(s.llm_base_url) if s.llm_base_url else None,
        },
    }


def cache_key(fixed: dict[str, Any], kind: str, text: str) -> str:
    payload = json.dumps({"fixed": fixed, "kind": kind, "input": text}, sort_keys=True)
    return _sha256(payload.encode())


# ------------------------------------------------------------------------------- run


@dataclass
class _Job:
    index: int
    case: Case
    key: str
    cached: dict[str, Any] | None


def _error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}".strip()


def _score(
    case: Case,
    answer: CoachingAnswer,
    context: scorers.ScoringContext,
    extra: dict[str, ExtraScorer],
    received: Sequence[str],
    coaching: coaching_scorers.CoachingContext | None = None,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each scorer on its own: one that crashes is recorded, and the others still run."""
    out: dict[str, dict[str, Any]] = {}
    crashed = []
    named: dict[str, Callable[[CoachingAnswer], scorers.Score]] = dict(
        scorers.case_scorers(case, context, received)
    )
    if coaching is not None:
        named.update(coaching_scorers.case_scorers(case, coaching))
    for name, scorer in extra.items():
        named[name] = lambda a, s=scorer: s(case, a)
    for name, scorer in named.items():
        try:
            out[name] = scorer(answer).to_dict()
        except Exception as exc:
            out[name] = {"value": None, "reason": f"scorer crashed: {_error_text(exc)}"}
            crashed.append(f"scorer {name} crashed: {_error_text(exc)}")
    return out, crashed


def _judge(
    judge: Judge,
    case: Case,
    answer: CoachingAnswer,
    cache: EvalCache | None,
    host: str | None,
    limit: int,
) -> dict[str, Any]:
    situation = case.text[:limit]  # what the coach read, too
    seen = judge_answer_text(answer)
    key = cache_key({"judge": judge.describe(), "host": host}, "judge", situation + "\0" + seen)
    reply = cache.get(key) if cache else None
    if reply is not None:
        return parse_judgement(reply).to_dict()
    reply = judge.ask(situation, answer)
    score = parse_judgement(reply)  # an unreadable reply is not cached
    if cache:
        cache.put(key, "judge", reply)
    return score.to_dict()


def _run_case(
    job: _Job,
    target: Target,
    cache: EvalCache | None,
    context: scorers.ScoringContext,
    extra: dict[str, ExtraScorer],
    judge: Judge | None,
    coaching: coaching_scorers.CoachingContext | None = None,
    usefulness: Judge | None = None,
) -> dict[str, Any]:
    from app.answer import CoachingAnswer

    case = job.case
    record: dict[str, Any] = {
        "id": case.id,
        "suite": case.suite,
        "tags": list(case.tags),
        "situation": case.situation,
        "repeat": case.repeat,
        "expected": case.expected(),
        "answer": None,
        "engine_input": None,
        "scores": {},
        "passed": False,
        "latency_ms": None,
        "error": None,
        "cached": job.cached is not None,
    }
    try:
        if job.cached is not None:
            answer = CoachingAnswer.model_validate(job.cached["answer"])
            sent = job.cached["engine_input"]
        else:
            coach = target.coach()
            with target.recorder.recording() as requests:
                answer = coach.ask(case.text).result()
            sent = engine_input(requests)
            if cache is not None:
                value = {"answer": answer.model_dump(mode="json"), "engine_input": sent}
                cache.put(job.key, "answer", value)
    except Exception as exc:
        record["error"] = _error_text(exc)
        record["traceback"] = traceback.format_exc(limit=6)
        return record
    record["answer"] = answer.model_dump(mode="json")
    record["engine_input"] = sent
    record["latency_ms"] = answer.meta.latency_ms
    scores, crashed = _score(case, answer, context, extra, received_texts(sent), coaching)
    for name, rater in (("judge", judge), ("usefulness", usefulness)):
        if rater is None:
            continue
        try:
            settings = target.settings
            scores[name] = _judge(
                rater, case, answer, cache, settings.llm_base_url, settings.max_input_chars
            )
        except Exception as exc:
            scores[name] = {"value": None, "reason": f"{name} failed: {_error_text(exc)}"}
            crashed.append(f"{name} failed: {_error_text(exc)}")
    record["scores"] = scores
    if crashed:
        record["error"] = "; ".join(crashed)
    record["passed"] = not record["error"] and all(
        (scores[name]["value"] or 0) >= 1 for name in scores if name in scorers.PASS_FAIL
    )
    return record


def answer_language(text: str) -> str:
    """The English name of the language ``text`` is written in (``app.language``, lingua;
    imported on first use: only runs of an engine that answers in the person's
    language need it)."""
    from app.language import detect_language

    return detect_language(text)


def scoring_context(
    settings: Settings, prompt_ref: str, engine: str = "offline"
) -> scorers.ScoringContext:
    """Knowledge passages for quote checks, the canaries, and how to grade languages:
    the offline engine answers only in English, any other engine in the person's language."""
    from app.knowledge import load_knowledge

    return scorers.ScoringContext(
        passages=tuple(p.text for p in load_knowledge(settings.knowledge_dir)),
        canaries=canaries(prompt_ref, settings),
        english_only=engine == "offline",
        detect_language=answer_language,
    )


def coaching_context(settings: Settings) -> coaching_scorers.CoachingContext:
    """The article's terms for ``specificity``, and a focus reader for
    ``quotes_support_focus`` on the project's MiniLM (loaded only when a quote is read)."""
    from app.knowledge import load_knowledge

    passages = load_knowledge(settings.knowledge_dir)

    def reader() -> coaching_scorers.FocusReader:
        from app.embedder import MiniLMEmbedder

        embedder = MiniLMEmbedder(str(settings.tokenizer_path))
        return coaching_scorers.focus_reader(passages, embedder.embed)

    return coaching_scorers.CoachingContext(
        article=coaching_scorers.article_terms(p.text for p in passages), make_reader=reader
    )


def run_eval(
    suites: Sequence[Suite],
    target: Target,
    *,
    jobs: int = 1,
    cache: EvalCache | None = None,
    read_cache: bool = True,
    judge: Judge | None = None,
    progress: bool = False,
    extra_scorers: dict[str, ExtraScorer] | None = None,
    usefulness: Judge | None = None,
) -> dict[str, Any]:
    """Run every case of ``suites`` through ``target``'s coach and return the run record.

    Answers come from ``cache`` when their key is there (unless ``read_cache`` is
    False) and are stored in it otherwise. A case or scorer that crashes is recorded
    as that case's error; the run goes on. The coach is only built if a case misses.
    ``usefulness`` is a judge with the usefulness rubric (``judge@usefulness``), run
    beside ``judge`` on every answer.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    settings = target.settings
    prompt = prompt_info(target.prompt, settings)
    fixed = identity(target, prompt)
    context = scoring_context(settings, target.prompt, target.engine)
    coaching = coaching_context(settings)
    extra = dict(extra_scorers or {})

    cases = [case for suite in suites for case in suite.cases]
    planned = []
    for index, case in enumerate(cases):
        key = cache_key(fixed, "answer", case.text)
        cached = cache.get(key) if (cache is not None and read_cache) else None
        planned.append(_Job(index, case, key, cached))
    if any(job.cached is None for job in planned):
        target.coach()  # build once, up front, so a broken setup fails before any case runs

    from tqdm import tqdm

    records: list[dict[str, Any] | None] = [None] * len(planned)
    label = "+".join(s.name for s in suites)
    bar = tqdm(
        total=len(planned),
        desc=f"eval {label}",
        unit="case",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    args = (target, cache, context, extra, judge, coaching, usefulness)
    try:
        hits = [job for job in planned if job.cached is not None]
        misses = [job for job in planned if job.cached is None]
        for job in hits:
            records[job.index] = _run_case(job, *args)
            bar.update(1)
        if misses:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                futures = {pool.submit(_run_case, job, *args): job for job in misses}
                for future in as_completed(futures):
                    records[futures[future].index] = future.result()
                    bar.update(1)
    finally:
        bar.close()

    done = [r for r in records if r is not None]
    prices = metrics.load_prices()
    summary = metrics.aggregate(done, prices, coaching.article)
    if len(suites) > 1:
        summary["suites"] = {
            s.name: _short(
                metrics.aggregate(
                    [r for r in done if r["suite"] == s.name], prices, coaching.article
                )
            )
            for s in suites
        }
    config = {
        "engine": target.engine,
        "model": target.model,
        "prompt": prompt["ref"],
        "prompt_sha256": prompt["sha256"],
        "prompt_file": prompt["path"],
        "suites": [s.describe() for s in suites],
        "k": settings.k,
        "code_version": code_version(),
        "code_sha256": fixed["code_sha256"],
        "knowledge_sha256": fixed["knowledge_sha256"],
        "training_sha256": fixed["training_sha256"],
        "params": fixed["params"],
        "judge": judge.describe() if judge else None,
    }
    if usefulness is not None:
        config["usefulness_judge"] = usefulness.describe()
    if target.engine == "llm":
        config["llm_host"] = _host(settings.llm_base_url)
    return {
        "format": RUN_FORMAT,
        "config": config,
        "metrics": summary,
        "cases": done,
        "run": {
            "started_at": started_at,
            "seconds": round(time.perf_counter() - started, 3),
            "jobs": jobs,
            "cache": None
            if cache is None
            else {
                "path": display_path(cache.path),
                "read": read_cache,
                "hits": sum(1 for r in done if r["cached"]),
                "misses": sum(1 for r in done if not r["cached"]),
            },
            "built_coach": target.built,
        },
    }


def _host(url: str | None) -> str:
    return display_url(url, host_only=True)  # never user:password@ or a query


BULKY = ("per_class", "confusion", "reliability", "safety")


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    """Per-suite metrics without the bulky tables (per class, reliability, safety detail)."""
    return {k: v for k, v in summary.items() if k not in BULKY}


def write_run(record: dict[str, Any], path: Path) -> Path:
    """Write the run record as indented JSON (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def default_out(engine: str, now: datetime | None = None) -> Path:
    """``evals/runs/<timestamp>-<engine>.json`` in the project."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return PROJECT_ROOT / "evals" / "runs" / f"{stamp}-{engine}.json"
