"""`mimical import`.

mimical import /tmp/wa --me "Sam Rivera" -o corpus.jsonl --json
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from mimical.corpus.segment import GAP_THRESHOLD_SECONDS

    parser = subparsers.add_parser(
        "import",
        help="turn chat exports into a corpus",
        description="Read Messenger, WhatsApp or Telegram exports (folders, .zip files or"
        " single files; the format is detected) into one JSON Lines corpus.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="export folder, .zip or file")
    parser.add_argument("--me", metavar="NAME", help="your name in the chats (default: detect)")
    parser.add_argument("-o", "--output", default="corpus.jsonl", help="default: corpus.jsonl")
    parser.add_argument(
        "--format",
        choices=("messenger", "messenger-e2ee", "whatsapp", "telegram"),
        help="skip format detection",
    )
    parser.add_argument(
        "--no-scrub",
        dest="scrub",
        action="store_false",
        help="keep e-mails, phone numbers, links, cards and IBANs (private personas only)",
    )
    parser.add_argument(
        "--gap-minutes",
        type=float,
        default=GAP_THRESHOLD_SECONDS / 60,
        help="silence that starts a new conversation (default: %(default)g)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes that read a Messenger export (default: 1; more helps only with large"
        " exports on idle CPUs)",
    )
    parser.add_argument("--json", action="store_true", help="print the stats as one JSON object")
    parser.set_defaults(func=run_import)


def run_import(args) -> int:
    from mimical.corpus.importer import import_exports

    stats = import_exports(
        args.paths,
        args.output,
        me=args.me,
        format=args.format,
        scrub=args.scrub,
        progress=sys.stderr.isatty(),
        gap_seconds=args.gap_minutes * 60,
        workers=args.workers,
    )
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    skipped = ", ".join(f"{n} {reason}" for reason, n in stats["skipped"].items() if n)
    scrubbed = ", ".join(f"{n} {kind}" for kind, n in stats["scrubbed"].items() if n)
    print(
        f"Imported {stats['format']} export as {stats['persona']}: {stats['messages']} messages"
        f" ({stats['persona_messages']} yours) in {stats['threads']} threads,"
        f" {stats['conversations']} conversations, {stats['pairs']} training pairs"
        f" ({stats['persona_starts']} openers).\n"
        f"Scrubbed: {scrubbed or 'nothing'}. Skipped: {skipped or 'nothing'}.\n"
        f"Wrote {stats['output']}"
    )
    return 0
