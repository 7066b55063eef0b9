"""The language a situation is written in, with English for short or unclear text."""

from __future__ import annotations

import time

import pytest

from app.language import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Our deadlines slip because nobody knows who owns which task.", "English"),
        (
            "Mi equipo no sabe cuáles son los objetivos y nadie sabe quién es responsable de "
            "cada tarea.",
            "Spanish",
        ),
        (
            "Mein Team weiß nicht, was die Ziele sind, und niemand fühlt sich verantwortlich.",
            "German",
        ),
        (
            "Mon équipe ne sait pas quels sont les objectifs et personne ne se sent responsable.",
            "French",
        ),
        (
            "Моя команда не знает, кто отвечает за какую задачу, и сроки постоянно срываются.",
            "Russian",
        ),
        (
            "Моя команда не знає, хто відповідає за яке завдання, і терміни постійно зриваються.",
            "Ukrainian",
        ),
        ("Служителите не вярват на новия ръководител и никой не поема отговорност.", "Bulgarian"),
        (
            "Mój zespół nie wie, kto odpowiada za które zadanie, a terminy ciągle się przesuwają.",
            "Polish",
        ),
        (
            "Ekibim hangi görevden kimin sorumlu olduğunu bilmiyor ve teslim tarihleri kayıyor.",
            "Turkish",
        ),
        ("我的团队不知道谁负责哪项任务，截止日期总是拖延。", "Chinese"),
        (
            "Il mio gruppo non sa chi è responsabile di quale compito e le scadenze slittano.",
            "Italian",
        ),
        (
            "A minha equipa não sabe quem é responsável por cada tarefa e os prazos atrasam.",
            "Portuguese",
        ),
        (
            "Mijn team weet niet wie verantwoordelijk is voor welke taak en deadlines worden gemist.",
            "Dutch",
        ),
    ],
)
def test_languages_are_told_apart(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "text", ["", "   ", "Hola", "Merci beaucoup", "Привет", "你好", "ok thanks", "12 34 56", "!!!"]
)
def test_short_text_is_english(text: str) -> None:
    assert detect_language(text) == "English"


def test_cyrillic_is_not_always_russian_nor_latin_always_english() -> None:
    cyrillic = {
        detect_language(
            "Працівники не довіряють новому керівнику, і ніхто не бере відповідальність."
        ),
        detect_language("Служителите не вярват на новия ръководител и никой не поема отговорност."),
        detect_language(
            "Сотрудники не доверяют новому руководителю, и никто не берёт ответственность."
        ),
    }
    assert cyrillic == {"Ukrainian", "Bulgarian", "Russian"}
    latin = {
        detect_language(
            "Pracownicy nie ufają nowemu kierownikowi i nikt nie bierze odpowiedzialności."
        ),
        detect_language("Çalışanlar yeni yöneticiye güvenmiyor ve kimse sorumluluk almıyor."),
    }
    assert latin == {"Polish", "Turkish"}


def test_a_short_text_is_read_in_a_few_milliseconds() -> None:
    text = "Nobody on my team knows who owns the release notes."
    detect_language(text)  # the detector and its models load on first use
    started = time.perf_counter()
    for _ in range(50):
        detect_language(text)
    per_call_ms = (time.perf_counter() - started) * 1000 / 50
    assert per_call_ms < 5, per_call_ms
