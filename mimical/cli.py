"""The `mimical` command line: one sub-command per job.

Each feature module owns its sub-commands through a `register(subparsers)` function,
and imports heavy libraries (TensorFlow, boto3) only inside the command it runs, so
`mimical --help` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mimical import __version__
from mimical.errors import MimicalError
from mimical.quiet import quiet_tensorflow


def command_modules() -> tuple:
    """Modules that contribute sub-commands, in the order `--help` lists them.

    Imported when the parser is built, not when this module is: a test that builds a
    parser of its own (one area's commands) imports no other area.
    """
    from mimical import demo, serve
    from mimical.corpus import cli as corpus_cli
    from mimical.dialog import cli as dialog_cli
    from mimical.messenger import cli as messenger_cli
    from mimical.model import cli as model_cli
    from mimical.samples import cli as samples_cli
    from mimical.serving import cli as serving_cli
    from mimical.web import away_cli, password_cli

    return (
        corpus_cli,  # import
        samples_cli,  # sample-export
        model_cli,  # train, evaluate
        serving_cli,  # serve-models
        dialog_cli,  # chat
        serve,  # serve
        messenger_cli,  # messenger setup, messenger respond
        password_cli,  # password
        away_cli,  # away
        demo,  # demo
    )


def build_parser(modules: tuple | None = None) -> argparse.ArgumentParser:
    """The `mimical` parser with the sub-commands of `modules` (default: every one)."""
    parser = argparse.ArgumentParser(
        prog="mimical", description="A chatbot that sounds like you, trained on your chat history."
    )
    parser.add_argument("--version", action="version", version=f"mimical {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log debug details, and TensorFlow's own start-up lines, to stderr",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in command_modules() if modules is None else modules:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None, modules: tuple | None = None) -> int:
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if not args.verbose:
        quiet_tensorflow()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except MimicalError as error:
        print(f"mimical {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mimical {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
