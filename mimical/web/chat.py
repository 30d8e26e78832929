"""The web chat: a page at `/chat` talking to the same dialog engine as Messenger.

The page posts each line to `POST /chat/messages` (`{"text": ...}`) and shows the
`replies`; an empty text asks for the greeting. Only JSON requests are accepted,
which together with the SameSite cookie keeps other sites from posting on a
visitor's behalf.

A visitor is known by a random id in an HttpOnly, SameSite=Strict cookie
(`__Host-` prefixed and Secure over HTTPS), and only ids this server issued count:

- nothing is stored and no cookie is set until the visitor picks a persona
  (the engine keeps no "choosing" state for the web), so cookie-less requests
  cannot fill Redis;
- a cookie naming no live session is ignored, never adopted: an id planted in a
  victim's browser (session fixation) gets no session;
- unlocking a password-protected persona moves the session to a fresh id.

Messages are limited per client address (`client_address`, which honours
`Settings.trusted_proxy_hops`) and per visitor; wrong passwords count against the
address and the persona (shared with the API), so a fresh cookie starts no new count.

Run it with the other components through `mimical serve`, or alone:

    create_app(settings, components=["chat"])
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Flask, jsonify, render_template, request

from mimical.appkit.component import get_settings
from mimical.appkit.dialog_app import get_engine, get_resource
from mimical.appkit.resources import client_address
from mimical.errors import InputError, RateLimitedError

CHANNEL = "web"
VISITOR_COOKIE = "mimical_chat"
# Over HTTPS the browser then refuses the cookie unless Secure, host-only and Path=/.
SECURE_VISITOR_COOKIE = "__Host-mimical_chat"
VISITOR_COOKIE_MAX_AGE = 24 * 3600

blueprint = Blueprint(
    "chat",
    __name__,
    template_folder="templates",
    static_folder="static/chat",
    static_url_path="/chat/static",
)


def init_app(app: Flask) -> None:
    """Nothing to set up: the dialog engine starts on first use (`dialog_app`)."""


# The setting of each chat limit (`Settings.chat_*_rate_limit`).
LIMIT_SETTINGS = {
    "visitor": "chat_rate_limit",
    "address": "chat_address_rate_limit",
    "session": "chat_session_rate_limit",
}


def _limits():
    """The moving-window limiter (Redis or memory, like sessions) and the three limits."""

    def make(app: Flask):
        import limits

        from mimical.dialog.sessions import moving_window_limiter

        settings = get_settings(app)
        return moving_window_limiter(settings), {
            kind: limits.parse(getattr(settings, name)) for kind, name in LIMIT_SETTINGS.items()
        }

    return get_resource("chat_limiter", make)


def _check_rate(visitor: str | None) -> None:
    """Refuse with 429 past the address's or the visitor's message limit."""
    limiter, limit_of = _limits()
    counts = [(limit_of["address"], "chat-address", client_address())]
    if visitor is not None:
        counts.append((limit_of["visitor"], "chat", visitor))
    for limit, *keys in counts:
        if not limiter.hit(limit, *keys):
            raise RateLimitedError(f"too many messages, the limit is {limit}; try again soon")


def _count_new_session(engine, visitor: str) -> None:
    """Count a session this address started; past the limit, drop it again and 429."""
    limiter, limit_of = _limits()
    if not limiter.hit(limit_of["session"], "chat-session", client_address()):
        engine.forget(CHANNEL, visitor)
        raise RateLimitedError("too many new chats from your address; try again later")


def _cookie_name() -> str:
    return SECURE_VISITOR_COOKIE if request.is_secure else VISITOR_COOKIE


def _visitor(engine) -> str | None:
    """This browser's visitor id if it names a live session the server issued, else None."""
    visitor = request.cookies.get(_cookie_name(), "")
    if not (16 <= len(visitor) <= 64 and visitor.replace("-", "").replace("_", "").isalnum()):
        return None
    return visitor if engine.has_session(CHANNEL, visitor) else None


def _set_visitor(response, visitor: str):
    response.set_cookie(
        _cookie_name(),
        visitor,
        max_age=VISITOR_COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return response


@blueprint.get("/chat")
def page():
    return render_template("chat/chat.html")


@blueprint.post("/chat/messages")
def message():
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict) or not isinstance(body.get("text", ""), str):
        raise InputError('send JSON like {"text": "hello"}')
    engine = get_engine()
    known = _visitor(engine)
    _check_rate(known)
    visitor = known or secrets.token_urlsafe(24)  # stored only if the engine keeps state
    before = engine.state(CHANNEL, visitor) if known else "choosing"
    replies = engine.handle(
        CHANNEL, visitor, body.get("text", ""), client=client_address(), greeted=True
    )
    state = engine.state(CHANNEL, visitor)
    if not known and state != "choosing":
        _count_new_session(engine, visitor)
    if known and before == "password" and state == "chatting":
        visitor = secrets.token_urlsafe(24)  # unlocked: a new id, the old one is worthless
        engine.move(CHANNEL, known, visitor)
    response = jsonify(replies=replies, state=state)
    if state != "choosing" and visitor != known:
        _set_visitor(response, visitor)
    return response
