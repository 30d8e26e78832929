"""`mimical away`: let the persona answer your own Messenger Page while you are away.

    export MIMICAL_OWNER_TOKEN=Xq3...
    mimical away alice --for 3d --backend https://api.example.org
    # alice answers your Page until Sat 05 Dec 18:00 UTC; each reply opens with:
    # [Automated reply: Alice is away until Sat 05 Dec 18:00 UTC and their persona ...]
    mimical away alice --until 2026-12-05T18:00+01:00
    mimical away alice            # the window, if any
    mimical away alice --off      # you are back: the persona stops answering

Talks to `PUT|GET|DELETE /api/chatbots/NAME/away` (`mimical.web.away`) with the owner
token from the environment, like `mimical password`.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from mimical.errors import InputError
from mimical.web.password_cli import DEFAULT_BACKEND, TOKEN_ENV, owner_api, owner_token

DURATION = re.compile(r"(\d+)([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "away",
        help="let your persona answer your Messenger Page for a while (owner token in"
        f" ${TOKEN_ENV})",
        description="Open, show or close the window in which the persona answers the owner's"
        " own Messenger Page (MIMICAL_MESSENGER_PAGE_OWNER), each reply marked as automated."
        " At most 7 days ahead.",
    )
    parser.add_argument("name", help="the chatbot's name")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--until", help="an ISO 8601 time, e.g. 2026-12-05T18:00+01:00 (local if no zone)"
    )
    when.add_argument("--for", dest="duration", help="how long from now: 90m, 8h, 3d")
    when.add_argument("--off", action="store_true", help="stop answering now")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help=f"API URL ({DEFAULT_BACKEND})")
    parser.set_defaults(func=run)


def window_end(until: str | None, duration: str | None) -> datetime | None:
    """The time `--until` or `--for` names (None: neither was given)."""
    if duration is not None:
        match = DURATION.fullmatch(duration.strip().lower())
        if not match:
            raise InputError(f"--for {duration!r}: say how long as 90m, 8h or 3d")
        return datetime.now(UTC) + timedelta(**{UNITS[match[2]]: int(match[1])})
    if until is not None:
        try:
            end = datetime.fromisoformat(until)
        except ValueError:
            raise InputError(f"--until {until!r}: not an ISO 8601 time") from None
        return end if end.tzinfo else end.astimezone()  # no zone: this computer's
    return None


def run(args: argparse.Namespace) -> int:
    token = owner_token()
    end = window_end(args.until, args.duration)
    if args.off:
        state = owner_api(args.backend, token, "DELETE", args.name, path="/away")
    elif end is not None:
        body = {"until": end.isoformat()}
        state = owner_api(args.backend, token, "PUT", args.name, body, path="/away")
    else:
        state = owner_api(args.backend, token, "GET", args.name, path="/away")
    if state["until"] is None:
        print(f"{args.name} does not answer your Page: you answer it yourself")
    else:
        until = datetime.fromisoformat(state["until"]).strftime("%a %d %b %H:%M UTC")
        print(f"{args.name} answers your Page until {until}; each reply opens with:")
        print(f"  {state['note']}")
    if not state["page"]:
        page_owner = "MIMICAL_MESSENGER_PAGE_OWNER"
        print(f"note: this backend's Messenger Page is not {args.name}'s ({page_owner})")
    return 0
