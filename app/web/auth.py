"""Who is using the app: sign-in with Streamlit's OpenID Connect, or the single local user.

The one module that talks to ``st.login``, ``st.user`` and ``st.logout``. With an ``[auth]``
section in ``.streamlit/secrets.toml`` a visitor sees only a sign-in screen until the identity
provider says who they are; every conversation then belongs to ``"<issuer> <subject>"``.
Without one, the app is the single-user local app, and it refuses to show anything but a
warning when it can be reached from other machines, unless ``COACH_ALLOW_OPEN=1``.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.errors import ConfigError
from app.safe_text import plain_markdown, safe_markdown
from app.settings import Settings
from app.store import ConversationStore

LOCAL_OWNER = "local"
DEFAULT_PROVIDER = "default"
OWNER_KEY = "coach_owner"
MIN_COOKIE_SECRET_CHARS = 32
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")

SINGLE_USER_NOTE = "Single-user mode: anyone who can open this page can read every conversation."
OPEN_WARNING = (
    "This app can be reached from other machines and has no sign-in, so anyone who opens it "
    "could read every conversation. Configure sign-in (an `[auth]` section in "
    "`.streamlit/secrets.toml`, see 'Running for a team' in the README), serve it on "
    "127.0.0.1 only, or set `COACH_ALLOW_OPEN=1` and restart if every visitor may see "
    "everything."
)
SIGN_IN_TEXT = (
    "Sign in to talk with the coach. Your conversations are private: only you can see, "
    "download or delete them."
)
# Headers a reverse proxy adds with the address the visitor really used.
FORWARDING_HEADERS = ("x-forwarded-host", "x-forwarded-for", "x-real-ip", "forwarded")


@dataclass(frozen=True)
class Visitor:
    """The person using this browser tab and the owner name their data is stored under."""

    owner: str
    signed_in: bool
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class SignInConfig:
    """The identity providers named in the ``[auth]`` section of the secrets."""

    providers: tuple[str, ...]


# ---------------------------------------------------------------- reading the [auth] section


def sign_in_config(secrets: Mapping[str, Any]) -> SignInConfig | None:
    """The sign-in set up in ``secrets``, None without an ``[auth]`` section.

    A section that is there but incomplete is refused (ConfigError naming the key), so a
    typo never leaves a team's app open.
    """
    auth = secrets.get("auth")
    if auth is None:
        return None
    where = "the [auth] section of .streamlit/secrets.toml"
    if not isinstance(auth, Mapping):
        raise ConfigError(f"Sign-in is misconfigured: {where} must be a table of settings.")
    redirect_uri = str(auth.get("redirect_uri") or "")
    if not redirect_uri.startswith(("http://", "https://")) or not redirect_uri.endswith(
        "/oauth2callback"
    ):
        raise ConfigError(
            f"Sign-in is misconfigured: redirect_uri in {where} must be the app's address "
            "followed by /oauth2callback, e.g. https://coach.example.com/oauth2callback."
        )
    if len(str(auth.get("cookie_secret") or "")) < MIN_COOKIE_SECRET_CHARS:
        raise ConfigError(
            f"Sign-in is misconfigured: cookie_secret in {where} must be a random string of "
            f"at least {MIN_COOKIE_SECRET_CHARS} characters. Make one with "
            '`python -c "import secrets; print(secrets.token_hex(32))"`.'
        )
    providers: list[str] = []
    sections = {DEFAULT_PROVIDER: auth} if any(k in auth for k in PROVIDER_KEYS) else {}
    sections |= {
        name: value
        for name, value in auth.items()
        if isinstance(value, Mapping) and name != "client_kwargs"
    }
    for name, section in sections.items():
        missing = [k for k in PROVIDER_KEYS if not section.get(k)]
        label = where if name == DEFAULT_PROVIDER else f"[auth.{name}] in .streamlit/secrets.toml"
        if missing:
            raise ConfigError(
                f"Sign-in is misconfigured: {label} is missing {', '.join(missing)}. Copy them "
                "from the app registration at your identity provider."
            )
        if "_" in name:
            raise ConfigError(
                f"Sign-in is misconfigured: the provider name {name!r} has an underscore, "
                "which Streamlit does not allow. Rename [auth.{name}] without it."
            )
        providers.append(name)
    if not providers:
        raise ConfigError(
            f"Sign-in is misconfigured: {where} names no identity provider. Add client_id, "
            "client_secret and server_metadata_url (see 'Running for a team' in the README)."
        )
    return SignInConfig(tuple(providers))


def owner_of(claims: Mapping[str, Any]) -> str:
    """The owner name of a signed-in user: issuer and subject, unique across providers."""
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    if not issuer or not subject:
        raise ConfigError(
            "The identity provider did not say who you are (its ID token has no iss or sub "
            "claim). Sign out and sign in again; if it persists, check the provider setup."
        )
    return f"{issuer} {subject}"


# ---------------------------------------------------------------- who can reach the app


def _host(value: str) -> str:
    """The host of a Host-style value: no port, no IPv6 brackets, no quotes."""
    value = value.strip().strip('"').lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:  # host:port; a bare IPv6 address has more colons
        return value.split(":", 1)[0]
    return value


def is_loopback(host: str) -> bool:
    """True for localhost and addresses such as 127.0.0.1 and ::1."""
    host = _host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _forwarded_hosts(name: str, value: str) -> list[str]:
    if name != "forwarded":
        return [part for part in value.split(",") if part.strip()]
    hosts = []
    for element in value.replace(",", ";").split(";"):
        key, _, found = element.partition("=")
        if key.strip().lower() in ("for", "host") and found.strip():
            hosts.append(found)
    return hosts


def reachable_from_network(server_address: str | None, headers: Iterable[tuple[str, str]]) -> bool:
    """Whether other machines can reach this page, from the server's bind address and the
    request's headers (Host, and what a reverse proxy forwards).

    No address means every interface. No headers at all means the page is not served over
    HTTP (AppTest, a bare run), so nobody else can reach it.
    """
    pairs = [(name.lower(), value) for name, value in headers]
    if not pairs:
        return False
    if not server_address or not is_loopback(server_address):
        return True
    for name, value in pairs:
        if name == "host" and not is_loopback(value):
            return True
        if name in FORWARDING_HEADERS and any(
            not is_loopback(host) for host in _forwarded_hosts(name, value)
        ):
            return True
    return False


def _request_headers() -> list[tuple[str, str]]:
    headers = st.context.headers
    return [(name, value) for name in set(headers) for value in headers.get_all(name)]


# ---------------------------------------------------------------- the gate


def visitor(settings: Settings) -> Visitor:
    """Who is using this tab; draws the sign-in screen or the open-address warning and stops
    the page when nobody may see the app yet. Call first, right after ``st.set_page_config``."""
    try:
        config = sign_in_config(_secrets())
        if config is None:
            return _local_visitor(settings)
        if not st.user.get("is_logged_in", False):
            _require_authlib()
            sign_in_screen(config)
            st.stop()
        signed_in = Visitor(
            owner=owner_of(st.user),
            signed_in=True,
            name=_claim("name"),
            email=_claim("email"),
        )
    except ConfigError as exc:
        st.error(safe_markdown(exc.message), icon=":material/error:")
        st.stop()
        raise AssertionError("unreachable") from exc  # st.stop() raises
    _forget_other_owner(signed_in.owner)
    account_panel(signed_in)
    return signed_in


def _secrets() -> Mapping[str, Any]:
    """Streamlit's secrets; a secrets file that exists but cannot be read stops the app, so a
    typo in it never turns sign-in off."""
    if st.secrets.load_if_toml_exists():
        return st.secrets
    if any(Path(p).is_file() for p in st.get_option("secrets.files") or []):
        raise ConfigError(
            "The app's secrets file (.streamlit/secrets.toml) could not be read, so sign-in "
            "cannot be checked. Fix its TOML syntax (the server log names the line), then "
            "restart the app."
        )
    return {}


def _local_visitor(settings: Settings) -> Visitor:
    if not settings.allow_open and reachable_from_network(
        st.get_option("server.address"), _request_headers()
    ):
        st.warning(OPEN_WARNING, icon=":material/lock_open:")
        st.stop()
    _forget_other_owner(LOCAL_OWNER)
    with st.sidebar:
        st.caption(f":material/person: {SINGLE_USER_NOTE}")
    return Visitor(owner=LOCAL_OWNER, signed_in=False)


def _require_authlib() -> None:
    try:
        import authlib  # noqa: F401  (Streamlit's st.login needs it)
    except ImportError:
        raise ConfigError(
            "Sign-in needs the Authlib package: run `make run` (or `uv pip install -r "
            "requirements.lock`) to install it, then restart the app."
        ) from None


def _claim(name: str) -> str | None:
    value = st.user.get(name)
    return str(value) if value else None


def _forget_other_owner(owner: str) -> None:
    """Start this tab afresh if someone else used it before: nothing of theirs stays open."""
    if st.session_state.get(OWNER_KEY) not in (None, owner):
        for key in list(st.session_state.keys()):
            del st.session_state[key]
    st.session_state[OWNER_KEY] = owner


def sign_in_screen(config: SignInConfig) -> None:
    """Nothing but a title, a sentence and a sign-in button per identity provider."""
    st.title("Leadership Coach")
    st.markdown(SIGN_IN_TEXT)
    for provider in config.providers:
        label = "Sign in" if provider == DEFAULT_PROVIDER else f"Sign in with {provider.title()}"
        if st.button(label, key=f"sign-in-{provider}", type="primary", icon=":material/login:"):
            st.login(provider)


def account_panel(signed_in: Visitor) -> None:
    """Who is signed in, and the sign-out button, at the top of the sidebar."""
    with st.sidebar:
        who = signed_in.name or signed_in.email or "you"
        st.markdown(f":material/account_circle: Signed in as **{plain_markdown(who)}**")
        if signed_in.email and signed_in.email != who:
            st.caption(f"`{signed_in.email.replace('`', '')}`")  # as code: not a mailto link
        if st.button("Sign out", icon=":material/logout:", width="stretch"):
            st.logout()


# ---------------------------------------------------------------- the store as one owner sees it


class OwnedStore:
    """The conversation store as one owner sees it: every call carries that owner.

    Web code uses it like the store itself (``store.list_conversations()``), so no call can
    forget the owner. For a signed-in user, a store method that takes no ``owner`` is refused
    rather than run on everyone's data.
    """

    def __init__(self, store: ConversationStore, owner: str) -> None:
        self._store = store
        self.owner = owner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        if "owner" not in inspect.signature(attr).parameters:
            if self.owner == LOCAL_OWNER:  # a store without owners is the single user's
                return attr
            raise AttributeError(
                f"ConversationStore.{name} takes no owner, so it cannot be used on behalf of "
                "one user; give it an owner keyword first."
            )
        return functools.partial(attr, owner=self.owner)


def owned(store: ConversationStore, signed_in: Visitor) -> ConversationStore:
    """``store`` narrowed to what ``signed_in`` owns."""
    return OwnedStore(store, signed_in.owner)  # type: ignore[return-value]
