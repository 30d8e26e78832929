"""`mimical demo`: the whole path in one command, from a chat export to a chat.

    mimical demo                                       # train once, then chat in the terminal
    mimical demo --message "hey, how was your weekend?"  # print one reply and exit (CI)

The first run writes a sample Messenger export for the demo persona (a real
person's chats from the chitchat data set, see `mimical.samples`),
registers the persona as public and builds it the way `mimical serve` builds any
upload: the local orchestrator imports it and trains a model for a few minutes at
most. Later runs reuse that model (`--retrain` builds a new version). Then it starts
the model server in-process and talks to the persona through the same dialog engine
as Messenger and the web chat. Everything lives under `MIMICAL_HOME` (default
~/.local/share/mimical).
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mimical.chatbot import BUILD_PHASES, Phase
from mimical.config import DEFAULT_TRAINING_MINUTES, Settings
from mimical.errors import MimicalError, UnavailableError

DEMO_NAME = "alex"  # the registry (and model) name of the demo persona
POLL_SECONDS = 0.25


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train the demo persona from a sample export and chat with it",
        description="Build a sample export for the demo persona, train a model on it (once;"
        " --retrain builds a new version) and chat with it in the terminal, or answer one"
        " --message and exit.",
    )
    parser.add_argument("--message", help="send this one message, print the reply and exit")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULT_TRAINING_MINUTES,
        help=f"bound the training loop (default {DEFAULT_TRAINING_MINUTES:g} minutes)",
    )
    parser.add_argument(
        "--max-conversations",
        type=int,
        default=None,
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
    """The demo persona, built and registered; reused when its model is already there."""
    from mimical.orchestration import open_orchestrator, open_registry
    from mimical.storage import SAVED_MODEL_FILE, model_prefix, open_storage

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

    from mimical.samples.plan import DEMO_PERSONA_NAME

    if chatbot is None:
        registry.create(
            DEMO_NAME, public=True, display_name=DEMO_PERSONA_NAME, me=DEMO_PERSONA_NAME
        )
    say(f"1/3 writing a sample Messenger export of {DEMO_PERSONA_NAME}'s chats")
    key = store_sample_export(storage, max_conversations)
    orchestrator = open_orchestrator(
        settings, storage, registry, train_options={"max_minutes": max_minutes}
    )
    try:
        orchestrator.build(DEMO_NAME, key, me=DEMO_PERSONA_NAME)
        chatbot = follow_build(registry, orchestrator, max_minutes)
    finally:
        orchestrator.close()
    if chatbot.phase != Phase.READY:
        raise MimicalError(f"building {DEMO_NAME} failed: {chatbot.message}")
    say(f"trained model version {chatbot.model_version}")
    return chatbot


def store_sample_export(storage, max_conversations: int | None) -> str:
    """Write the sample export, zipped as people download it, to the demo's upload key."""
    from mimical.samples.export import write_sample_export
    from mimical.storage import upload_key

    with tempfile.TemporaryDirectory(prefix="mimical-demo-") as scratch:
        export = write_sample_export(
            "messenger", Path(scratch) / "export", max_conversations=max_conversations
        )
        archive = shutil.make_archive(str(Path(scratch) / "messenger-export"), "zip", export)
        key = upload_key(DEMO_NAME, uuid.uuid4().hex, Path(archive).name)
        storage.put_file(key, Path(archive))
    return key


def follow_build(registry, orchestrator, max_minutes: float):
    """Wait for the build, with one line per phase and a progress bar on a terminal."""
    from tqdm import tqdm

    steps = {
        Phase.IMPORTING: "2/3 importing it",
        Phase.TRAINING: f"3/3 training (at most {max_minutes:g} minutes)",
    }
    announced = 0  # phases of BUILD_PHASES already announced
    bar = tqdm(
        total=100,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
        bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}",
    )
    with bar:
        while True:
            chatbot = registry.get(DEMO_NAME)
            if chatbot.phase in BUILD_PHASES:
                # A short phase may pass between two looks: announce every one reached.
                while announced <= BUILD_PHASES.index(chatbot.phase):
                    if BUILD_PHASES[announced] in steps:
                        bar.write(f"mimical demo: {steps[BUILD_PHASES[announced]]}", sys.stderr)
                    announced += 1
                bar.set_description_str(chatbot.message[:40], refresh=False)
                bar.update(round(100 * chatbot.progress) - bar.n)
            if not orchestrator.busy(DEMO_NAME):
                return registry.get(DEMO_NAME)
            time.sleep(POLL_SECONDS)


def run(args: argparse.Namespace) -> int:
    from mimical.dialog import create_engine
    from mimical.dialog.cli import chat_in_terminal
    from mimical.dialog.engine import NOT_AVAILABLE, NOW_CHATTING
    from mimical.orchestration import open_registry
    from mimical.serving.connect import connect_models

    # The demo always builds locally and serves its own model from local storage.
    settings = Settings.from_env().with_overrides(model_server="", orchestrator="local")
    chatbot = ensure_demo_persona(
        settings,
        max_minutes=args.max_minutes,
        max_conversations=args.max_conversations,
        retrain=args.retrain,
    )
    with connect_models(settings) as models:
        engine = create_engine(settings, models.client, open_registry(settings))
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
