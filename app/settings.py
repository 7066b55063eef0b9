"""One typed settings object, read from ``COACH_*`` environment variables."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the coach can be configured with. Secrets come only from the environment."""

    model_config = SettingsConfigDict(env_prefix="COACH_", extra="ignore")

    data_dir: Path = Field(
        PROJECT_ROOT / ".coach",
        description="Folder for the index, the classifier and the databases (COACH_DATA_DIR).",
    )
    knowledge_dir: Path = Field(
        PROJECT_ROOT / "knowledge",
        description="Folder of Markdown articles the coach is grounded in (COACH_KNOWLEDGE_DIR).",
    )
    prompts_dir: Path = Field(
        PROJECT_ROOT / "prompts",
        description="Folder of versioned prompt files (COACH_PROMPTS_DIR).",
    )
    tokenizer_path: Path = Field(
        PROJECT_ROOT / "models" / "all-MiniLM-L6-v2" / "tokenizer.json",
        description="tokenizer.json of all-MiniLM-L6-v2 (COACH_TOKENIZER_PATH).",
    )
    training_path: Path = Field(
        PROJECT_ROOT / "knowledge" / "training",
        description="Labelled situations the offline classifier learns from: a YAML file, or a "
        "folder whose *.yaml files are all read (COACH_TRAINING_PATH).",
    )
    collection: str = Field(
        "coach", description="Base name of the Chroma collection (COACH_COLLECTION)."
    )
    k: int = Field(4, ge=1, le=20, description="Passages retrieved per question (COACH_K).")
    engine: Literal["offline", "llm", "local", "auto"] = Field(
        "auto",
        description="offline, llm, local (the built-in llama.cpp server, COACH_LOCAL_MODEL), "
        "or auto: the LLM when a key or base URL is set, else the local model when "
        "COACH_LOCAL_MODEL is set, else offline (COACH_ENGINE).",
    )
    prompt: str = Field(
        "coach@v1", description="Prompt name@version the LLM engine uses (COACH_PROMPT)."
    )
    llm_model: str = Field("gpt-4o-mini", description="LLM model name (COACH_LLM_MODEL).")
    llm_base_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server, e.g. http://localhost:11434/v1 "
        "(COACH_LLM_BASE_URL).",
    )
    llm_api_key: SecretStr | None = Field(
        None, description="Key for the LLM server; OPENAI_API_KEY is used when unset."
    )
    llm_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds to wait for the LLM server's next bytes (COACH_LLM_TIMEOUT); the "
        "whole answer is bounded by COACH_LLM_DEADLINE.",
    )
    llm_max_attempts: int = Field(3, ge=1, le=10, description="Attempts on 429 and 5xx.")
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    llm_max_tokens: int = Field(
        900,
        ge=64,
        le=32_768,
        description="Most tokens the model may write in one reply, sent as max_tokens on every "
        "call; the local engine's grammar fits the whole reply inside it (COACH_LLM_MAX_TOKENS).",
    )
    # Bounds of one answer, and the eval judge's own model: grouped here on purpose.
    llm_deadline: float = Field(
        120.0,
        gt=0,
        description="Seconds one whole LLM answer may take, retries and repair included; a "
        "longer answer is cut off with a notice (COACH_LLM_DEADLINE).",
    )
    llm_max_reply_chars: int = Field(
        24_000,
        ge=500,
        description="Longest LLM reply read, in characters; a longer one is cut off with a "
        "notice, so a runaway server cannot fill the memory (COACH_LLM_MAX_REPLY_CHARS).",
    )
    judge_model: str | None = Field(
        None,
        description="Model the eval judge grades with (COACH_JUDGE_MODEL); unset, the judge "
        "uses COACH_LLM_MODEL and says so, since a model grading itself is a weak judge.",
    )
    judge_base_url: str | None = Field(
        None,
        description="OpenAI-compatible server of the judge's model (COACH_JUDGE_BASE_URL); "
        "unset, the judge uses the coaching server (COACH_LLM_BASE_URL, or OpenAI).",
    )
    judge_api_key: SecretStr | None = Field(
        None,
        description="Key for the judge's server (COACH_JUDGE_API_KEY); unset, the coaching "
        "key is used only when the judge uses the coaching server.",
    )
    # The built-in local runtime (COACH_ENGINE=local, app.local_runtime): grouped on purpose.
    local_model: Path | None = Field(
        None,
        description="A GGUF model file that the built-in llama.cpp server runs on 127.0.0.1 "
        "(COACH_LOCAL_MODEL); `make local-model` fetches one.",
    )
    local_threads: int = Field(
        default_factory=lambda: _default_threads(),
        ge=1,
        le=256,
        description="CPU threads the local model computes with (COACH_LOCAL_THREADS); default "
        "the usable cores, at most 4.",
    )
    local_ctx: int = Field(
        4096,
        ge=1024,
        le=131_072,
        description="Context size of the local model in tokens, prompt and reply together "
        "(COACH_LOCAL_CTX).",
    )
    local_port: int | None = Field(
        None,
        ge=1,
        le=65_535,
        description="Port of the local model's server on 127.0.0.1 (COACH_LOCAL_PORT); unset, "
        "a free port is chosen.",
    )
    local_seed: int = Field(
        42,
        ge=0,
        description="Sampling seed of the local model (COACH_LOCAL_SEED), so the same question "
        "gets the same answer; with COACH_LLM_TEMPERATURE=0 the answer is the likeliest anyway.",
    )
    max_input_chars: int = Field(
        20_000, ge=100, description="Longer situations are truncated with a notice."
    )
    max_upload_bytes: int = Field(
        5_000_000,
        ge=1024,
        description="Largest file accepted, in the CLI and the browser (bytes; 5 MB = "
        "5,000,000). The server's cap, server.maxUploadSize in .streamlit/config.toml, must "
        "be at least this many MB (COACH_MAX_UPLOAD_BYTES).",
    )
    min_confidence: float = Field(
        0.40, ge=0, le=1, description="Below this the offline engine asks instead of judging."
    )
    history_chars: int = Field(
        6_000, ge=0, description="Earlier conversation kept as context for follow-ups."
    )
    database_url: SecretStr | None = Field(
        None,
        description="Where conversations are stored: unset for conversations.db (SQLite) in the "
        "data folder, postgresql://user:password@host:5432/database for a team "
        "(COACH_DATABASE_URL). It may hold a password, so it is never shown or logged.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Delete conversations untouched for this many days, at the app's start and "
        "daily after (COACH_RETENTION_DAYS); unset keeps them until deleted.",
    )
    allow_open: bool = Field(
        False,
        description="Serve the web app without sign-in on an address other machines can reach "
        "(everyone who opens it can read every conversation) (COACH_ALLOW_OPEN).",
    )
    chroma_url: SecretStr | None = Field(
        None,
        description="Where the article index lives: unset for the chroma/ folder in the data "
        "folder, http://host:8000 for a Chroma server (`chroma run`) a team shares "
        "(COACH_CHROMA_URL). user:password@ in it is sent as HTTP Basic auth, so it is never "
        "shown or logged.",
    )

    def api_key(self) -> str | None:
        """The LLM key from COACH_LLM_API_KEY or OPENAI_API_KEY, never logged."""
        import os

        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value() or None
        return os.environ.get("OPENAI_API_KEY") or None

    def llm_configured(self) -> bool:
        return bool(self.api_key() or self.llm_base_url)

    def resolved_engine(self) -> Literal["offline", "llm", "local"]:
        if self.engine == "auto":
            if self.llm_configured():
                return "llm"
            return "local" if self.local_model else "offline"
        return self.engine

    def ensure_data_dir(self) -> Path:
        """Create the data folder if missing; a clear error if it is a file or read-only."""
        path = self.data_dir
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"COACH_DATA_DIR points at a file ({path}): point it at a folder, "
                "or unset it to use .coach/ in the project."
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            # A nameless file of this process's own: processes starting together never
            # delete each other's probe.
            with tempfile.TemporaryFile(dir=path) as probe:
                probe.write(b"ok")
        except OSError as exc:
            raise ConfigError(
                f"The data folder {path} cannot be written ({exc.strerror}): "
                "set COACH_DATA_DIR to a folder you can write to."
            ) from None
        return path


def _default_threads() -> int:
    """The cores this process may use, at most 4 (more rarely helps a small model)."""
    import os

    return max(1, min(4, len(os.sched_getaffinity(0))))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
