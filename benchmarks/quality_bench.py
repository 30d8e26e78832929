"""Do replies make sense? Today's character GRU from scratch vs base + fine-tune.

    nice -n 10 .venv/bin/python benchmarks/quality_bench.py [--minutes 5] \\
        [--people demo,200,1000,5000] [--methods scratch,finetune] [--json runs.json]
    .venv/bin/python benchmarks/quality_bench.py --json runs.json --table-only

For each person and method, in the same run and with the same training budget:

1. builds the person's corpus as a user would: a Messenger sample export of their
   chitchat chats, imported (`demo` is the demo persona; 200/1000/5000 pick a held-out
   person with about that many replies, see `pick_person`: `sha256(sender id)` starts
   with b or c, so the base model never saw them);
2. trains for `--minutes` (`scratch`: the character model learned from nothing;
   `finetune`: the shipped base adapted to the person);
3. evaluates on the held-out conversations (`mimical.model.evaluate`): two-sample
   accuracy, non-word rate, context relevance, distinct-2 (each next to the person's
   real replies), bits/char vs the 5-gram baseline, verbatim rate;
4. times replies (≤ 100 characters, T = 0.8) over gRPC from our model server.

Sense figures are over at most `--samples` held-out exchanges (~10% of the person's
replies: about 20 for the 200-reply person, so expect noise there).
`--json` keeps every run in one file (a later run replaces the same person and
method), so people and methods can run one at a time and print one table.
Targets: two-sample ≤ 0.60; non-words ≤ 1.5× the person's; relevance ≥ 0.3; verbatim
≤ 2%; distinct-2 ≥ 0.8× the person's; bits/char ≥ 10% under the 5-gram; p50 ≤ 60 ms.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

METHODS = ("scratch", "finetune")
PEOPLE = ("demo", "200", "1000", "5000")
REPLY_CHARS = 100
# Below this many held-out replies the sense figures are noise.
FEW_HELD_OUT = 50
CONTEXTS = [
    "hey! how was your weekend?",
    "do you want to grab dinner tonight?",
    "what are you studying these days",
    "I just got back from the gym, so tired lol",
    "what kind of music do you like?",
]


@functools.cache
def held_out_people() -> dict[str, tuple[int, int]]:
    """Held-out chitchat senders → (replies, chats), over their two-person chats."""
    from mimical.model.pretrain import is_held_out
    from mimical.samples.plan import load_chats

    replies: Counter = Counter()
    chats: Counter = Counter()
    for chat in load_chats():
        senders = {sender for sender, _, _ in chat["messages"]}
        if len(senders) == 2:
            chats.update(senders)
            for sender, _ in itertools.groupby(chat["messages"], key=lambda m: m[0]):
                replies[sender] += 1
    return {sender: (replies[sender], chats[sender]) for sender in chats if is_held_out(sender)}


def pick_person(person: str) -> str | None:
    """The chitchat sender id for `person` (None: the demo persona).

    Among held-out people within 40% of the wanted number of replies, the one with the
    most chats: the model holds out whole conversations, so more of them leave more
    replies to evaluate on. Nobody that close: the nearest.
    """
    if person == "demo":
        return None
    people, wanted = held_out_people(), int(person)
    close = [
        sender for sender, (replies, _) in people.items() if abs(replies - wanted) <= 0.4 * wanted
    ]
    if close:
        return max(close, key=lambda sender: (people[sender][1], sender))
    return min(people, key=lambda sender: (abs(people[sender][0] - wanted), sender))


def build_corpus(person: str, workdir: Path) -> Path:
    from mimical.corpus.importer import import_exports
    from mimical.samples.export import write_sample_export

    corpus = workdir / f"{person}.jsonl"
    if not corpus.exists():
        export = write_sample_export("messenger", workdir / f"{person}-export", pick_person(person))
        import_exports(export, corpus)
    return corpus


def reply_latencies(model_base: Path, name: str, repeats: int) -> list[float]:
    """Seconds per reply over gRPC, one request at a time, after one warm-up."""
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    server = ModelServer(str(model_base)).start()
    client = ModelClient(server.target)
    try:
        # The first call loads and traces the model: minutes on a busy machine.
        client.reply(name, CONTEXTS[0], max_chars=REPLY_CHARS, seed=0, timeout=600)
        times = []
        for i, context in zip(range(repeats), itertools.cycle(CONTEXTS), strict=False):
            started = time.perf_counter()
            client.reply(name, context, max_chars=REPLY_CHARS, seed=i, timeout=60)
            times.append(time.perf_counter() - started)
        return times
    finally:
        client.close()
        server.stop()


def run(person: str, method: str, args, workdir: Path) -> dict:
    from mimical.model.evaluate import evaluate_model
    from mimical.model.train import train_persona

    corpus = build_corpus(person, workdir)
    model_base = workdir / f"models-{method}"
    name = f"{method}-{person}"
    print(f"\n== {person} / {method}: training {args.minutes:g} min on {corpus.name}", flush=True)
    started = time.monotonic()
    trained = train_persona(
        corpus,
        model_base,
        name,
        max_minutes=args.minutes,
        seed=args.seed,
        from_scratch=method == "scratch",
        progress=True,
    )
    wall = time.monotonic() - started
    evaluation = evaluate_model(trained.export_dir, corpus, samples=args.samples, seed=args.seed)
    latencies = reply_latencies(model_base, name, args.repeats)
    sender = pick_person(person)
    return {
        "person": person,
        "sender": sender or "demo persona",
        "method": method,
        "minutes": args.minutes,
        "replies": trained.metrics["train_replies"] + trained.metrics["held_out_replies"],
        "training_seconds": trained.metrics["training_seconds"],
        "wall_seconds": round(wall, 1),
        "reply_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "evaluation": {key: value for key, value in evaluation.items() if key != "curve"},
    }


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def table_row(run: dict) -> list[str]:
    """The run's figures, each marked against its target."""
    evaluation = run["evaluation"]
    sense = evaluation["sense"]
    two_sample = sense["two_sample_accuracy"]
    words, distinct = sense["non_word_rate"], sense["distinct_2"]
    relevance = sense["context_relevance"]["relevance"]
    stderr = sense["context_relevance"]["relevance_stderr"]
    ratio = evaluation["bits_per_char"] / evaluation["baseline_5gram_bits_per_char"]
    verbatim = evaluation["verbatim_rate"]
    return [
        run["person"],
        f"{run['replies']} ({evaluation['held_out_replies']})",
        run["method"],
        "n/a" if two_sample is None else f"{two_sample:.2f}{_mark(two_sample <= 0.60)}",
        f"{words['model']:.1%} ({words['persona']:.1%})"
        + _mark(words["model"] <= 1.5 * words["persona"]),
        "n/a" if relevance is None else f"{relevance:.2f} ± {stderr:.2f}{_mark(relevance >= 0.3)}",
        f"{verbatim:.1%}{_mark(verbatim <= 0.02)}",
        f"{distinct['model']:.2f} ({distinct['persona']:.2f})"
        + _mark(distinct["model"] >= 0.8 * distinct["persona"]),
        f"{evaluation['bits_per_char']:.3f} / {evaluation['baseline_5gram_bits_per_char']:.3f}"
        f" = {ratio:.2f}{_mark(ratio <= 0.90)}",
        f"{run['training_seconds']:.0f}",
        f"{run['reply_p50_ms']:.0f}{_mark(run['reply_p50_ms'] <= 60)}",
    ]


HEADER = [
    "person",
    "replies (held-out)",
    "method",
    "2-sample ≤.60",
    "non-words (real) ≤1.5×",
    "relevance ≥.3",
    "verbatim ≤2%",
    "distinct-2 (real) ≥.8×",
    "bits/char vs 5-gram ≤.90",
    "train s",
    "p50 ms ≤60",
]


def print_table(runs: list[dict]) -> None:
    rows = [HEADER] + [table_row(r) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    senders = {r["person"]: r["sender"] for r in runs}
    print("\npeople: " + "; ".join(f"{p} = {s}" for p, s in senders.items()))
    few = sorted({r["person"] for r in runs if r["evaluation"]["held_out_replies"] < FEW_HELD_OUT})
    if few:
        print(f"too few held-out replies (< {FEW_HELD_OUT}) to judge the figures of: {few}")


def print_samples(runs: list[dict], count: int = 5) -> None:
    """Friend → real → each method's reply, for held-out exchanges both methods sampled."""
    for person in dict.fromkeys(r["person"] for r in runs):
        replies = {
            r["method"]: {(e["context"], e["real"]): e["model"] for e in r["evaluation"]["samples"]}
            for r in runs
            if r["person"] == person
        }
        shared = [
            key for key in next(iter(replies.values())) if all(key in m for m in replies.values())
        ]
        print(f"\nsample exchanges, {person}:")
        for context, real in shared[:count]:
            print(f"  friend:  {context[-120:]!r}")
            print(f"  real:    {real[:120]!r}")
            for method, by_exchange in replies.items():
                print(f"  {method + ':':<9}{by_exchange[context, real][:120]!r}")
            print()


def stored_runs(path: Path | None) -> list[dict]:
    return json.loads(path.read_text()) if path and path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per run")
    parser.add_argument("--people", default=",".join(PEOPLE), help="demo,200,1000,5000")
    parser.add_argument("--methods", default=",".join(METHODS), help="scratch,finetune")
    parser.add_argument("--samples", type=int, default=200, help="held-out exchanges sampled")
    parser.add_argument("--repeats", type=int, default=30, help="timed replies per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="keep all runs in this file (merged)")
    parser.add_argument("--table-only", action="store_true", help="print --json's table")
    parser.add_argument("--workdir", type=Path, help="keep corpora and models here")
    args = parser.parse_args()
    people, methods = args.people.split(","), args.methods.split(",")
    if unknown := set(people) - set(PEOPLE) | set(methods) - set(METHODS):
        parser.error(f"unknown people or methods: {sorted(unknown)}")

    runs = stored_runs(args.json)
    if not args.table_only:
        with tempfile.TemporaryDirectory(prefix="quality-bench-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for person, method in itertools.product(people, methods):
                result = run(person, method, args, workdir)
                runs = [r for r in runs if (r["person"], r["method"]) != (person, method)]
                runs.append(result)
                if args.json:
                    args.json.write_text(json.dumps(runs, indent=1, ensure_ascii=False))
    order = {key: i for i, key in enumerate(itertools.product(PEOPLE, METHODS))}
    runs.sort(key=lambda r: order[r["person"], r["method"]])
    print()
    print_table(runs)
    print_samples(runs)


if __name__ == "__main__":
    main()
