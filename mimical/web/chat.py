"""The web chat: a page at `/chat` talking to the same dialog engine as Messenger.

The page posts each line to `POST /chat/messages` (`{"text": ...}`) and shows the
`replies`; an empty text asks for the greeting. A visitor is an anonymous random
id in an HttpOnly, SameSite=Strict cookie, so the session belongs to that
browser; wrong passwords count against the visitor's address and the persona
(shared with the API), so a fresh cookie starts no new count. Only JSON requests
are accepted, which together with the SameSite cookie keeps other sites from
posting on a visitor's behalf.

Run it with the other components through `mimical serve`, or alone:

    create_app(settings, components=["chat"])
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Flask, jsonify, make_response, render_template, request

from mimical.errors import InputError, RateLimitedError
from mimical.web.dialog_app import get_engine, get_resource
from mimical.web.resources import client_address

CHANNEL = "web"
VISITOR_COOKIE = "mimical_chat"
VISITOR_COOKIE_MAX_AGE = 24 * 3600

blueprint = Blueprint(
    "chat",
    __name__,
    template_folder="templates",
    static_folder="static/chat",
    static_url_path="/chat/static",
)


def init_app(app: Flask) -> None:
    """Defaults for this component; the dialog engine starts on first use (`dialog_app`)."""
    # Messages per visitor (`limits` notation): a person types far slower; a script
    # looping on the model is cut off.
    app.config.setdefault("MIMICAL_CHAT_RATE_LIMIT", "30 per minute")


def _check_rate(visitor: str) -> None:
    """Refuse with 429 past the rate limit, counted in Redis or memory like sessions."""

    def make(app: Flask):
        import limits

        from mimical.dialog.sessions import moving_window_limiter

        limiter = moving_window_limiter(app.config["MIMICAL_SETTINGS"])
        return limiter, limits.parse(app.config["MIMICAL_CHAT_RATE_LIMIT"])

    limiter, limit = get_resource("chat_limiter", make)
    # Per visitor, not per address: behind a proxy every visitor shares one address.
    if not limiter.hit(limit, "chat", visitor):
        raise RateLimitedError(f"too many messages, the limit is {limit}; try again soon")


def _visitor() -> tuple[str, bool]:
    """This browser's visitor id, and whether it is new (then the response sets it)."""
    visitor = request.cookies.get(VISITOR_COOKIE, "")
    if 16 <= len(visitor) <= 64 and visitor.replace("-", "").replace("_", "").isalnum():
        return visitor, False
    return secrets.token_urlsafe(24), True


def _with_visitor(response, visitor: str, new: bool):
    if new:
        response.set_cookie(
            VISITOR_COOKIE,
            visitor,
            max_age=VISITOR_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
        )
    return response


@blueprint.get("/chat")
def page():
    visitor, new = _visitor()
    return _with_visitor(make_response(render_template("chat/chat.html")), visitor, new)


@blueprint.post("/chat/messages")
def message():
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict) or not isinstance(body.get("text", ""), str):
        raise InputError('send JSON like {"text": "hello"}')
    visitor, new = _visitor()
    _check_rate(visitor)
    engine = get_engine()
    replies = engine.handle(CHANNEL, visitor, body.get("text", ""), client=client_address())
    response = jsonify(replies=replies, state=engine.state(CHANNEL, visitor))
    return _with_visitor(response, visitor, new)
