"""The `mimical` command line: one sub-command per job.

Each feature module owns its sub-commands through a `register(subparsers)` function,
and imports heavy libraries (TensorFlow, boto3) only inside the command it runs, so
`mimical --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mimical import __version__
from mimical.errors import MimicalError
from mimical.quiet import quiet_tensorflow

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "mimical.corpus.cli",  # import
    "mimical.samples.cli",  # sample-export
    "mimical.model.cli",  # train, evaluate
    "mimical.serving.cli",  # serve-models
    "mimical.dialog.cli",  # chat
    "mimical.web.cli",  # serve
    "mimical.messenger.cli",  # messenger setup, messenger respond
    "mimical.web.password_cli",  # password
    "mimical.web.away_cli",  # away
    "mimical.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
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
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
