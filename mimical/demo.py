"""`mimical demo`: the whole path in one command, from a chat export to a chat.

    mimical demo                                       # train once, then chat in the terminal
    mimical demo --message "hey, how was your weekend?"  # print one reply and exit (CI)

The first run builds a sample Messenger export for the demo persona (a real
person's chats from the chitchat data set, see `mimical.samples`),
imports it, trains a persona model for a few minutes at most and registers the
persona as public; later runs reuse that model (`--retrain` builds a new version).
Then it starts the model server in-process and talks to the persona through the
same dialog engine as Messenger and the web chat. Everything lives under
`MIMICAL_HOME` (default ~/.local/share/mimical).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import tempfile
import uuid
from pathlib import Path

from mimical.config import Settings
from mimical.errors import UnavailableError

DEMO_NAME = "alex"  # the registry (and model) name of the demo persona
DEFAULT_MAX_MINUTES = 3.0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train the demo persona from a sample export and chat with it",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--message", help="send this one message, print the reply and exit")
    parser.add_argument(
        "--max-minutes", type=float, default=DEFAULT_MAX_MINUTES,
        help=f"bound the training loop (default {DEFAULT_MAX_MINUTES:g} minutes)",
    )
    parser.add_argument(
        "--max-conversations", type=int, default=None,
        help="use only this many of the persona's chats (faster, less like them)",
    )
    parser.add_argument("--retrain", action="store_true", help="train a new version first")
    parser.set_defaults(func=run)


def say(text: str) -> None:
    """Progress for people: stderr, so `--message` keeps stdout for the reply alone."""
    print(f"mimical demo: {text}", file=sys.stderr, flush=True)


def ensure_demo_persona(
    settings: Settings, *, max_minutes: float, max_conversations: int | None, retrain: bool
):
    """The demo persona, trained and registered; reused when its model is already there."""
    from mimical.registry import Phase, open_registry
    from mimical.storage import SAVED_MODEL_FILE, corpus_key, model_prefix, open_storage

    registry = open_registry(settings)
    storage = open_storage(settings.storage_root, settings)
    chatbot = registry.find(DEMO_NAME)
    if (
        chatbot is not None
        and chatbot.servable
        and not retrain
        and storage.exists(model_prefix(DEMO_NAME, chatbot.model_version) + SAVED_MODEL_FILE)
    ):
        say(f"reusing {chatbot.display_name} (model version {chatbot.model_version})")
        return chatbot

    from mimical.corpus.importer import import_exports
    from mimical.model.train import train_persona
    from mimical.samples.export import write_sample_export
    from mimical.samples.plan import DEMO_PERSONA_NAME

    if chatbot is None:
        chatbot, _ = registry.create(
            DEMO_NAME, public=True, display_name=DEMO_PERSONA_NAME, me=DEMO_PERSONA_NAME
        )
    interactive = sys.stderr.isatty()
    with tempfile.TemporaryDirectory(prefix="mimical-demo-") as scratch:
        scratch = Path(scratch)
        say(f"1/3 writing a sample Messenger export of {DEMO_PERSONA_NAME}'s chats")
        registry.update_status(DEMO_NAME, phase=Phase.IMPORTING, progress=0.0, message="")
        export = write_sample_export(
            "messenger", scratch / "export", max_conversations=max_conversations
        )
        say("2/3 importing it")
        corpus = scratch / "corpus.jsonl"
        stats = import_exports(export, corpus, me=DEMO_PERSONA_NAME, progress=interactive)
        say(f"    {stats['pairs']} replies of {stats['persona']} in {stats['threads']} threads")
        say(f"3/3 training (at most {max_minutes:g} minutes)")
        registry.update_status(DEMO_NAME, phase=Phase.TRAINING)
        local_models = storage.local_path("models")
        model_base = local_models if local_models is not None else scratch / "models"
        result = train_persona(
            corpus, model_base, DEMO_NAME, max_minutes=max_minutes, progress=interactive,
            on_progress=lambda p: registry.update_status(
                DEMO_NAME, progress=float(p.get("fraction") or 0.0)
            ),
        )
        if local_models is None:  # s3:// storage: upload the export where servers look
            storage.put_tree(model_prefix(DEMO_NAME, result.version), result.export_dir)
        storage.put_file(corpus_key(DEMO_NAME, result.version), corpus)
    say(f"trained model version {result.version}")
    return registry.update_status(
        DEMO_NAME, phase=Phase.READY, progress=1.0, model_version=result.version,
        add_version=result.version, metrics=result.metrics,
    )


def run(args: argparse.Namespace) -> int:
    from mimical.dialog import create_engine
    from mimical.dialog.cli import chat_in_terminal
    from mimical.dialog.engine import NOT_AVAILABLE, NOW_CHATTING
    from mimical.serving.connect import connect_models

    # The demo always serves its own freshly trained model from local storage.
    settings = Settings.from_env().with_overrides(model_server="")
    chatbot = ensure_demo_persona(
        settings, max_minutes=args.max_minutes, max_conversations=args.max_conversations,
        retrain=args.retrain,
    )
    with connect_models(settings) as models:
        engine = create_engine(settings, models.client)
        if args.message is None:
            say(f'chatting with {chatbot.display_name}; Ctrl-D ends, "%restart" picks another')
            chat_in_terminal(engine, getpass.getuser(), DEMO_NAME)
            return 0
        user = f"demo-{uuid.uuid4().hex}"
        opening = engine.handle("demo", user, DEMO_NAME)
        if opening != [NOW_CHATTING.format(name=chatbot.display_name)]:
            raise UnavailableError(f"cannot start a chat with {DEMO_NAME}: {' '.join(opening)}")
        replies = engine.handle("demo", user, args.message)
        # In a script a friendly "not available" must still fail loudly.
        if replies == [NOT_AVAILABLE.format(name=chatbot.display_name)]:
            raise UnavailableError(replies[0])
        for reply in replies:
            print(reply)
    return 0
