"""The coach's error hierarchy: every message is safe to show a user and says what to do."""


class CoachError(Exception):
    """Base class. ``message`` is plain, user-facing text that says what to do next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(CoachError):
    """The user's text or file cannot be coached as it is."""


class UploadError(InputError):
    """An uploaded or given file cannot be read."""


class KnowledgeError(CoachError):
    """A knowledge file is malformed."""


class IndexUnavailable(CoachError):
    """The Chroma index is missing, corrupted or locked."""


class ConfigError(CoachError):
    """A setting is wrong (data folder, engine choice, prompt reference)."""


class PromptError(CoachError):
    """A prompt file is missing, malformed, or a template variable is missing."""


class LLMError(CoachError):
    """The LLM server failed or refused; the message names the cause."""


class SuiteError(CoachError):
    """An eval suite file is invalid; the message names the file, case and field."""
