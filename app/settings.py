"""One typed settings object, read from ``COACH_*`` environment variables."""

from __future__ import annotations

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
    engine: Literal["offline", "llm", "auto"] = Field(
        "auto",
        description="offline, llm, or auto: the LLM when a key or base URL is set (COACH_ENGINE).",
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
    llm_timeout: float = Field(60.0, gt=0, description="Seconds before an LLM call times out.")
    llm_max_attempts: int = Field(3, ge=1, le=10, description="Attempts on 429 and 5xx.")
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
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

    def api_key(self) -> str | None:
        """The LLM key from COACH_LLM_API_KEY or OPENAI_API_KEY, never logged."""
        import os

        if self.llm_api_key is not None:
            return self.llm_api_key.get_secret_value() or None
        return os.environ.get("OPENAI_API_KEY") or None

    def llm_configured(self) -> bool:
        return bool(self.api_key() or self.llm_base_url)

    def resolved_engine(self) -> Literal["offline", "llm"]:
        if self.engine == "auto":
            return "llm" if self.llm_configured() else "offline"
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
            probe = path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"The data folder {path} cannot be written ({exc.strerror}): "
                "set COACH_DATA_DIR to a folder you can write to."
            ) from None
        return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
