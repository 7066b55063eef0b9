"""The library of coaching moves (knowledge/moves/): it loads, it is varied, and a bad file
fails at load with the file and the key named."""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from app.errors import ConfigError
from app.moves import Needs, load_actions, load_library, texts_for_matching
from app.passages import FOCUS_CODES

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
MAX_ACTION_SHARE = 0.12


@pytest.fixture(scope="module")
def library():
    return load_library(KNOWLEDGE)


def _sentences(text: str) -> list[str]:
    return [" ".join(s.lower().split()) for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


# --- the real library -------------------------------------------------------------------


def test_library_has_at_least_150_situations_on_every_side(library):
    assert len(library) >= 150
    sides = Counter(s.side for s in library.situations)
    assert set(sides) == {"management", "leadership", "both"}
    assert min(sides.values()) >= 30, sides


def test_situation_ids_are_unique_and_kebab_case(library):
    ids = [s.id for s in library.situations]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)


def test_every_move_names_a_known_action(library):
    known = set(load_actions(KNOWLEDGE))
    used = {m.action for s in library.situations for m in s.moves}
    assert used <= known, used - known
    assert library.actions.keys() == known


def test_every_draws_on_code_is_one_of_the_articles_responsibilities(library):
    codes = {c for s in library.situations for c in s.draws_on}
    assert codes <= set(FOCUS_CODES)
    # Every responsibility of the article is drawn on somewhere.
    assert codes == set(FOCUS_CODES)


def test_no_action_is_used_by_more_than_its_share_of_moves(library):
    actions = Counter(m.action for s in library.situations for m in s.moves)
    total = sum(actions.values())
    top, count = actions.most_common(1)[0]
    assert count / total <= MAX_ACTION_SHARE, f"{top} is used by {count} of {total} moves"


def test_no_do_sentence_repeats_across_the_library(library):
    seen: dict[str, str] = {}
    for situation in library.situations:
        for move in situation.moves:
            for sentence in _sentences(move.do):
                assert sentence not in seen, (
                    f"{situation.id} repeats a sentence of {seen[sentence]}: {sentence!r}"
                )
                seen[sentence] = situation.id


def test_a_situation_does_not_use_the_same_action_twice(library):
    for situation in library.situations:
        actions = [m.action for m in situation.moves]
        assert len(actions) == len(set(actions)), situation.id


def test_titles_and_applies_when_are_all_different(library):
    titles = [s.title.lower() for s in library.situations]
    applies = [s.applies_when.lower() for s in library.situations]
    assert len(set(titles)) == len(titles)
    assert len(set(applies)) == len(applies)


def test_every_theme_file_contributes_and_sources_are_recorded(library):
    files = {p.name for p in (KNOWLEDGE / "moves").glob("*.yaml")} - {"actions.yaml"}
    assert set(library.sources.values()) == files
    assert library.sources["boss-keeps-adding-priorities"] == "priorities.yaml"


def test_texts_for_matching_are_applies_when_signals_and_asks(library):
    situation = library.get("two-reports-in-open-conflict")
    texts = texts_for_matching(situation)
    assert texts[0] == situation.applies_when
    assert texts[1:] == [*situation.signals, *situation.asks]


def test_get_raises_keyerror_for_an_unknown_id(library):
    with pytest.raises(KeyError):
        library.get("no-such-situation")


def test_for_side_returns_only_that_side(library):
    leadership = library.for_side("leadership")
    assert leadership and all(s.side == "leadership" for s in leadership)


# --- needs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("needs", "facts", "allowed"),
    [
        ({}, {"has_boss": False, "formal_authority": False}, True),
        ({"has_boss": True}, {"has_boss": True}, True),
        ({"has_boss": True}, {"has_boss": False}, False),
        ({"has_boss": True}, {}, True),  # unknown facts never rule a situation out
        ({"has_boss": True}, {"has_boss": None}, True),
        ({"formal_authority": False}, {"formal_authority": True}, False),
        ({"has_boss": True, "formal_authority": True}, {"formal_authority": False}, False),
        ({"formal_authority": True}, {"formal_authority": True, "has_boss": False}, True),
        ({"has_reports": False}, {"has_reports": True}, False),
    ],
)
def test_needs_are_contradicted_only_by_known_facts(needs, facts, allowed):
    assert Needs(**needs).allows(facts) is allowed


def test_the_library_uses_needs_where_they_matter(library):
    assert library.get("leading-a-project-without-authority").needs.formal_authority is False
    assert library.get("boss-keeps-adding-priorities").needs.has_boss is True
    assert library.get("founder-as-the-bottleneck").needs.has_boss is False


# --- bad files --------------------------------------------------------------------------

VALID = {
    "id": "test-situation",
    "title": "A test situation",
    "applies_when": "A situation written only for this test.",
    "signals": ["first signal", "second signal", "third signal"],
    "asks": ["What do I do?"],
    "answer": "Do the right thing.",
    "side": "management",
    "draws_on": ["M1"],
    "moves": [
        {"action": "set_priorities", "do": "Rank the work."},
        {"action": "escalate_to_boss", "do": "Ask your manager.", "say": '"Which comes first?"'},
    ],
    "pitfall": "Doing everything.",
    "watch": "Whether it holds.",
}


def _knowledge_with(tmp_path: Path, files: dict[str, list[dict]]) -> Path:
    """A knowledge folder with the real actions.yaml and the given theme files."""
    moves = tmp_path / "knowledge" / "moves"
    moves.mkdir(parents=True)
    shutil.copy(KNOWLEDGE / "moves" / "actions.yaml", moves / "actions.yaml")
    for name, situations in files.items():
        doc = {"version": 1, "theme": "Test", "situations": situations}
        (moves / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return tmp_path / "knowledge"


def _variant(**changes) -> dict:
    situation = copy.deepcopy(VALID)
    situation.update(changes)
    return situation


def test_a_valid_file_loads(tmp_path):
    lib = load_library(_knowledge_with(tmp_path, {"test.yaml": [VALID]}))
    assert [s.id for s in lib.situations] == ["test-situation"]
    assert lib.get("test-situation").moves[1].say == '"Which comes first?"'


def _error(tmp_path: Path, situations: list[dict], name: str = "broken.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_library(_knowledge_with(tmp_path, {name: situations}))
    return caught.value.message


def test_a_misspelt_key_names_the_file_and_the_key(tmp_path):
    bad = _variant()
    bad["pitfal"] = bad.pop("pitfall")
    message = _error(tmp_path, [VALID | {"id": "fine-one"}, bad])
    assert message.startswith("broken.yaml: situations.1: ")
    assert "unknown key 'pitfal': rename it to 'pitfall'" in message


def test_a_missing_key_names_the_file_and_the_key(tmp_path):
    bad = _variant()
    del bad["watch"]
    message = _error(tmp_path, [bad])
    assert message == "broken.yaml: situations.0.watch: Field required."


def test_a_misspelt_key_inside_a_move_names_its_path(tmp_path):
    bad = _variant()
    bad["moves"][0] = {"action": "set_priorities", "doo": "Rank the work."}
    message = _error(tmp_path, [bad])
    assert message.startswith("broken.yaml: situations.0.moves.0: ")
    assert "unknown key 'doo': rename it to 'do'" in message


def test_an_unknown_needs_key_is_an_error(tmp_path):
    message = _error(tmp_path, [_variant(needs={"has_bos": True})])
    assert message.startswith("broken.yaml: situations.0.needs: ")
    assert "unknown key 'has_bos': rename it to 'has_boss'" in message


def test_an_unknown_key_with_no_near_match_lists_the_valid_keys(tmp_path):
    message = _error(tmp_path, [_variant(colour="blue")])
    assert "unknown key 'colour': remove it or use one of id, title," in message


def test_an_unknown_action_names_the_file_the_key_and_the_action(tmp_path):
    bad = _variant()
    bad["moves"][1]["action"] = "talk_it_out"
    message = _error(tmp_path, [bad])
    assert "broken.yaml" in message
    assert "situations.0.moves.1.action" in message
    assert "talk_it_out" in message
    assert "actions.yaml" in message  # says where the valid ids are


def test_an_unknown_draws_on_code_is_an_error(tmp_path):
    message = _error(tmp_path, [_variant(draws_on=["M1", "M4"])])
    assert "broken.yaml" in message
    assert "situations.0.draws_on.1" in message


def test_an_unknown_side_is_an_error(tmp_path):
    message = _error(tmp_path, [_variant(side="neither")])
    assert "situations.0.side" in message


def test_a_too_long_do_is_an_error_that_says_how_to_fix_it(tmp_path):
    bad = _variant()
    bad["moves"][0]["do"] = "word " * 46
    message = _error(tmp_path, [bad])
    assert "situations.0.moves.0.do" in message
    assert "45" in message


def test_too_few_moves_is_an_error(tmp_path):
    bad = _variant()
    bad["moves"] = bad["moves"][:1]
    message = _error(tmp_path, [bad])
    assert "situations.0.moves" in message


def test_a_non_kebab_id_is_an_error(tmp_path):
    message = _error(tmp_path, [_variant(id="Boss_Adds_Work")])
    assert "situations.0.id" in message


def test_an_id_used_in_two_files_names_both_files(tmp_path):
    knowledge = _knowledge_with(tmp_path, {"a.yaml": [VALID], "b.yaml": [VALID]})
    with pytest.raises(ConfigError) as caught:
        load_library(knowledge)
    assert "a.yaml" in caught.value.message
    assert "b.yaml" in caught.value.message
    assert "test-situation" in caught.value.message


def test_invalid_yaml_names_the_file(tmp_path):
    knowledge = _knowledge_with(tmp_path, {})
    (knowledge / "moves" / "broken.yaml").write_text("situations: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_library(knowledge)
    assert "broken.yaml" in caught.value.message


def test_a_missing_moves_folder_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_library(tmp_path)
    assert "knowledge/moves" in caught.value.message


def test_a_folder_without_situations_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_library(_knowledge_with(tmp_path, {}))
    assert "No situations" in caught.value.message


def test_the_library_is_read_again_when_a_file_changes(tmp_path):
    knowledge = _knowledge_with(tmp_path, {"test.yaml": [VALID]})
    first = load_library(knowledge)
    assert load_library(knowledge) is first  # cached while nothing changed
    path = knowledge / "moves" / "test.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["situations"][0]["title"] = "A changed title"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_library(knowledge).get("test-situation").title == "A changed title"
