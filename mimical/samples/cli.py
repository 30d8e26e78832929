"""`mimical sample-export`.

mimical sample-export --format whatsapp-ios --out /tmp/wa --max-conversations 100
"""

from __future__ import annotations

from mimical.samples.plan import DEMO_PERSONA, SAMPLE_FORMATS


def register(subparsers) -> None:
    sample = subparsers.add_parser(
        "sample-export",
        help="write a realistic sample export from the chitchat data set",
        description="Write a chat export in a real format, with its quirks, built from the"
        " chitchat data set: for tests and the demo.",
    )
    sample.add_argument("--format", required=True, choices=SAMPLE_FORMATS)
    sample.add_argument("--out", required=True, metavar="DIR")
    sample.add_argument(
        "--persona",
        default=DEMO_PERSONA,
        metavar="SENDER_ID",
        help="chitchat sender id of the exporting user (default: the most prolific sender)",
    )
    sample.add_argument("--max-conversations", type=int, metavar="N", help="use at most N chats")
    sample.add_argument("--legacy-layout", action="store_true", help="Messenger's pre-2024 layout")
    sample.set_defaults(func=run_sample_export)


def run_sample_export(args) -> int:
    from mimical.errors import InputError
    from mimical.samples.export import write_sample_export

    try:
        path = write_sample_export(
            args.format,
            args.out,
            args.persona,
            args.max_conversations,
            legacy_layout=args.legacy_layout,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    print(path)
    return 0
