"""`mimical train`, `mimical pretrain` and `mimical evaluate`.

mimical train corpus.jsonl -o MODEL_BASE [--name NAME] [--max-minutes M] [--epochs N] [--seed S]
              [--from-scratch]
mimical pretrain [-o DIR] [--max-minutes 80] [--cpu-minutes] [--resume] [--checkpoints DIR]
                 [--passes 4] [--epochs 20] [--units 384] [--attention-dim 128]
                 [--context-tokens 48] [--vocab-size 4096]
mimical evaluate MODEL_DIR corpus.jsonl [--json] [--report report.html]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from mimical.errors import InputError

# A model name becomes a directory (and a TF Serving model name): keep it path-safe.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a persona model on a corpus and export it for TF Serving",
        description="Train on corpus.jsonl and export MODEL_BASE/NAME/VERSION/ "
        "(VERSION is the next integer).",
    )
    train.add_argument("corpus", type=Path, help="corpus.jsonl written by `mimical import`")
    train.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL_BASE")
    train.add_argument("--name", help="model name (default: the corpus file name)")
    train.add_argument("--max-minutes", type=float, help="stop training after this long")
    train.add_argument("--epochs", type=int, help="at most this many passes over the data")
    train.add_argument("--seed", type=int, default=0, help="same seed, same model (default 0)")
    train.add_argument(
        "--size",
        choices=("default", "tiny"),
        default="default",
        help="network size; 'tiny' trains in seconds with gibberish replies (smoke tests)",
    )
    train.add_argument(
        "--from-scratch",
        action="store_true",
        help="learn a character model from this corpus alone instead of fine-tuning the base",
    )
    train.add_argument(
        "--retrieval",
        choices=("public", "all", "off"),
        default="public",
        help="which of your replies the persona may say again word for word: 'public' "
        "(default) only ones under 6 words; 'all' (private personas only) any of yours; "
        "'off' none",
    )
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.set_defaults(func=run_train)

    pretrain = subparsers.add_parser(
        "pretrain",
        help="pretrain the base model on the chitchat data set (minus held-out people)",
        description="Learn the subword tokenizer and the base conversational model that "
        "`mimical train` fine-tunes, and write the base artifact.",
    )
    pretrain.add_argument("-o", "--output", type=Path, help="artifact dir (default: the package's)")
    pretrain.add_argument("--max-minutes", type=float, default=80.0, help="time limit (80)")
    pretrain.add_argument(
        "--cpu-minutes",
        action="store_true",
        help="count --max-minutes in CPU time (compare designs at equal CPU on a shared machine)",
    )
    pretrain.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its checkpoint, or from the base at --output",
    )
    pretrain.add_argument(
        "--checkpoints", type=Path, help="where runs keep checkpoints (~/.cache/mimical/pretrain)"
    )
    pretrain.add_argument("--passes", type=int, default=4, help="turns read as replies (4)")
    pretrain.add_argument("--epochs", type=int, default=20, help="epochs over those pairs (20)")
    pretrain.add_argument("--units", type=int, default=384, help="the GRU's hidden size (384)")
    pretrain.add_argument(
        "--attention-dim", type=int, default=128, help="attention over the context (128; 0: none)"
    )
    pretrain.add_argument("--context-tokens", type=int, default=48, help="context tokens read (48)")
    pretrain.add_argument(
        "--contrast", type=float, help="contrastive loss weight (default: the base's)"
    )
    pretrain.add_argument("--vocab-size", type=int, default=4096, help="tokens (4096)")
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--base-version", type=int, default=4, help="version to record (4)")
    pretrain.set_defaults(func=run_pretrain)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a model on its held-out conversations against a 5-gram baseline",
    )
    evaluate.add_argument("model_dir", type=Path, help="MODEL_BASE/NAME or MODEL_BASE/NAME/VERSION")
    evaluate.add_argument("corpus", type=Path, help="the corpus the model was trained on")
    evaluate.add_argument("--json", action="store_true", help="print all numbers as JSON")
    evaluate.add_argument("--report", type=Path, help="write an HTML report here")
    evaluate.add_argument("--samples", type=int, default=200, help="replies to sample (200)")
    evaluate.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from mimical.model.train import tiny_config, train_persona

    name = args.name or args.corpus.stem
    if not MODEL_NAME.fullmatch(name):
        raise InputError(f"{name!r}: a model name is letters, digits, '.', '_' or '-'")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise InputError("--max-minutes must be positive")
    if args.epochs is not None and args.epochs < 1:
        raise InputError("--epochs must be at least 1")
    result = train_persona(
        args.corpus,
        args.output,
        name,
        max_minutes=args.max_minutes,
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.json,
        config=tiny_config() if args.size == "tiny" else None,
        from_scratch=args.from_scratch,
        retrieval=args.retrieval,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "version": result.version,
                    "export_dir": str(result.export_dir),
                    "metrics": result.metrics,
                }
            )
        )
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from mimical.model.base_model import BASE_DIR
    from mimical.model.pretrain import BASE_CONFIG, pretrain

    if args.max_minutes <= 0:
        raise InputError("--max-minutes must be positive")
    if args.passes < 1:
        raise InputError("--passes must be at least 1")
    if args.epochs < 1:
        raise InputError("--epochs must be at least 1")
    if not 16 <= args.units <= 4096:
        raise InputError("--units must be between 16 and 4096")
    if not 260 < args.vocab_size <= 65536:
        raise InputError("--vocab-size must be between 261 and 65536")
    if args.attention_dim < 0 or args.attention_dim % 4:
        raise InputError("--attention-dim must be a multiple of 4 (its heads), or 0")
    if args.contrast is not None and args.contrast < 0:
        raise InputError("--contrast must not be negative")
    if not 8 <= args.context_tokens <= 512:
        raise InputError("--context-tokens must be between 8 and 512")
    output = args.output or BASE_DIR
    config = replace(
        BASE_CONFIG,
        units=args.units,
        attention_dim=args.attention_dim,
        context_tokens=args.context_tokens,
        contrast_weight=BASE_CONFIG.contrast_weight if args.contrast is None else args.contrast,
        context_chars=BASE_CONFIG.context_chars * args.context_tokens // BASE_CONFIG.context_tokens,
    )
    info = pretrain(
        output,
        max_minutes=args.max_minutes,
        cpu_minutes=args.cpu_minutes,
        resume=args.resume,
        checkpoints=args.checkpoints,
        passes=args.passes,
        epochs=args.epochs,
        vocab_size=args.vocab_size,
        config=config,
        seed=args.seed,
        version=args.base_version,
        progress=True,
    )
    metrics = info["metrics"]
    print(
        f"base v{info['version']} → {output}: development group "
        f"{metrics['development_bits_per_char']:.3f} bits/char, context use "
        f"{metrics['development_context_use']['bits_per_reply']:.1f} bits per reply, "
        f"{metrics['cpu_hours']} CPU-hours in all"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from mimical.model.evaluate import evaluate_model
    from mimical.model.report import SYSTEM_NOTES, figure_cell

    if args.samples < 1:
        raise InputError("--samples must be at least 1")
    result = evaluate_model(args.model_dir, args.corpus, samples=args.samples)
    if args.report:
        from mimical.model.report import write_report

        write_report(result, args.report)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}, ensure_ascii=False))
        return 0
    print(
        f"test exchanges:        {result['exchanges']} of {result['test_replies']} test replies, "
        f"seeds {', '.join(map(str, result['seeds']))}, replies cut at {result['reply_chars']} "
        "characters"
    )
    print(
        f"bits/char:             {result['bits_per_char']:.3f} "
        f"(5-gram baseline {result['baseline_5gram_bits_per_char']:.3f}, "
        f"{result['improvement_over_baseline']:+.1%})"
    )
    use = result["context_use"]
    if use["bits_per_reply"] is not None:
        print(
            f"context use:           {use['bits_per_reply']:.1f} bits per reply saved by the "
            f"true context over a shuffled one ({use['low']:.1f} to {use['high']:.1f})"
        )
    columns = (
        ("two-sample accuracy", "two_sample_accuracy", ".2f"),
        ("context relevance", "relevance", ".2f"),
        ("non-word rate", "non_word_rate", ".1%"),
        ("distinct-2", "distinct_2", ".2f"),
        ("verbatim rate", "verbatim_rate", ".1%"),
        ("exact copies", "exact_copy_rate", ".1%"),
    )
    for label, key, spec in columns:
        cells = "  ".join(
            f"{system} {figure_cell(result['systems'][system][key], spec)}"
            for system in result["systems"]
        )
        print(f"{label + ':':<23}{cells}")
    for system, note in SYSTEM_NOTES.items():
        print(f"  {system}: {note}")
    if args.report:
        print(f"report:                {args.report}", file=sys.stderr)
    return 0
