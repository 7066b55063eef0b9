"""The offline engine's answer latency once warm, and the cold start of ``coach ask``."""

from __future__ import annotations

import gc
import time

from app.coach import Coach
from app.engines.offline import OfflineEngine
from benchmarks import synthetic
from benchmarks.coach_data import CoachData
from benchmarks.figures import Section
from benchmarks.processes import child_env, coach_command, timed_run

WARM_UP = 3
COLD_QUESTION = (
    "Our deadlines keep slipping because nobody knows who owns which task, and the team "
    "has stopped raising problems in meetings. What should I do first?"
)


def run(data: CoachData, answers: int, cold_asks: int) -> Section:
    """Time ``answers`` warm offline answers, then ``cold_asks`` runs of ``coach ask``."""
    section = Section("answer")
    coach = Coach(
        OfflineEngine(data.settings),
        settings=data.settings,
        index=data.index,
        classifiers=data.classifiers,
    )
    coach.warm_up()
    texts = synthetic.situations(answers)
    for text in texts[:WARM_UP]:
        coach.ask(text).result()
    gc.collect()
    total, first_chunk = [], []
    verdicts: dict[str, int] = {}
    for text in texts:
        started = time.perf_counter()
        stream = coach.ask(text)
        first = None
        for _ in stream:
            if first is None:
                first = time.perf_counter() - started
        answer = stream.result()
        elapsed = time.perf_counter() - started
        total.append(elapsed * 1000)
        first_chunk.append((first if first is not None else elapsed) * 1000)
        key = answer.verdict or "asked back"
        verdicts[key] = verdicts.get(key, 0) + 1
    section.add("offline_ms", "Offline answer, warm (whole answer)", "ms", total)
    section.add("offline_first_chunk_ms", "  offline, first chunk shown", "ms", first_chunk)

    cold = []
    command = [*coach_command(), "ask", "--engine", "offline", COLD_QUESTION]
    for _ in range(cold_asks):
        seconds, printed = timed_run(command, child_env(data.data_dir), timeout=300)
        if len(printed.strip()) < 100:
            raise RuntimeError(f"coach ask printed no answer: {printed[:200]!r}")
        cold.append(seconds)
    section.add(
        "ask_cold_s",
        "`coach ask` cold start (process start to answer printed)",
        "s",
        cold,
    )
    section.details.update({"situations": len(texts), "verdicts": verdicts})
    return section
