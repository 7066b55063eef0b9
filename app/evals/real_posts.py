"""Build the real-people suites from ``evals/real/``: posts, two label passes, adjudication.

Each post keeps its source URL, author and CC BY-SA licence. A post's label is the
verdict both passes agreed on, or the adjudicator's decision where they disagreed;
posts that either pass or the adjudicator found unusable are left out. The usable
posts are split at random (seed fixed) into a frozen test suite and a dev suite.

Run ``python -m app.evals.real_posts`` to rewrite ``evals/suites/real-test.yaml`` and
``evals/suites/real-dev.yaml``; it prints the agreement figures.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "evals" / "real"
SUITES = ROOT / "evals" / "suites"
SEED = 20261202
TEST_SIZE = 64


def _by_id(path: Path, key: str) -> dict[str, dict]:
    return {row["id"]: row for row in yaml.safe_load(path.read_text(encoding="utf-8"))[key]}


def agreement(a: dict[str, dict], b: dict[str, dict]) -> tuple[float, float]:
    """Raw agreement and Cohen's kappa of the two passes' verdicts."""
    ids = sorted(a)
    n = len(ids)
    observed = sum(a[i]["verdict"] == b[i]["verdict"] for i in ids) / n
    ca = Counter(a[i]["verdict"] for i in ids)
    cb = Counter(b[i]["verdict"] for i in ids)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return observed, (observed - expected) / (1 - expected)


def final_labels() -> tuple[list[dict], dict]:
    posts = yaml.safe_load((REAL / "posts.yaml").read_text(encoding="utf-8"))["posts"]
    a = _by_id(REAL / "labels-a.yaml", "labels")
    b = _by_id(REAL / "labels-b.yaml", "labels")
    settled = _by_id(REAL / "adjudication.yaml", "decisions")
    observed, kappa = agreement(a, b)
    cases = []
    for post in posts:
        pid = post["id"]
        if pid in settled:
            label = settled[pid]
            usable = label.get("usable", True)
        else:
            label = a[pid]
            usable = a[pid]["usable"] and b[pid]["usable"]
        if not usable:
            continue
        cases.append(
            {
                "id": pid,
                "situation": post["text"].strip(),
                "expected_verdict": label["verdict"],
                "expected_focus": list(label["focus"]),
                "tags": ["real", "adjudicated" if pid in settled else "agreed"],
                "source": {
                    "url": post["source_url"],
                    "author": post.get("author") or "unknown",
                    "license": post["license"],
                    "title": post.get("title", ""),
                    "site": post.get("site", ""),
                    "posted": str(post.get("posted", "")),
                },
            }
        )
    stats = {
        "posts": len(posts),
        "usable": len(cases),
        "agreement": round(observed, 3),
        "kappa": round(kappa, 3),
        "adjudicated": sum(1 for p in posts if p["id"] in settled),
    }
    return cases, stats


HEADER = """\
name: {name}
description: >-
  {role} Real managers' own descriptions of their situations, from questions on the
  Stack Exchange network (CC BY-SA; each case keeps its URL, author where the page showed
  it, and licence). Collected and trimmed to the situation in the writers' own words by a
  helper agent; labelled in two independent passes (verdict agreement {agreement:.0%},
  Cohen's kappa {kappa:.2f}); the {adjudicated} disagreements settled by a third reader who
  read the post before both labels. Split at random (seed {seed}) from {usable} usable posts.
  Built by `python -m app.evals.real_posts` from evals/real/.
"""

ROLES = {
    "real-test": "FROZEN TEST suite: gating and reporting only; never used to choose "
    "features, thresholds, training data or prompts, and never used for training.",
    "real-dev": "DEV suite: may be read and tuned on; not for training.",
}


def write_suites() -> dict:
    cases, stats = final_labels()
    order = list(cases)
    random.Random(SEED).shuffle(order)
    test = sorted(order[:TEST_SIZE], key=lambda c: c["id"])
    dev = sorted(order[TEST_SIZE:], key=lambda c: c["id"])
    for name, chosen in (("real-test", test), ("real-dev", dev)):
        head = HEADER.format(name=name, role=ROLES[name], seed=SEED, **stats)
        body = yaml.safe_dump({"cases": chosen}, sort_keys=False, allow_unicode=True, width=100)
        (SUITES / f"{name}.yaml").write_text(head + body, encoding="utf-8")
    stats.update(test=len(test), dev=len(dev))
    return stats


if __name__ == "__main__":
    print(write_suites())
