"""Our overhead on the LLM path, side by side with the plain LangChain pipeline.

Three clients stream from the same local OpenAI-compatible test server, which
answers instantly with a valid formatted answer, in interleaved rounds:

* **bare**: one ``ChatOpenAI.stream`` call with a ready prompt; the cost of the
  LLM call alone (HTTP, SSE parsing), with no pipeline around it;
* **ours**: ``Coach.ask`` with the ``LLMEngine`` (guard, classifier, retrieval,
  prompt, header parsing, validation, citation check, second opinion);
* **reference**: ``langchain_chroma.Chroma`` over the same passages with our
  embedder wrapped as LangChain ``Embeddings``, ``as_retriever()``, a
  ``ChatPromptTemplate`` holding the same prompt text, and ``ChatOpenAI``.

A pipeline's overhead in a round is its time minus the bare call's time in the
same round, both to the first token and to the end.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from app.coach import Coach
from app.embedder import MiniLMEmbedder
from app.engines.llm import LLMEngine
from app.engines.llm_prompt import render_passages
from app.engines.offline import OfflineEngine
from app.prompts import load_prompt
from app.settings import Settings
from benchmarks import synthetic
from benchmarks.coach_data import CoachData
from benchmarks.figures import Section
from benchmarks.processes import PROJECT_ROOT, free_port

SERVER_SCRIPT = PROJECT_ROOT / "tests" / "openai_server.py"
WARM_UP = 3
API_KEY = "bench-key"
MODEL = "test-model"


@contextmanager
def test_server(timeout: float = 30.0) -> Iterator[str]:
    """The standalone test server in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenAI-compatible test server did not start") from None
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def _chat(base_url: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL,
        base_url=base_url,
        api_key=API_KEY,
        temperature=0.2,
        streaming=True,
        max_retries=0,
        use_responses_api=False,
    )


class Reference:
    """The plain LangChain pipeline over the article's passages."""

    def __init__(self, data: CoachData, base_url: str, prompt_ref: str, k: int) -> None:
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma
        from langchain_core.embeddings import Embeddings
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough

        embedder = data.index.embedder

        class WrappedEmbeddings(Embeddings):
            """Our MiniLM embedder as LangChain ``Embeddings``."""

            def __init__(self, inner: MiniLMEmbedder) -> None:
                self.inner = inner

            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return self.inner.embed(list(texts)).tolist()

            def embed_query(self, text: str) -> list[float]:
                return self.inner.embed([text])[0].tolist()

        self.folder = Path(tempfile.mkdtemp(prefix="coach-bench-reference-"))
        passages = data.index.passages()
        self.store = Chroma(
            collection_name="reference",
            embedding_function=WrappedEmbeddings(embedder),
            persist_directory=str(self.folder),
            client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True),
            collection_configuration={"hnsw": {"space": "cosine"}},
        )
        self.store.add_texts(
            texts=[p.embedding_text() for p in passages],
            metadatas=[{"id": p.id, "section": p.section} for p in passages],
            ids=[p.id for p in passages],
        )
        retriever = self.store.as_retriever(search_kwargs={"k": k})
        system, user = load_prompt(prompt_ref, data.settings.prompts_dir).render(
            situation="@@QUESTION@@",
            passages="@@CONTEXT@@",
            history="(none)",
            language="English",
        )

        def template(text: str) -> str:
            escaped = text.replace("{", "{{").replace("}", "}}")
            return escaped.replace("@@QUESTION@@", "{question}").replace("@@CONTEXT@@", "{context}")

        def format_docs(docs: list[Any]) -> str:
            return "\n\n".join(
                f"[{d.metadata['id']}] ({d.metadata['section']})\n{d.page_content}" for d in docs
            )

        prompt = ChatPromptTemplate.from_messages(
            [("system", template(system)), ("human", template(user))]
        )
        self.chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | _chat(base_url)
            | StrOutputParser()
        )
        self.passages = len(passages)

    def stream(self, question: str) -> Iterator[str]:
        return self.chain.stream(question)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _time_stream(chunks: Callable[[], Iterator[str]]) -> tuple[float, float, str]:
    """Seconds to the first non-empty chunk and to the end, and the text streamed."""
    started = time.perf_counter()
    first = None
    parts = []
    for chunk in chunks():
        if chunk and first is None:
            first = time.perf_counter() - started
        parts.append(chunk)
    total = time.perf_counter() - started
    return (first if first is not None else total), total, "".join(parts)


def run(data: CoachData, rounds: int, base_url: str | None = None) -> Section:
    """``rounds`` interleaved rounds of bare, ours and reference against the test server."""
    if base_url is None:
        with test_server() as url:
            return run(data, rounds, url)
    section = Section("llm")
    settings = Settings(
        data_dir=data.data_dir, engine="llm", llm_base_url=base_url, llm_model=MODEL
    )
    coach = Coach(
        LLMEngine(settings, fallback=OfflineEngine(settings)),
        settings=settings,
        index=data.index,
        classifiers=data.classifiers,
    )
    coach.warm_up()
    reference = Reference(data, base_url, settings.prompt, settings.k)
    try:
        bare_chat = _chat(base_url)
        prompt = load_prompt(settings.prompt, settings.prompts_dir)
        texts = synthetic.situations(rounds + WARM_UP, seed=31)
        ready = {}
        for text in texts:
            passages = data.index.retrieve(text, settings.k)
            system, user = prompt.render(
                situation=text,
                passages=render_passages(passages),
                history="(none)",
                language="English",
            )
            ready[text] = [("system", system), ("human", user)]

        def bare(text: str) -> Iterator[str]:
            for chunk in bare_chat.stream(ready[text]):
                yield str(chunk.content)

        fallbacks = 0

        def ours(text: str) -> Iterator[str]:
            nonlocal fallbacks
            stream = coach.ask(text)
            yield from stream
            answer = stream.result()
            fallbacks += int(answer.meta.fallback or answer.verdict is None)

        runners: dict[str, Callable[[str], Iterator[str]]] = {
            "bare": bare,
            "ours": ours,
            "ref": reference.stream,
        }
        samples: dict[str, dict[str, list[float]]] = {
            name: {"first": [], "total": []} for name in runners
        }
        order = list(runners)
        gc.collect()
        for number, text in enumerate(texts):
            rotated = order[number % 3 :] + order[: number % 3]
            for name in rotated:
                first, total, streamed = _time_stream(lambda n=name, t=text: runners[n](t))
                if not streamed.strip():
                    raise RuntimeError(f"the {name} pipeline streamed nothing")
                if number >= WARM_UP:
                    samples[name]["first"].append(first * 1000)
                    samples[name]["total"].append(total * 1000)
        if fallbacks:
            raise RuntimeError(
                f"{fallbacks} of our answers fell back to the offline engine: the test server's "
                "reply was not read, so the LLM figures would be meaningless"
            )
    finally:
        reference.close()

    def minus(a: list[float], b: list[float]) -> list[float]:
        return [x - y for x, y in zip(a, b, strict=True)]

    names = {"bare": "bare ChatOpenAI call", "ours": "ours", "ref": "reference LangChain"}
    for name, label in names.items():
        section.add(
            f"{name}_first_token_ms", f"LLM first token, {label}", "ms", samples[name]["first"]
        )
        section.add(f"{name}_total_ms", f"LLM whole answer, {label}", "ms", samples[name]["total"])
    overhead = {}
    for name in ("ours", "ref"):
        overhead[name] = {
            kind: minus(samples[name][kind], samples["bare"][kind]) for kind in ("first", "total")
        }
        label = names[name]
        section.add(
            f"{name}_overhead_first_token_ms",
            f"Overhead before first token, {label}",
            "ms",
            overhead[name]["first"],
            note="pipeline time to first token minus the bare call's, per round",
        )
        section.add(
            f"{name}_overhead_total_ms",
            f"Overhead, whole answer, {label}",
            "ms",
            overhead[name]["total"],
            note="pipeline time to the end minus the bare call's, per round",
        )

    def ratio(a: list[float], b: list[float]) -> list[float]:
        below = float(np.median(b))
        return [float(np.median(a)) / below] if below > 0 else []

    section.add(
        "ratio_first_token",
        "First token, ours / reference",
        "x",
        ratio(samples["ours"]["first"], samples["ref"]["first"]),
        note="ratio of medians",
    )
    section.add(
        "ratio_overhead_first_token",
        "Overhead before first token, ours / reference",
        "x",
        ratio(overhead["ours"]["first"], overhead["ref"]["first"]),
        note="ratio of medians",
    )
    section.add(
        "ratio_overhead_total",
        "Overhead, whole answer, ours / reference",
        "x",
        ratio(overhead["ours"]["total"], overhead["ref"]["total"]),
        note="ratio of medians",
    )
    section.details.update(
        {
            "rounds": rounds,
            "warm_up_rounds": WARM_UP,
            "server": "tests/openai_server.py (own process, instant answers, streaming)",
            "reference_passages": reference.passages,
            "first_token": "ours: first coaching chunk shown (after the parsed header); "
            "reference and bare: first non-empty streamed chunk",
        }
    )
    return section
