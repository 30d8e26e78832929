"""Who may see or change a chatbot through the API: owner tokens, passwords, rate limits.

Callers only raise: a missing or wrong credential is a 401, a used-up limit a 429.
Unknown names answer exactly as password-protected ones do (401 "needs its
password", "wrong password" after an equally slow argon2 check, counted the same),
so the API does not tell strangers which private chatbots exist.

Counts live in the app's flask-limiter storage (Redis when `REDIS_URL` is set),
keyed by the client address (`resources.client_address`: `ProxyFix` resolves it behind
trusted proxies, an IPv6 client counts by its /64) and never by anything else a
stranger chooses, so no client can mint keys; chatbot names in URLs are checked before
anything is looked up or counted (`create_app`). Passwords share `PasswordTries` with
the chat channels.
"""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter

from mimical.appkit.component import get_settings
from mimical.appkit.resources import app_resources, client_address, get_password_tries, get_registry
from mimical.chatbot import Chatbot
from mimical.errors import AuthError, NotFoundError, RateLimitedError
from mimical.registry import password_opens


def limit_setting(kind: str) -> str:
    """`kind`'s limit (`limits` notation): the setting `<kind>_rate_limit`."""
    return getattr(get_settings(), f"{kind}_rate_limit")


def rate_limit(kind: str, *scope: str, count: bool = True) -> None:
    """429 if this client (and scope) used up `kind`'s limit; else count one use.

    With `count=False` only check: the caller counts (`count_use`) once the attempt
    succeeded, so a refused upload does not use up the client's builds.
    """
    from limits import parse_many

    limiter: Limiter = app_resources(current_app)["limiter"]
    for limit in parse_many(limit_setting(kind)):
        keys = (limit, kind, client_address(), *scope)
        allowed = limiter.limiter.hit(*keys) if count else limiter.limiter.test(*keys)
        if not allowed:
            raise RateLimitedError(f"too many {kind} attempts; limit is {limit}, try again later")


def count_use(kind: str) -> None:
    """Count one use of `kind` for this client, after `rate_limit(kind, count=False)`."""
    from limits import parse_many

    limiter: Limiter = app_resources(current_app)["limiter"]
    for limit in parse_many(limit_setting(kind)):
        limiter.limiter.hit(limit, kind, client_address())


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_owner(name: str) -> None:
    """401 unless the request carries `name`'s owner token (an unknown name has none)."""
    token = bearer_token()
    if token is None:
        raise AuthError(f"changing {name!r} needs its owner token (Authorization: Bearer TOKEN)")
    try:
        right = get_registry().verify_owner_token(name, token)
    except NotFoundError:
        right = False
    if not right:
        # Only wrong tokens count: a right one is 256 random bits, and the extension
        # polls build status with it every few seconds while a chatbot trains. Counted
        # per client only: one key per address whatever the names tried.
        rate_limit("password")
        raise AuthError(f"wrong owner token for {name!r}")


def no_store(response):
    """Owner tokens, drafts, away windows and private statuses must not stay in a
    browser or proxy cache (every owner-only component answers with it)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def require_owner(name: str) -> Chatbot:
    """The chatbot, once the request proved it owns it (401 for unknown names too)."""
    check_owner(name)
    return get_registry().get(name)


def visible_chatbot(name: str, password: str | None, *, listed: bool = False) -> Chatbot:
    """The chatbot if this request may see it: no password, or its password given.

    With `listed`, public chatbots pass without one too (their status is listed anyway).

    401 for a protected one without (or with a wrong) password and for an unknown name
    alike; 429 while wrong passwords are locked out. Wrong passwords count with the chat
    channels' (`get_password_tries`): per client address and per chatbot from everyone.
    """
    chatbot = get_registry().find(name)
    if chatbot is not None and (not chatbot.has_password or (listed and chatbot.public)):
        return chatbot
    if not password:
        raise AuthError(f"{name!r} is password protected: send its password")
    ok, wait = get_password_tries().attempt(
        client_address(), name, lambda: password_opens(get_registry(), name, password)
    )
    if wait:
        raise RateLimitedError(
            f"too many wrong passwords for {name!r}; try again in {wait} seconds"
        )
    if not ok or chatbot is None:
        raise AuthError(f"wrong password for {name!r}")
    return chatbot
