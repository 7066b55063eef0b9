"""The LLM's address is shown one way (no credentials, no query), and the judge has its own model."""

from __future__ import annotations

import json

import pytest
import yaml

from app.coach import Coach
from app.engines.llm import LLMEngine
from app.errors import ConfigError, LLMError
from app.evals import judge as judge_module
from app.evals.judge import llm_judge
from app.evals.runner import Target, run_eval
from app.evals.suites import load_suite
from app.settings import Settings
from app.urls import display_url
from tests.coach_env import shared_env
from tests.openai_server import OpenAIServer, status
from tests.openai_server import unused_port as free_port

SITUATION = (
    "Our sprint tickets have no owners and nobody agrees what done means, so two developers "
    "built the same feature last week while a customer fix waited."
)


@pytest.mark.parametrize(
    ("url", "host_only", "shown"),
    [
        ("http://user:secret@host/v1?token=abc#frag", False, "http://host/v1"),
        ("http://user:secret@host/v1?token=abc", True, "host"),
        ("https://key@llm.example.com:8443/v1/", False, "https://llm.example.com:8443/v1/"),
        ("http://[::1]:11434/v1?x=1", True, "[::1]:11434"),
        ("http://127.0.0.1:8080/v1", False, "http://127.0.0.1:8080/v1"),
        (None, False, "https://api.openai.com/v1"),
        ("", True, "api.openai.com"),
        ("user:secret@", False, "(an invalid URL)"),
        ("not a url?token=abc", False, "(an invalid URL)"),
        ("localhost", False, "localhost"),
    ],
)
def test_display_url_drops_credentials_query_and_fragment(url, host_only, shown):
    assert display_url(url, host_only=host_only) == shown


def test_failure_messages_show_the_address_without_credentials_or_query():
    url = f"http://user:secret@127.0.0.1:{free_port()}/v1?token=abc"
    engine = LLMEngine(Settings(llm_base_url=url, llm_api_key="sk-coach", llm_model="m"))
    with pytest.raises(LLMError) as caught:
        engine.complete("system", "user")
    message = str(caught.value)
    assert "is not answering" in message and "http://127.0.0.1:" in message
    assert not any(word in message for word in ("secret", "abc", "sk-coach"))


# ------------------------------------------------------------------------- run records


def one_case_suite(tmp_path):
    path = tmp_path / "one.yaml"
    case = {
        "id": "o-1",
        "situation": SITUATION,
        "expected_verdict": "management",
        "expected_focus": ["M1"],
    }
    path.write_text(yaml.safe_dump({"name": "one", "cases": [case]}))
    return load_suite(path)


def test_a_run_record_names_the_servers_and_the_judge_without_their_secrets(
    tmp_path, monkeypatch, openai_server: OpenAIServer
):
    settings0, index, store = shared_env()
    port = openai_server.port
    monkeypatch.setenv("COACH_DATA_DIR", str(settings0.data_dir))
    monkeypatch.setenv("COACH_LLM_BASE_URL", f"http://user:secret@127.0.0.1:{port}/v1?token=abc")
    monkeypatch.setenv("COACH_LLM_MODEL", "coach-model")
    monkeypatch.setenv("COACH_LLM_API_KEY", "sk-coach-key")
    monkeypatch.setenv("COACH_JUDGE_BASE_URL", f"http://judge:hunter2@127.0.0.1:{port}/v1?sig=xyz")
    monkeypatch.setenv("COACH_JUDGE_MODEL", "judge-model")
    settings = Settings()
    coach = Coach(LLMEngine(settings), settings=settings, index=index, classifiers=store)
    openai_server.enqueue(openai_server.default_reply, "SCORE: 4\nREASON: Specific steps.")

    record = run_eval(
        [one_case_suite(tmp_path)], Target.from_coach(coach), judge=llm_judge(settings)
    )

    text = json.dumps(record)
    for secret in ("secret", "abc", "hunter2", "xyz", "sk-coach-key", "user:", "judge:"):
        at = text.find(secret)
        assert at < 0, f"{secret!r} is in the run record: {text[max(at - 120, 0) : at + 40]}"
    config = record["config"]
    assert config["params"]["llm_base_url"] == f"http://127.0.0.1:{port}/v1"
    assert config["llm_host"] == f"127.0.0.1:{port}"
    assert config["judge"]["model"] == "judge-model"
    assert config["judge"]["url"] == f"http://127.0.0.1:{port}/v1"
    assert not record["cases"][0].get("error"), record["cases"][0].get("traceback")
    # Both calls reached the server, each with its own model; the coaching key stayed home.
    coaching, judging = openai_server.chat_requests
    assert coaching.body["model"] == "coach-model" and judging.body["model"] == "judge-model"
    assert coaching.query == {"token": "abc"} and judging.query == {"sig": "xyz"}  # still sent
    assert "sk-coach-key" not in judging.headers.get("authorization", "")
    assert record["cases"][0]["scores"]["judge"]["value"] == 0.75


# ------------------------------------------------------------------------------ the judge


@pytest.fixture(autouse=True)
def fresh_warnings():
    judge_module._warn_once.cache_clear()


def test_without_a_judge_model_the_judge_warns_and_says_how_to_set_one(
    capsys, openai_server: OpenAIServer
):
    settings = Settings(llm_base_url=openai_server.base_url, llm_model="coach-model")
    rater = llm_judge(settings)

    err = capsys.readouterr().err
    assert "no judge model is set" in err and "coach-model" in err
    assert "COACH_JUDGE_MODEL" in err and "COACH_JUDGE_BASE_URL" in err
    assert rater.describe()["model"] == "coach-model"
    openai_server.enqueue("SCORE: 3\nREASON: ok.")
    rater.complete("rubric", "answer")
    assert openai_server.chat_requests[-1].body["model"] == "coach-model"


def test_a_judge_model_on_the_coaching_server_uses_the_coaching_key(
    capsys, openai_server: OpenAIServer
):
    settings = Settings(
        llm_base_url=openai_server.base_url,
        llm_model="coach-model",
        llm_api_key="sk-coach-key",
        judge_model="judge-model",
    )
    rater = llm_judge(settings)
    assert capsys.readouterr().err == ""  # the judge has its own model: nothing to warn about
    openai_server.enqueue("SCORE: 5\nREASON: fine.")
    rater.complete("rubric", "answer")
    sent = openai_server.chat_requests[-1]
    assert sent.body["model"] == "judge-model"
    assert sent.headers["authorization"] == "Bearer sk-coach-key"


@pytest.mark.parametrize(
    ("judge_key", "expected"), [(None, "not-needed"), ("sk-judge", "sk-judge")]
)
def test_a_judge_on_another_server_never_gets_the_coaching_key(
    openai_server: OpenAIServer, judge_key, expected
):
    settings = Settings(
        llm_base_url="http://127.0.0.1:9/v1",
        llm_api_key="sk-coach-key",
        judge_base_url=openai_server.base_url,
        judge_model="judge-model",
        judge_api_key=judge_key,
    )
    openai_server.enqueue("SCORE: 5\nREASON: fine.")
    llm_judge(settings).complete("rubric", "answer")
    assert openai_server.chat_requests[-1].headers["authorization"] == f"Bearer {expected}"


def test_judge_errors_name_the_judge_settings(openai_server: OpenAIServer):
    settings = Settings(
        llm_base_url=openai_server.base_url,
        judge_base_url=openai_server.base_url,
        judge_model="no-such-model",
    )
    openai_server.enqueue(status(404))
    with pytest.raises(LLMError, match="set COACH_JUDGE_MODEL to a model it serves"):
        llm_judge(settings).complete("rubric", "answer")


def test_no_judge_without_any_llm():
    with pytest.raises(ConfigError, match="COACH_JUDGE_MODEL"):
        llm_judge(Settings(llm_base_url=None, llm_api_key=None))
