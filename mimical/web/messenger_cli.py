"""`mimical messenger`: set up the page, and answer what the webhook stored.

    MIMICAL_FB_PAGE_ACCESS_TOKEN=... MIMICAL_FB_APP_SECRET=... mimical messenger setup
    mimical messenger setup --greeting "Hi {{user_first_name}}! Who would you like to talk to?"
    REDIS_URL=redis://... mimical messenger respond --threads 8 --metrics-port 9090

`setup` sets the page's greeting and Get Started button through the Messenger
Profile API (`POST /me/messenger_profile`), so a person opening the page's chat
sees them (the webhook answers the button's postback with the persona choice), and
subscribes the webhook to the page's messages, postbacks and echoes of our own
replies (`POST /me/subscribed_apps`). Running it again changes nothing when the
page already has these values.

`respond` answers the events webhooks (run with `MIMICAL_MESSENGER_WORKERS=0`)
stored in the Redis queue, in a process of its own: answering (the dialog, the
model, the Send API) then never takes CPU or the GIL from acknowledging, which
Messenger wants within seconds. Any number of responders share the queue; SIGTERM
finishes the event at hand and leaves the rest to the others.
"""

from __future__ import annotations

import argparse
import sys

GET_STARTED_PAYLOAD = "GET_STARTED"
# The page's webhook fields the webhook handles: messages, taps on buttons, and the
# echoes of our own replies (they confirm a reply arrived, so one whose send was cut
# short is sent again only if it did not; see mimical.web.messenger).
WEBHOOK_FIELDS = ["messages", "messaging_postbacks", "message_echoes"]
# Messenger shows at most 160 characters; {{user_first_name}} is filled in by Messenger.
GREETING_MAX_CHARS = 160
DEFAULT_GREETING = (
    "Hi {{user_first_name}}! Chat with personas that talk like real people. "
    "Tap Get Started to pick one."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "messenger",
        help="set up the Facebook page; answer Messenger events in processes of their own",
        description="Set up the Facebook page the webhook answers for, or answer the events"
        " webhooks stored in Redis.",
    )
    commands = parser.add_subparsers(dest="messenger_command", metavar="COMMAND", required=True)
    setup = commands.add_parser(
        "setup",
        help="set the page's Get Started button and greeting, subscribe the webhook (safe to"
        " repeat)",
        description="Set the page's greeting and Get Started button through the Messenger"
        " Profile API, so a person opening the page's chat sees them (the webhook answers the"
        " button with the persona choice), and subscribe the webhook to the page's messages,"
        " postbacks and message echoes. Changes nothing when the page already has them.",
    )
    setup.add_argument(
        "--greeting",
        default=DEFAULT_GREETING,
        help=f"welcome text, at most {GREETING_MAX_CHARS} characters "
        "({{user_first_name}} becomes the reader's first name)",
    )
    setup.set_defaults(func=run_setup)
    respond = commands.add_parser(
        "respond",
        help="answer the Messenger events webhooks stored in Redis (REDIS_URL)",
        description="Answer, through the Send API, the Messenger events that webhooks run with"
        " MIMICAL_MESSENGER_WORKERS=0 stored in Redis (REDIS_URL). Runs until SIGTERM or"
        " Ctrl-C; what is left waits in Redis for the other responders.",
    )
    respond.add_argument(
        "--threads", type=int, default=8, help="events answered at once (one user at a time)"
    )
    respond.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics (replies sent, page token state) on this port; 0: none",
    )
    respond.add_argument(
        "--takeover-seconds",
        type=float,
        default=None,
        help="how long a dead responder's users wait before another takes them over (default 15)",
    )
    respond.set_defaults(func=run_respond)


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
        else:
            graph.set_messenger_profile(wanted)
            print(f"Set the page's Get Started button and greeting: {greeting!r}", file=sys.stderr)
        fields = graph.subscribed_fields()
        if set(WEBHOOK_FIELDS) <= set(fields):
            print("The page already sends the webhook its events.", file=sys.stderr)
        else:
            graph.subscribe(sorted(set(fields) | set(WEBHOOK_FIELDS)))
            subscribed = ", ".join(WEBHOOK_FIELDS)
            print(f"Subscribed the webhook to the page's {subscribed}.", file=sys.stderr)
    except GraphError as error:
        raise _explain(error) from None
    finally:
        graph.close()
    return 0


def run_respond(args: argparse.Namespace) -> int:
    import signal
    import threading

    from mimical.config import Settings
    from mimical.errors import InputError
    from mimical.web import create_app
    from mimical.web.dialog_app import close_dialog, get_messenger
    from mimical.web.resources import close_resources

    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    settings = Settings.from_env().with_overrides(messenger_workers=args.threads)
    if not settings.redis_url:
        raise InputError(
            "mimical messenger respond answers what webhooks stored in Redis: set REDIS_URL "
            "(without Redis, the webhook answers in its own process)"
        )
    queue_options = {}
    if args.takeover_seconds is not None:
        if args.takeover_seconds <= 0:
            raise InputError("--takeover-seconds must be positive")
        # The lease outlives a stall shorter than the takeover; claims look twice as often.
        queue_options = {
            "claim_idle_seconds": args.takeover_seconds,
            "lease_seconds": args.takeover_seconds * 4 / 3,
        }
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    app = create_app(
        settings,
        components=["webhook"],
        test_config={"MIMICAL_MESSENGER_QUEUE_OPTIONS": queue_options},
    )
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, registry=app.extensions["mimical_metrics"])
    with app.app_context():
        get_messenger()
    print(
        f"mimical answering Messenger events from Redis with {args.threads} threads",
        file=sys.stderr,
    )
    stop.wait()
    close_dialog(app)
    close_resources(app)
    return 0
