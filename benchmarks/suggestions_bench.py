"""Reply drafts: three 100-character suggestions, from the model alone and through the API.

    nice -n 10 .venv/bin/python benchmarks/suggestions_bench.py [--person 1000] \\
        [--minutes 1] [--repeats 30] [--workdir DIR]

1. Fine-tunes the shipped base for `--minutes` on a held-out chitchat person (as
   `benchmarks/quality_bench.py` picks them: `--person 1000` is the one with about 1,000
   replies), once per `--workdir`; then exports the same weights again with the graph of
   the code being measured (run it with PYTHONPATH at another checkout for "before").
2. Serves that export with `mimical serve-models` in its own process (gRPC on loopback)
   and the API (`api` + `suggestions`) in a werkzeug thread of this one.
3. Times, one request at a time and interleaved (so drift hits all alike), on the
   friends' turns of the person's held-out test conversations (real messages to them,
   which their own replies, retrieved, often match):
   - baseline: one 100-character reply (`ModelClient.reply`: what a chat message costs);
   - model: three rows of one context in one Predict call (`ModelClient.replies`), and
     how often those three are distinct (else the endpoint calls again);
   - endpoint: POST /api/chatbots/NAME/suggestions {count 3, max_chars 100}.
   Reports p50 and p90 of each. Goal: endpoint p50 ≤ 150 ms on 2 cores.
4. Prints three drafts for a held-out conversation of the person's test split beside
   what they really answered.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from quality_bench import CONTEXTS, REPLY_CHARS, build_corpus, pick_person

from mimical.corpus.schema import context_turns, layout_context

DRAFTS = 3
PASSWORD = "bench-password"


def trained_persona(person: str, minutes: float, workdir: Path) -> Path:
    """The export of the person's persona fine-tuned for `minutes` (trained once)."""
    from mimical.model.export import resolve_export
    from mimical.model.train import train_persona

    name = f"{person}-{minutes:g}min"
    model_dir = workdir / "trained" / name
    if not model_dir.exists():
        corpus = build_corpus(person, workdir)
        train_persona(corpus, workdir / "trained", name, max_minutes=minutes, progress=True)
    return resolve_export(model_dir)


def export_with_this_code(trained: Path, corpus: Path, model_base: Path, name: str) -> None:
    """The trained weights and calibration, exported by the graph code on sys.path."""
    from mimical.model.data import load_split
    from mimical.model.export import export_generator, export_parts, read_extra
    from mimical.model.retrieval import bank_replies
    from mimical.model.train import persona_generator

    weights, tokenizer, config = export_parts(trained)
    split = load_split(corpus)
    generator = persona_generator(weights, tokenizer, config, split, bank_replies(split.train))
    extras = {f: read_extra(trained, f) for f in ("config.json", "metrics.json")}
    vocabulary = "tokenizer.json" if config.tokens == "pieces" else "vocabulary.json"
    extras[vocabulary] = read_extra(trained, vocabulary)
    export_generator(generator, model_base, name, extras=extras)


def start_model_server(model_base: Path) -> tuple[subprocess.Popen, str]:
    """`mimical serve-models` on a free port; returns the process and its target."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mimical.cli", "serve-models"]
        + ["--model-base", str(model_base), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    for line in process.stderr:
        if line.startswith("serving "):
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, line.rsplit(" on ", 1)[1].strip()
    raise RuntimeError("the model server exited before serving")


def start_api(home: Path, target: str, name: str) -> tuple[int, str]:
    """The API with suggestions in a werkzeug thread; returns its port and an owner token."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    from mimical.app import create_app
    from mimical.config import Settings
    from mimical.orchestration import open_registry

    settings = Settings(home=home, model_server=target, suggestions_rate_limit="100000/minute")
    registry = open_registry(settings)
    token = registry.create(name, public=False, password=PASSWORD)[1]
    registry.update_status(name, phase="Ready", model_version=1, add_version=1)
    registry.close()
    app = create_app(settings, components=["api", "suggestions"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, token


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
    }


def friend_turns(corpus: Path, count: int) -> list[str]:
    """The first `count` distinct friends' turns of the test conversations."""
    from mimical.model.data import load_split

    turns = dict.fromkeys(p.last_turn for p in load_split(corpus).test if p.last_turn.strip())
    return list(turns)[:count]


def measure(client, connection, name: str, token: str, turns_of_friends: list[str]) -> dict:
    """Interleaved timings of the baseline, the model call and the endpoint."""
    times = {"baseline: one reply": [], "model: 3 rows, one call": [], "endpoint: 3 drafts": []}
    distinct = drafts = 0
    for turn in turns_of_friends:
        context = layout_context([(False, turn)])
        started = time.perf_counter()
        client.reply(name, context, max_chars=REPLY_CHARS, timeout=60)
        times["baseline: one reply"].append(time.perf_counter() - started)

        started = time.perf_counter()
        rows = client.replies(name, context, DRAFTS, max_chars=REPLY_CHARS, timeout=60)
        times["model: 3 rows, one call"].append(time.perf_counter() - started)
        distinct += len({r.strip() for r in rows if r.strip()}) == DRAFTS

        turns = [{"from": "them", "text": line} for line in turn.split("\n") if line]
        body = json.dumps({"turns": turns, "count": DRAFTS, "max_chars": REPLY_CHARS})
        started = time.perf_counter()
        connection.request(
            "POST",
            f"/api/chatbots/{name}/suggestions",
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
        times["endpoint: 3 drafts"].append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"suggestions answered {response.status}: {answer}")
        drafts += len(answer["suggestions"])
    result = {label: percentiles(seconds) for label, seconds in times.items()}
    result["one call gave 3 distinct"] = f"{distinct}/{len(turns_of_friends)}"
    result["drafts per answer"] = round(drafts / len(turns_of_friends), 2)
    return result


def held_out_drafts(corpus: Path, connection, name: str, token: str) -> dict:
    """Three drafts for the first test exchange that answers a friend's turn, sent with
    the turns before it as the extension would (whose each is)."""
    from mimical.model.data import load_split

    split = load_split(corpus)
    pair = next(p for p in split.test if p.last_turn.strip() and len(p.reply) < 120)
    turns = [
        {"from": "me" if own else "them", "text": line}
        for own, text in context_turns(pair.context)
        for line in text.split("\n")
        if line
    ]
    connection.request(
        "POST",
        f"/api/chatbots/{name}/suggestions",
        json.dumps({"turns": turns, "count": DRAFTS, "max_chars": REPLY_CHARS}),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    answer = json.loads(connection.getresponse().read())
    return {"friend": pair.last_turn, "real": pair.reply, "drafts": answer.get("suggestions")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--person", default="1000", help="a held-out person (quality_bench)")
    parser.add_argument("--minutes", type=float, default=1.0, help="fine-tuning budget")
    parser.add_argument("--repeats", type=int, default=30, help="timed requests of each kind")
    parser.add_argument("--workdir", type=Path, help="keep the corpus and trained persona here")
    args = parser.parse_args()
    if args.person == "demo":
        parser.error("--person must be a held-out person (300, 1000, 5000)")

    from mimical.serving.client import ModelClient

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="suggestions-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    trained = trained_persona(args.person, args.minutes, workdir)
    corpus = build_corpus(args.person, workdir)
    with tempfile.TemporaryDirectory(prefix="suggestions-bench-run-") as tmp:
        name = "persona"
        export_with_this_code(trained, corpus, Path(tmp) / "models", name)
        server, target = start_model_server(Path(tmp) / "models")
        client = ModelClient(target)
        try:
            port, token = start_api(Path(tmp) / "home", target, name)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            # The first calls load and trace the model: minutes on a busy machine.
            client.replies(name, CONTEXTS[0], DRAFTS, max_chars=REPLY_CHARS, timeout=600)
            client.reply(name, CONTEXTS[0], max_chars=REPLY_CHARS, timeout=600)
            contexts = friend_turns(corpus, args.repeats)
            result = measure(client, connection, name, token, contexts)
            example = held_out_drafts(corpus, connection, name, token)
        finally:
            client.close()
            server.terminate()
            server.wait(timeout=60)
    import mimical

    code = Path(mimical.__file__).parents[1]
    print(f"\n{args.person} ({pick_person(args.person)}), {args.minutes:g} min, code {code}")
    for label, figures in result.items():
        print(f"  {label:<26} {figures}")
    print("\nheld-out exchange:")
    print(f"  friend: {example['friend'][-200:]!r}")
    print(f"  real:   {example['real']!r}")
    for draft in example["drafts"] or []:
        print(f"  draft:  {draft!r}")


if __name__ == "__main__":
    main()
