"""`mimical messenger setup`: the page's Get Started button and greeting.

    MIMICAL_FB_PAGE_ACCESS_TOKEN=... MIMICAL_FB_APP_SECRET=... mimical messenger setup
    mimical messenger setup --greeting "Hi {{user_first_name}}! Who would you like to talk to?"

Sets them through the Messenger Profile API (`POST /me/messenger_profile`) so that
a person opening the page's chat sees the greeting and a Get Started button, whose
postback the webhook answers with the persona choice. Running it again changes
nothing when the page already has these values (it reads them first).
"""

from __future__ import annotations

import argparse
import sys

GET_STARTED_PAYLOAD = "GET_STARTED"
# Messenger shows at most 160 characters; {{user_first_name}} is filled in by Messenger.
GREETING_MAX_CHARS = 160
DEFAULT_GREETING = (
    "Hi {{user_first_name}}! Chat with personas that talk like real people. "
    "Tap Get Started to pick one."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "messenger",
        help="set up the Facebook page for Messenger",
        description="Set up the Facebook page the webhook answers for.",
    )
    commands = parser.add_subparsers(dest="messenger_command", metavar="COMMAND", required=True)
    setup = commands.add_parser(
        "setup",
        help="set the page's Get Started button and greeting (safe to repeat)",
        description="Set the page's greeting and Get Started button through the Messenger"
        " Profile API, so a person opening the page's chat sees them; the webhook answers the"
        " button with the persona choice. Changes nothing when the page already has them.",
    )
    setup.add_argument(
        "--greeting",
        default=DEFAULT_GREETING,
        help=f"welcome text, at most {GREETING_MAX_CHARS} characters "
        "({{user_first_name}} becomes the reader's first name)",
    )
    setup.set_defaults(func=run_setup)


def _explain(error) -> Exception:
    """A `GraphError` as the CLI error that tells the user what to do."""
    from mimical.errors import AuthError, InputError, UnavailableError

    if error.kind == "bad_token":
        return AuthError(
            f"Graph rejected the page access token ({error}); "
            "set MIMICAL_FB_PAGE_ACCESS_TOKEN to a current one"
        )
    if error.kind in ("temporary", "ambiguous"):
        return UnavailableError(f"{error}; try again in a minute")
    return InputError(f"Graph refused the Messenger profile: {error}")


def run_setup(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.errors import InputError
    from mimical.web.graph import GraphApi, GraphError

    settings = Settings.from_env()
    if not settings.fb_page_access_token:
        raise InputError(
            "MIMICAL_FB_PAGE_ACCESS_TOKEN is not set (the page access token from the "
            "app's Messenger settings)"
        )
    greeting = args.greeting.strip()
    if not greeting or len(greeting) > GREETING_MAX_CHARS:
        raise InputError(f"--greeting must have 1 to {GREETING_MAX_CHARS} characters")
    wanted = {
        "get_started": {"payload": GET_STARTED_PAYLOAD},
        "greeting": [{"locale": "default", "text": greeting}],
    }
    graph = GraphApi(settings.graph_api_url, settings.fb_page_access_token, settings.fb_app_secret)
    try:
        current = graph.get_messenger_profile(list(wanted))
        if {key: current.get(key) for key in wanted} == wanted:
            print("The page's Get Started button and greeting are already set.", file=sys.stderr)
            return 0
        graph.set_messenger_profile(wanted)
    except GraphError as error:
        raise _explain(error) from None
    finally:
        graph.close()
    print(f"Set the page's Get Started button and greeting: {greeting!r}", file=sys.stderr)
    return 0
