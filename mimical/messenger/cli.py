"""`mimical messenger`: set up the page, answer what the webhook stored, forget a user.

    MIMICAL_FB_PAGE_ACCESS_TOKEN=... MIMICAL_FB_APP_SECRET=... mimical messenger setup
    mimical messenger setup --greeting "Hi {{user_first_name}}! Who would you like to talk to?"
    REDIS_URL=redis://... mimical messenger respond --threads 8 --metrics-port 9090
    REDIS_URL=redis://... mimical messenger forget PSID

`setup` first checks what Meta needs before anyone but the app's developers hears
the persona: the token's app (`GET /app`), the token's permissions (`GET
/debug_token`: `REQUIRED_PERMISSIONS`) and the app-level webhook subscription (`GET
/APP_ID/subscriptions`: Meta delivers a field only when both the app and the page
subscribe it), and says exactly what is missing, with Graph's own words. Then it
sets the page's greeting, Get Started button and persistent menu through the
Messenger Profile API (`POST /me/messenger_profile`) and subscribes the page to the
webhook fields (`POST /me/subscribed_apps`). Running it again changes nothing when
the page already has these values.

`forget` deletes what is kept about one Messenger user (their `%forget`, done by an
operator: a deletion request that came by mail, say).

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
# The page's webhook fields the webhook handles: messages, taps on buttons, the
# echoes of what the page sent (ours confirm a reply arrived, a Page admin's silence
# the persona; see mimical.messenger.responder), thread control changes, and the events of
# conversations another app or the Page inbox owns (mimical.messenger.payload).
WEBHOOK_FIELDS = [
    "messages",
    "messaging_postbacks",
    "message_echoes",
    "messaging_handovers",
    "standby",
]
# The page token's permissions, and what each is for.
REQUIRED_PERMISSIONS = {
    "pages_messaging": "send the replies (Send API)",
    "pages_manage_metadata": "subscribe the page to the webhook and set its greeting and menu",
    "pages_show_list": "list the Page when generating its token",
}
# Messenger shows at most 160 characters; {{user_first_name}} is filled in by Messenger.
GREETING_MAX_CHARS = 160
DEFAULT_GREETING = (
    "Hi {{user_first_name}}! Chat with automated personas trained on real people's "
    "messages. Tap Get Started to pick one."
)
# Always at hand in the conversation: the commands, as postbacks (`MENU_COMMANDS`).
PERSISTENT_MENU = [
    {
        "locale": "default",
        "composer_input_disabled": False,
        "call_to_actions": [
            {"type": "postback", "title": "Pick another persona", "payload": "%restart"},
            {"type": "postback", "title": "Help", "payload": "%help"},
            {"type": "postback", "title": "Talk to a person", "payload": "%human"},
            {"type": "postback", "title": "Delete my data", "payload": "%forget"},
        ],
    }
]


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
    forget = commands.add_parser(
        "forget",
        help="delete what is kept about one Messenger user (REDIS_URL)",
        description="Delete a Messenger user's chat session, queued messages, stored replies"
        " and silence from Redis, as their own %%forget does.",
    )
    forget.add_argument("psid", help="the user's Page-scoped id (the webhook's sender.id)")
    forget.set_defaults(func=run_forget)
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
        default=None,
        help="serve /metrics (replies sent, Graph errors, whether the Page can send) and /readyz"
        " on this port for monitoring (default MIMICAL_METRICS_PORT; 0: none)",
    )
    respond.add_argument(
        "--takeover-seconds",
        type=float,
        default=None,
        help="how long a dead responder's users wait before another takes them over (default 15)",
    )
    respond.set_defaults(func=run_respond)


def _explain(error, step: str) -> Exception:
    """A `GraphError` met while trying to `step` as the CLI error that says what to do."""
    from mimical.errors import AuthError, InputError, UnavailableError

    if error.kind == "bad_token":
        return AuthError(
            f"Graph rejected the page access token ({error}); "
            "set MIMICAL_FB_PAGE_ACCESS_TOKEN to a current one"
        )
    if error.kind in ("temporary", "ambiguous"):
        return UnavailableError(f"cannot {step} now: {error}; try again in a minute")
    return InputError(f"Graph refused to {step}: {error}")


def _graph_step(step: str, function, *args):
    from mimical.messenger.graph import GraphError

    try:
        return function(*args)
    except GraphError as error:
        raise _explain(error, step) from None


def check_app(settings, graph) -> None:
    """Check the token's app, its permissions and the app-level webhook subscription,
    printing what is fine and raising `InputError` with exactly what is missing."""
    from mimical.errors import InputError
    from mimical.messenger.graph import GraphApi

    app = _graph_step("read the page token's app (GET /app)", graph.token_app)
    app_id, name = str(app.get("id", "")), app.get("name", "")
    if settings.fb_app_id and settings.fb_app_id != app_id:
        raise InputError(
            f"the page access token belongs to app {app_id} ({name}), not "
            f"MIMICAL_FB_APP_ID={settings.fb_app_id}: generate it in that app's Messenger settings"
        )
    print(f"The page token belongs to app {app_id} ({name}).", file=sys.stderr)
    if not settings.fb_app_secret:
        print(
            "MIMICAL_FB_APP_SECRET is not set: the token's permissions and the app's webhook"
            " subscription cannot be checked (and the webhook refuses every event).",
            file=sys.stderr,
        )
        return
    app_graph = GraphApi(settings.graph_api_url, f"{app_id}|{settings.fb_app_secret}")
    try:
        scopes = _graph_step(
            "read the page token's permissions (GET /debug_token; is MIMICAL_FB_APP_SECRET "
            "this app's secret?)",
            app_graph.token_scopes,
            settings.fb_page_access_token,
        )
        missing = [p for p in REQUIRED_PERMISSIONS if p not in scopes]
        if missing:
            needs = "; ".join(f"{p} (to {REQUIRED_PERMISSIONS[p]})" for p in missing)
            raise InputError(
                f"the page access token lacks {needs}. Add the permissions to the app (App "
                "Dashboard > Use cases > Messenger), then generate a new page token and set "
                "MIMICAL_FB_PAGE_ACCESS_TOKEN (README: Put your persona on a Page)"
            )
        print(f"The page token has {', '.join(REQUIRED_PERMISSIONS)}.", file=sys.stderr)
        fields = _graph_step(
            "read the app's webhook subscription (GET /APP_ID/subscriptions)",
            app_graph.app_page_fields,
            app_id,
        )
    finally:
        app_graph.close()
    if fields is None:
        raise InputError(
            "the app has no active webhook for Pages: in the App Dashboard (Messenger > "
            "Settings > Webhooks) set the callback URL https://HOST/webhook with "
            f"MIMICAL_FB_VERIFY_TOKEN, and subscribe {', '.join(WEBHOOK_FIELDS)}"
        )
    missing = [f for f in WEBHOOK_FIELDS if f not in fields]
    if missing:
        raise InputError(
            f"the app's webhook is not subscribed to {', '.join(missing)}: Meta sends a field "
            "only when both the app and the page subscribe it; add them in the App Dashboard "
            "(Messenger > Settings > Webhooks)"
        )
    print(f"The app's webhook is subscribed to {', '.join(WEBHOOK_FIELDS)}.", file=sys.stderr)


def run_setup(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.errors import InputError
    from mimical.messenger.graph import GraphApi

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
        "persistent_menu": PERSISTENT_MENU,
    }
    graph = GraphApi(settings.graph_api_url, settings.fb_page_access_token, settings.fb_app_secret)
    try:
        check_app(settings, graph)
        step = "read or set the Messenger profile (needs pages_manage_metadata)"
        current = _graph_step(step, graph.get_messenger_profile, list(wanted))
        if {key: current.get(key) for key in wanted} == wanted:
            print(
                "The page's Get Started button, greeting and menu are already set.",
                file=sys.stderr,
            )
        else:
            _graph_step(step, graph.set_messenger_profile, wanted)
            print(
                f"Set the page's Get Started button, menu and greeting: {greeting!r}",
                file=sys.stderr,
            )
        step = "subscribe the page to the webhook (needs pages_manage_metadata)"
        fields = _graph_step(step, graph.subscribed_fields)
        if set(WEBHOOK_FIELDS) <= set(fields):
            print("The page already sends the webhook its events.", file=sys.stderr)
        else:
            _graph_step(step, graph.subscribe, sorted(set(fields) | set(WEBHOOK_FIELDS)))
            subscribed = ", ".join(WEBHOOK_FIELDS)
            print(f"Subscribed the webhook to the page's {subscribed}.", file=sys.stderr)
    finally:
        graph.close()
    return 0


def run_forget(args: argparse.Namespace) -> int:
    from mimical.config import Settings
    from mimical.dialog.sessions import RedisSessionStore
    from mimical.errors import InputError
    from mimical.messenger.event_queue import RedisEventQueue
    from mimical.messenger.responder import forget_user

    settings = Settings.from_env()
    if not settings.redis_url:
        raise InputError("mimical messenger forget deletes from Redis: set REDIS_URL")
    queue = RedisEventQueue(settings.redis_url)
    try:
        deleted = forget_user(queue, RedisSessionStore(settings.redis_url), args.psid)
    finally:
        queue.close()
    print(
        f"Deleted what is kept about Messenger user {args.psid} ({deleted} queued messages).",
        file=sys.stderr,
    )
    return 0


def run_respond(args: argparse.Namespace) -> int:
    import signal
    import threading

    from mimical.config import Settings
    from mimical.errors import InputError

    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    settings = Settings.from_env().with_overrides(messenger_workers=args.threads)
    if args.metrics_port is not None:
        settings = settings.with_overrides(metrics_port=args.metrics_port)
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
    responder = Responder(settings, queue_options)
    print(
        f"mimical answering Messenger events from Redis with {args.threads} threads",
        file=sys.stderr,
    )
    stop.wait()
    responder.close()
    return 0


class Responder:
    """What `respond` runs, without a web app: a `MessengerWorker` with
    `settings.messenger_workers` threads, the chatbot registry, a dialog engine
    connected on first use (in the worker's threads: connecting takes seconds), the
    owner's Page, and the metrics port (`/metrics`, and `/readyz` failing while the Page
    cannot send) when `settings.metrics_port` names one."""

    def __init__(self, settings, queue_options: dict | None = None):
        import threading

        from prometheus_client import CollectorRegistry

        from mimical.appkit.metrics import monitoring_wsgi, serve_monitoring
        from mimical.dialog.away import AwayWindows, owner_page
        from mimical.dialog.sessions import open_session_store
        from mimical.messenger.page_health import MessengerMetrics
        from mimical.messenger.responder import MessengerWorker
        from mimical.orchestration import open_registry

        self.settings = settings
        self.registry = open_registry(settings)
        self._engine_lock = threading.Lock()
        self._models = self._engine = None
        metrics = CollectorRegistry()
        windows = AwayWindows(open_session_store(settings))
        self.worker = MessengerWorker(
            self.engine,
            settings,
            metrics=MessengerMetrics(metrics),
            queue_options=queue_options,
            owner_page=owner_page(settings, windows, self.registry),
        )
        self.metrics_server = None
        if settings.metrics_port:
            wsgi = monitoring_wsgi(metrics, self.worker.readiness_problem)
            self.metrics_server = serve_monitoring(wsgi, settings.metrics_port)

    def engine(self):
        """The dialog engine, made once whichever worker thread asks first."""
        from mimical.dialog import create_engine
        from mimical.serving.connect import connect_models

        with self._engine_lock:
            if self._engine is None:
                self._models = connect_models(self.settings)
                self._engine = create_engine(self.settings, self._models.client, self.registry)
            return self._engine

    def close(self) -> None:
        """Finish the events at hand, then stop the metrics port and close the
        model connection and the registry."""
        self.worker.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self._models is not None:
            self._models.close()
        self.registry.close()
