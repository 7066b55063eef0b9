"""The situation reader's speed: ``python -m benchmarks.bench_reading [messages]``.

Times ``read_situation`` on messages of about 300 words, each a first-person opening followed
by generated workplace sentences (``benchmarks.synthetic``), once the rules are loaded; also
times loading and compiling the rules, once, in this process. Prints median, p95 and max,
and a calibration figure: on a shared machine, wall times grow with its load.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import timeit

from app.reading import read_situation
from app.reading_rules import load_rules
from benchmarks import synthetic

OPENINGS = (
    "I'm a team lead with six engineers and my director keeps adding work. I've talked to "
    "each of them and we already hold weekly check-ins, but the release slips.",
    "As a new supervisor on the night shift I can't hire anyone and the budget is frozen. "
    "I escalated to my manager last month. Should I move people between wards?",
    "We have no budget for training, the deadline is in two weeks and one of my senior "
    "developers refuses to review code. I tried explaining why it matters. Any advice?",
)
WORDS = 300


def messages(count: int, seed: int = 5) -> list[str]:
    """``count`` messages of about ``WORDS`` words."""
    rng = random.Random(seed)
    fillers = synthetic.sentences(count * 20, seed=seed)
    out = []
    for i in range(count):
        parts = [OPENINGS[i % len(OPENINGS)]]
        while sum(len(p.split()) for p in parts) < WORDS:
            parts.append(fillers[rng.randrange(len(fillers))])
        out.append(" ".join(parts))
    return out


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 200
    started = time.perf_counter()
    rules = load_rules()
    load_ms = (time.perf_counter() - started) * 1000
    texts = messages(count)
    for text in texts[:5]:
        read_situation(text, rules)
    times, cpu = [], []
    for text in texts:
        started, started_cpu = time.perf_counter(), time.process_time()
        read_situation(text, rules)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    times.sort()
    words = statistics.mean(len(t.split()) for t in texts)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    # How loaded the machine is: about 8-10 us on an idle core of a recent CPU.
    calibration = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    print(f"calibration: sum(range(1000)) takes {calibration:.1f} us here")
    print(f"rules load+compile: {load_ms:.0f} ms (once per process)")
    print(
        f"read_situation, {count} messages of ~{words:.0f} words: median "
        f"{statistics.median(times):.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms "
        f"(CPU time: median {statistics.median(cpu):.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
