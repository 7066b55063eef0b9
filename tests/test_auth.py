"""Sign-in and private conversations without a browser: the [auth] check, who can reach the
app, the store as one owner sees it, and the pages AppTest sees (the real provider and
Chromium are in test_auth_browser.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.errors import ConfigError
from app.settings import Settings, get_settings
from app.store import ConversationStore
from app.web import auth

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
SECRET = "0123456789abcdef" * 4
ISSUER = "http://127.0.0.1:9999"
GOOD_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": SECRET,
    "client_id": "coach",
    "client_secret": "coach-secret",
    "server_metadata_url": f"{ISSUER}/.well-known/openid-configuration",
}


# ---------------------------------------------------------------- the [auth] section


def test_no_auth_section_means_the_single_user_app() -> None:
    assert auth.sign_in_config({}) is None
    assert auth.sign_in_config({"other": {"x": 1}}) is None


def test_a_default_provider_and_named_providers_are_read() -> None:
    assert auth.sign_in_config({"auth": GOOD_AUTH}).providers == ("default",)
    shared = {k: GOOD_AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    provider = {k: GOOD_AUTH[k] for k in auth.PROVIDER_KEYS}
    named = {"auth": {**shared, "google": provider, "okta": provider}}
    assert auth.sign_in_config(named).providers == ("google", "okta")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"redirect_uri": None}, "redirect_uri"),
        ({"redirect_uri": "http://127.0.0.1:8501/"}, "/oauth2callback"),
        ({"redirect_uri": "127.0.0.1:8501/oauth2callback"}, "redirect_uri"),
        ({"cookie_secret": None}, "cookie_secret"),
        ({"cookie_secret": "short"}, "at least 32 characters"),
        ({"client_secret": None}, "missing client_secret"),
        ({"server_metadata_url": None}, "missing server_metadata_url"),
        ({"client_id": None, "client_secret": None, "server_metadata_url": None}, "no identity"),
    ],
)
def test_an_incomplete_auth_section_is_refused_naming_what_to_fix(change, named) -> None:
    section = {k: v for k, v in {**GOOD_AUTH, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match="Sign-in is misconfigured") as raised:
        auth.sign_in_config({"auth": section})
    assert named in raised.value.message


def test_a_named_provider_missing_keys_or_with_an_underscore_is_refused() -> None:
    shared = {k: GOOD_AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    with pytest.raises(ConfigError, match=r"\[auth.okta\] .* missing client_id"):
        auth.sign_in_config({"auth": {**shared, "okta": {"client_secret": "x"}}})
    provider = {k: GOOD_AUTH[k] for k in auth.PROVIDER_KEYS}
    with pytest.raises(ConfigError, match="underscore"):
        auth.sign_in_config({"auth": {**shared, "my_idp": provider}})


def test_the_owner_is_issuer_and_subject() -> None:
    assert auth.owner_of({"iss": ISSUER, "sub": "u-1", "email": "a@b"}) == f"{ISSUER} u-1"
    # The same subject at another provider is another person.
    assert auth.owner_of({"iss": "https://other", "sub": "u-1"}) != f"{ISSUER} u-1"
    with pytest.raises(ConfigError, match="did not say who you are"):
        auth.owner_of({"iss": ISSUER, "email": "a@b"})


# ---------------------------------------------------------------- who can reach the app


@pytest.mark.parametrize(
    ("address", "headers", "reachable"),
    [
        ("127.0.0.1", [("Host", "127.0.0.1:8501")], False),
        ("localhost", [("Host", "localhost:8501")], False),
        ("::1", [("Host", "[::1]:8501")], False),
        ("127.0.0.1", [], False),  # not served over HTTP (AppTest, a bare run)
        ("0.0.0.0", [("Host", "127.0.0.1:8501")], True),
        ("::", [("Host", "[::1]:8501")], True),
        (None, [("Host", "localhost:8501")], True),  # no address: every interface
        ("", [("Host", "localhost:8501")], True),
        ("192.0.2.2", [("Host", "192.0.2.2:8501")], True),
        ("coach.example.com", [("Host", "coach.example.com")], True),
        ("127.0.0.1", [("Host", "coach.example.com")], True),  # a proxy passing the Host on
        ("127.0.0.1", [("Host", "127.0.0.1:8501"), ("X-Forwarded-For", "203.0.113.7")], True),
        ("127.0.0.1", [("host", "127.0.0.1"), ("x-forwarded-host", "coach.example.com")], True),
        ("127.0.0.1", [("Host", "127.0.0.1"), ("X-Real-IP", "198.51.100.1")], True),
        ("127.0.0.1", [("Host", "127.0.0.1"), ("Forwarded", 'for="[2001:db8::1]:4711"')], True),
        (
            "127.0.0.1",
            [("Host", "127.0.0.1"), ("Forwarded", "for=127.0.0.1;host=localhost")],
            False,
        ),
        ("127.0.0.1", [("Host", "127.0.0.1"), ("X-Forwarded-For", "127.0.0.1, ::1")], False),
    ],
)
def test_who_can_reach_the_app(address, headers, reachable) -> None:
    assert auth.reachable_from_network(address, headers) is reachable


def test_allow_open_is_a_setting_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("COACH_ALLOW_OPEN", raising=False)
    assert Settings().allow_open is False
    monkeypatch.setenv("COACH_ALLOW_OPEN", "1")
    assert Settings().allow_open is True


# ---------------------------------------------------------------- the store as one owner sees it


class RecordingStore:
    """A store with one owner-aware method, one without, and a plain attribute."""

    path = "conversations.db"

    def __init__(self) -> None:
        self.owners: list[str] = []

    def list_conversations(self, limit: int = 100, *, owner: str = "local") -> list:
        self.owners.append(owner)
        return []

    def everything(self) -> str:
        return "every user's rows"


def test_every_call_through_the_owned_store_carries_the_owner() -> None:
    store = RecordingStore()
    alice = auth.Visitor(owner=f"{ISSUER} alice", signed_in=True)
    owned = auth.owned(store, alice)  # type: ignore[arg-type]
    owned.list_conversations()
    owned.list_conversations(limit=5)
    assert store.owners == [f"{ISSUER} alice"] * 2
    assert owned.path == "conversations.db"


def test_a_method_without_an_owner_is_refused_for_a_signed_in_user() -> None:
    store = RecordingStore()
    signed_in = auth.owned(store, auth.Visitor("x y", True))  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="takes no owner"):
        signed_in.everything()
    # The single user may: an owner-less store method is theirs.
    local = auth.owned(store, auth.Visitor(auth.LOCAL_OWNER, False))  # type: ignore[arg-type]
    assert local.everything() == "every user's rows"


def test_two_owners_cannot_reach_each_others_conversations(tmp_path) -> None:
    """Through the real store: what alice creates, bob cannot list, open, rename or delete."""
    store = ConversationStore(tmp_path / "conversations.db")
    alice = auth.owned(store, auth.Visitor(f"{ISSUER} alice", True))
    bob = auth.owned(store, auth.Visitor(f"{ISSUER} bob", True))
    theirs = alice.create_conversation("My two leads argue in every planning meeting.")
    alice.add_user_message(theirs.id, "My two leads argue in every planning meeting.")
    assert [c.id for c in alice.list_conversations()] == [theirs.id]
    assert bob.list_conversations() == []
    assert bob.conversation(theirs.id) is None
    assert bob.messages(theirs.id) == []
    assert not bob.delete(theirs.id)
    assert bob.rename(theirs.id, "taken over") is None
    kept = alice.conversation(theirs.id)
    assert kept is not None and kept.title.startswith("My two leads")
    assert [m.text for m in alice.messages(theirs.id)] == [
        "My two leads argue in every planning meeting."
    ]


# ---------------------------------------------------------------- the page (AppTest)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    for name in [n for n in os.environ if n.startswith(("COACH_", "OPENAI_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def tab(secrets: dict | None = None, user: dict | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    at.query_params.update(query)
    return at.run()


def test_before_sign_in_there_is_nothing_but_the_sign_in_screen(data_dir) -> None:
    existing = ConversationStore(data_dir / "conversations.db")
    secret = existing.create_conversation("A private matter about a report's diagnosis.")
    at = tab({"auth": GOOD_AUTH}, user={"is_logged_in": False}, c=secret.id)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert len(at.chat_input) == 0 and len(at.sidebar.children) == 0
    shown = " ".join(m.value for m in at.markdown)
    assert "Sign in to talk with the coach" in shown
    assert "private matter" not in shown and "diagnosis" not in shown


def test_named_providers_each_get_a_sign_in_button(data_dir) -> None:
    shared = {k: GOOD_AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    provider = {k: GOOD_AUTH[k] for k in auth.PROVIDER_KEYS}
    at = tab({"auth": {**shared, "google": provider, "microsoft": provider}})
    assert [b.label for b in at.button] == ["Sign in with Google", "Sign in with Microsoft"]
    assert len(at.chat_input) == 0


def test_a_broken_auth_section_shows_only_what_to_fix(data_dir) -> None:
    at = tab({"auth": {**GOOD_AUTH, "cookie_secret": "short"}})
    assert [e.value for e in at.error] and "cookie_secret" in at.error[0].value
    assert len(at.chat_input) == 0 and len(at.button) == 0 and len(at.sidebar.children) == 0


def gate_page() -> None:
    """Only the gate at the top of streamlit_app.py, and what it returns."""
    import streamlit as st

    from app.settings import get_settings
    from app.web import auth

    visitor = auth.visitor(get_settings())
    st.write(f"owner: {visitor.owner}")


def gate(secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_function(gate_page, default_timeout=30)
    if secrets:
        at.secrets.update(secrets)
    if user is not None:
        at.user = user
    return at.run()


def test_without_auth_the_sidebar_says_it_is_single_user(data_dir) -> None:
    at = gate()
    assert not at.exception
    assert auth.SINGLE_USER_NOTE in " ".join(c.value for c in at.sidebar.caption)
    assert "owner: local" in [m.value for m in at.markdown]
    assert "Sign out" not in [b.label for b in at.button]


def test_a_signed_in_user_is_named_in_the_sidebar_and_owns_by_issuer_and_subject(data_dir) -> None:
    claims = {"iss": ISSUER, "sub": "user-alice", "name": "Alice", "email": "alice@example.test"}
    at = gate({"auth": GOOD_AUTH}, user={"is_logged_in": True, **claims})
    assert not at.exception
    assert f"owner: {ISSUER} user-alice" in [m.value for m in at.markdown]
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "Signed in as **Alice**" in sidebar
    assert [b.label for b in at.sidebar.button] == ["Sign out"]
    assert auth.SINGLE_USER_NOTE not in " ".join(c.value for c in at.sidebar.caption)


def test_a_token_without_a_subject_is_not_let_in(data_dir) -> None:
    at = gate({"auth": GOOD_AUTH}, user={"is_logged_in": True, "iss": ISSUER, "name": "X"})
    assert "did not say who you are" in at.error[0].value
    assert not [m.value for m in at.markdown if m.value.startswith("owner:")]


def test_another_person_in_the_same_tab_starts_afresh(data_dir) -> None:
    at = AppTest.from_function(gate_page, default_timeout=30)
    at.secrets.update({"auth": GOOD_AUTH})
    at.user = {"is_logged_in": True, "iss": ISSUER, "sub": "user-alice"}
    at.run()
    at.session_state["coach_chat"] = "alice's open conversation"
    at.user = {"is_logged_in": True, "iss": ISSUER, "sub": "user-bob"}
    at.run()
    assert "coach_chat" not in at.session_state
    assert f"owner: {ISSUER} user-bob" in [m.value for m in at.markdown]
