"""`mimical password`: change a chatbot's password through the backend API.

    MIMICAL_OWNER_TOKEN=Xq3... mimical password alice --backend https://api.example.org
    # New password for alice: / Again:
    # alice: password changed; chats opened with the old one have ended

Sends `PATCH /api/chatbots/NAME` with the owner token. The token comes from the
environment and the password from a hidden prompt, never from arguments (they end
up in shell history and `ps`). Plain http:// is for this computer only, as in the
extension: the token and the password would otherwise travel in clear.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from mimical.errors import AuthError, InputError, MimicalError, UnavailableError

TOKEN_ENV = "MIMICAL_OWNER_TOKEN"
DEFAULT_BACKEND = "http://127.0.0.1:8080"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "password",
        help="change a chatbot's password (owner token in $MIMICAL_OWNER_TOKEN)",
        description="Change a password-protected chatbot's password through the backend API;"
        " everyone chatting with the old password is let out. The owner token is read from"
        f" ${TOKEN_ENV}, the new password from a prompt.",
    )
    parser.add_argument("name", help="the chatbot's name")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help=f"API URL ({DEFAULT_BACKEND})")
    parser.set_defaults(func=run)


def _check_backend(url: str) -> str:
    parsed = urllib.parse.urlsplit(url.rstrip("/"))
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme == "https" or (parsed.scheme == "http" and loopback):
        return url.rstrip("/")
    raise InputError(f"{url}: use https:// (plain http:// only for this computer)")


def _read_password(name: str) -> str:
    first = getpass.getpass(f"New password for {name}: ")
    if not first:
        raise InputError("the password is empty")
    if getpass.getpass("Again: ") != first:
        raise InputError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    token = owner_token()
    backend = _check_backend(args.backend)
    password = _read_password(args.name)
    owner_api(backend, token, "PATCH", args.name, {"password": password})
    print(f"{args.name}: password changed; chats opened with the old one have ended")
    return 0


def owner_token() -> str:
    """The owner token from the environment (never an argument: shell history, `ps`)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise AuthError(f"set {TOKEN_ENV} to the chatbot's owner token")
    return token


def owner_api(
    backend: str, token: str, method: str, name: str, body: dict | None = None, path: str = ""
) -> dict:
    """`method /api/chatbots/NAME{path}` on `backend` with the owner token: the JSON
    answer, or the backend's error message as a `MimicalError` (one line)."""
    backend = _check_backend(backend)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"{backend}/api/chatbots/{urllib.parse.quote(name, safe='')}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise _api_error(error) from None
    except (urllib.error.URLError, TimeoutError) as error:
        raise UnavailableError(f"cannot reach {backend}: {error}") from None


def _api_error(error: urllib.error.HTTPError) -> MimicalError:
    """The backend's `{error, message}` as one line (its status picks the error class)."""
    try:
        message = json.loads(error.read())["message"]
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {error.code}"
    kind = AuthError if error.code == 401 else MimicalError
    return kind(message)
