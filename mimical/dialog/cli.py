"""`mimical chat [NAME]`: talk to a persona in the terminal.

    mimical chat            # greeting, then pick a persona ("%show all" lists them)
    mimical chat alice      # go straight to alice (asks for her password if she has one)

Uses the model server in `MIMICAL_MODEL_SERVER`, or starts one in-process over the
local models. Ctrl-D or Ctrl-C ends the chat.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

CHANNEL = "terminal"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="chat with a persona in the terminal",
        description='Pick a persona ("%show all" lists them) and chat with it; with NAME,'
        " go straight to that persona. Ctrl-D or Ctrl-C ends the chat.",
    )
    parser.add_argument("name", nargs="?", help="the persona to talk to")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.dialog import create_engine
    from mimical.orchestration import open_registry
    from mimical.serving.connect import connect_models

    settings = Settings.from_env()
    with connect_models(settings) as models:
        engine = create_engine(settings, models.client, open_registry(settings))
        chat_in_terminal(engine, getpass.getuser(), args.name)
    return 0


def chat_in_terminal(
    engine,
    user_id: str,
    first_message: str | None = None,
    *,
    read: Callable[[str], str] = input,
    read_secret: Callable[[str], str] = getpass.getpass,
    write: Callable[[str], None] = print,
) -> None:
    """Read lines, print the engine's replies, until end of input; passwords are not echoed."""
    from mimical.errors import MimicalError

    engine.forget(CHANNEL, user_id)  # every terminal chat starts afresh
    # `mimical chat NAME` picks the persona itself: no greeting before it.
    greeted = bool(first_message)
    for reply in engine.handle(CHANNEL, user_id, first_message or "", greeted=greeted):
        write(reply)
    while True:
        prompt = "password: " if engine.state(CHANNEL, user_id) == "password" else "you> "
        try:
            line = (read_secret if prompt == "password: " else read)(prompt)
        except EOFError:
            write("")
            return
        if not line.strip():
            continue
        try:
            replies = engine.handle(CHANNEL, user_id, line)
        except MimicalError as error:
            replies = [str(error)]
        for reply in replies:
            write(reply)
        sys.stdout.flush()
