"""Which language a situation is written in, read with lingua's bundled models.

The detector knows a moderate set of languages: the common European ones, every
language lingua reads in Cyrillic (so Ukrainian or Bulgarian is never taken for
Russian just for its script), and the major world languages. It is built once, on
first use, in lingua's low-accuracy mode: trigram models only, which load in a
fraction of a second and some tens of MB where the full models take seconds and
hundreds of MB, and which read a few sentences as well. Short or ambiguous text is
English, the language the coach answers in anyway.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import LanguageDetector

DEFAULT = "English"
MIN_WORDS = 3  # fewer words than this (or CJK characters / 2) is too short to judge
MAX_CHARS = 1000  # the start of a long text says as much as all of it, for a fraction of the time
MIN_CONFIDENCE = 0.5  # the likeliest language's share of the detector's confidence
MIN_LEAD = 0.15  # ... and how far ahead of the second it must be

# fmt: off
LANGUAGES = (
    # Latin script, Europe and beyond
    "ENGLISH", "SPANISH", "FRENCH", "GERMAN", "ITALIAN", "PORTUGUESE", "DUTCH", "POLISH",
    "CZECH", "SLOVAK", "ROMANIAN", "HUNGARIAN", "SWEDISH", "DANISH", "BOKMAL", "FINNISH",
    "TURKISH", "CROATIAN", "INDONESIAN", "VIETNAMESE",
    # every Cyrillic language lingua knows
    "RUSSIAN", "UKRAINIAN", "BELARUSIAN", "BULGARIAN", "SERBIAN", "MACEDONIAN", "KAZAKH",
    "MONGOLIAN",
    # other scripts
    "GREEK", "CHINESE", "JAPANESE", "KOREAN", "ARABIC", "HEBREW", "HINDI", "PERSIAN", "THAI",
)
# fmt: on
NAMES = {"BOKMAL": "Norwegian"}  # lingua's names where the common one differs

_WORD = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_lock = threading.Lock()
_detector: LanguageDetector | None = None


def detector() -> LanguageDetector:
    """The shared detector, built on first use (lingua is imported only then)."""
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            languages = [getattr(Language, name) for name in LANGUAGES]
            _detector = LanguageDetectorBuilder.from_languages(*languages)
            _detector = _detector.with_low_accuracy_mode().build()
        return _detector


def language_name(language: object) -> str:
    """``Language.UKRAINIAN`` → ``"Ukrainian"``."""
    code = getattr(language, "name", str(language))
    return NAMES.get(code, code.title())


def too_short(text: str) -> bool:
    """Too little text to tell one language from another."""
    cjk = len(_CJK.findall(text))
    words = len(_WORD.findall(_CJK.sub(" ", text)))
    return words + cjk // 2 < MIN_WORDS


def detect_language(text: str) -> str:
    """The language ``text`` is written in ("English", "Ukrainian", ...); English when
    the text is short or the detector is unsure."""
    sample = (text or "")[:MAX_CHARS]
    if too_short(sample):
        return DEFAULT
    ranked = detector().compute_language_confidence_values(sample)
    if not ranked:
        return DEFAULT
    best = ranked[0]
    runner_up = ranked[1].value if len(ranked) > 1 else 0.0
    if best.value < MIN_CONFIDENCE or best.value - runner_up < MIN_LEAD:
        return DEFAULT
    return language_name(best.language)
