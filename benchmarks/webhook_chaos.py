"""The chaos run of `webhook_bench.py`: kill -9 webhook replicas under load (see its docstring).

Run through `webhook_bench.py` (it starts Redis, the model server and the fake Graph API);
what both runs share is in `webhook_harness.py`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from webhook_harness import (
    PERSONA,
    STARTUP_TIMEOUT_SECONDS,
    WARMUP_RATE,
    EchoSender,
    make_post,
    open_loop,
    percentile,
    post_event,
    sign,
    start_responder,
    start_webhook,
)

from mimical.testing.fake_graph import FakeGraphApi
from mimical.testing.servers import free_port, stop_server, wait_for_port

# A killed responder's users are taken over after this long (the default is 15 s).
TAKEOVER_SECONDS = 3.0
CHAOS_BASELINE_SECONDS = 15.0
COLD_STARTS = 3
ECHO = re.compile(r'I don\'t know anyone called "(.*)"\.')


def echo_post(i: int, psid: str, text: str, tag: str) -> dict:
    post = make_post(tag, i, psid, text)
    return {**post, "text": text, "replica": i % 2}


async def deliver(session, urls: list[str], post: dict, deadline: float) -> dict | None:
    """Post until a replica answers 200, switching replica after each failure (as
    Messenger retries a delivery); None if none did before `deadline`."""
    attempt = 0
    while time.perf_counter() < deadline:
        url = urls[(post["replica"] + attempt) % len(urls)]
        if await post_event(session, url, post, timeout=10) == 200:
            return {**post, "acked_at": time.perf_counter()}
        attempt += 1
        await asyncio.sleep(0.05)
    return None


async def chaos_load(urls: list[str], posts: list[dict], rate: float) -> list[dict]:
    """Open loop at `rate`, but each user's message waits for their previous ack."""
    import aiohttp

    acked, locks = [], defaultdict(asyncio.Lock)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(post):
            async with locks[post["psid"]]:
                post = {**post, "sent": time.perf_counter()}
                result = await deliver(session, urls, post, time.perf_counter() + 60)
            if result is not None:
                acked.append(result)

        await open_loop(posts, rate, one)
    return acked


def check_echoes(acked: list[dict], users: list[str], graph: FakeGraphApi) -> dict:
    """Count answers per acknowledged message of `users`: once, lost, duplicated, out of
    order, or an answer to a message never acknowledged."""
    sent_by_user = defaultdict(list)
    for post in sorted(acked, key=lambda p: p["acked_at"]):
        sent_by_user[post["psid"]].append(post)
    answers_by_user, wanted = defaultdict(list), set(users)
    for request in graph.requests:
        if request["recipient"]["id"] not in wanted:
            continue  # another phase's users
        match = "message" in request and ECHO.fullmatch(
            request["message"]["text"].split("\n")[0].split(" Type ")[0]
        )
        if match:
            answers_by_user[request["recipient"]["id"]].append((match[1], request))
    counts = {
        "acknowledged": len(acked),
        "answered once": 0,
        "lost": 0,
        "duplicated": 0,
        "out of order (users)": 0,
        "answers not acknowledged": 0,
    }
    end_to_end = []
    for psid in set(sent_by_user) | set(answers_by_user):
        sent = [post["text"] for post in sent_by_user[psid]]
        answered = [text for text, _ in answers_by_user[psid]]
        for text in set(sent) | set(answered):
            times = answered.count(text)
            if text not in sent:
                counts["answers not acknowledged"] += 1
            elif times == 0:
                counts["lost"] += 1
            else:
                counts["answered once" if times == 1 else "duplicated"] += 1
        first_answers = list(dict.fromkeys(t for t in answered if t in sent))
        if first_answers != [t for t in sent if t in first_answers]:
            counts["out of order (users)"] += 1
        answer_at = {text: request["received_at"] for text, request in answers_by_user[psid]}
        end_to_end += [
            answer_at[p["text"]] - p["sent"] for p in sent_by_user[psid] if p["text"] in answer_at
        ]
    return {**counts, "end_to_end": end_to_end}


def post_once(url: str, post: dict) -> None:
    """POST one signed event; it must be acknowledged."""
    import urllib.request

    request = urllib.request.Request(
        url,
        data=post["body"],
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(post["body"])},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def responder_cold_starts(url: str, env: dict, workdir: Path, graph: FakeGraphApi, nice: int):
    """Seconds from starting `mimical messenger respond` (no responder running) to its
    first answer and to its first model reply, with a new user's persona pick and chat
    message waiting in Redis: what a killed responder's replacement costs before it
    answers anyone. `COLD_STARTS` times; the median of each."""
    first, model = [], []
    for i in range(COLD_STARTS):
        answers = graph.text_count
        post_once(url, make_post("cold", 2 * i, f"cold-user-{i}", PERSONA))
        post_once(url, make_post("cold", 2 * i + 1, f"cold-user-{i}", "hey, how are you?"))
        started = time.perf_counter()
        responder = start_responder(env, workdir / "cold-start.log", nice)
        try:
            for times, count in ((first, answers + 1), (model, answers + 2)):
                if not graph.wait_for_texts(count, timeout=STARTUP_TIMEOUT_SECONDS):
                    raise SystemExit("a cold responder did not answer")
                times.append(time.perf_counter() - started)
        finally:
            stop_server(responder)
    median = sorted(first)[COLD_STARTS // 2], sorted(model)[COLD_STARTS // 2]
    print(
        f"\nresponder cold start (process start -> answer, median of {COLD_STARTS}): first "
        f"answer {median[0]:.2f} s, first model reply {median[1]:.2f} s",
        flush=True,
    )


def chaos_run(args, env: dict, workdir: Path, graph: FakeGraphApi) -> None:
    """Two replicas, one killed every `--kill-every` s; see the module docstring."""
    # The chaos run's queue: a Redis database of its own.
    env = {**env, "REDIS_URL": env["REDIS_URL"].rsplit("/", 1)[0] + "/1"}
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}/webhook" for port in ports]
    graph.echo = EchoSender(urls)
    replicas = [
        Replica(port, env, workdir / f"chaos-{i}", args.answer_nice) for i, port in enumerate(ports)
    ]
    try:
        for replica in replicas:
            replica.wait_until_listening()
        results = {}
        for tag, seconds, kills in (
            ("no kills", CHAOS_BASELINE_SECONDS, False),
            ("kill -9", args.chaos_seconds, True),
        ):
            users = [f"{tag[:4]}-user-{u}" for u in range(args.users)]
            greet = [echo_post(-1 - u, psid, "hi", tag[:4]) for u, psid in enumerate(users)]
            before = len(graph.texts())
            asyncio.run(chaos_load(urls, greet, WARMUP_RATE))
            graph.wait_for_texts(before + 2 * len(users), timeout=600)
            posts = [
                echo_post(i, users[i % len(users)], f"{tag[:4]} message {i}", tag[:4])
                for i in range(int(args.chaos_rate * seconds))
            ]
            print(f"chaos, {tag}: {len(posts)} posts at {args.chaos_rate:g}/s...", file=sys.stderr)
            stop = threading.Event()
            killer = threading.Thread(
                target=kill_replicas, args=(replicas, args.kill_every, seconds, stop)
            )
            if kills:
                killer.start()
            acked = asyncio.run(chaos_load(urls, posts, args.chaos_rate))
            stop.set()
            if kills:
                killer.join()
            # Whatever is missing after this is lost (counted below), not late.
            graph.wait_for_texts(before + 2 * len(users) + len(acked), timeout=180)
            time.sleep(2 * TAKEOVER_SECONDS)  # any late duplicate
            results[tag] = {
                **check_echoes(acked, users, graph),
                "posts": len(posts),
                "kills": sum(r.kills for r in replicas) if kills else 0,
            }
        print_chaos(args, results)
    finally:
        for replica in replicas:
            replica.stop()


class Replica:
    """A pod's worth: a webhook process that acknowledges and a responder that answers."""

    def __init__(self, port: int, env: dict, log_prefix: Path, nice: int):
        self.port, self.env, self.log_prefix, self.nice = port, env, log_prefix, nice
        self.kills = 0
        self._start()

    def _start(self) -> None:
        self.webhook = start_webhook(self.port, self.env, Path(f"{self.log_prefix}.webhook.log"), 0)
        self.responder = start_responder(
            self.env,
            Path(f"{self.log_prefix}.responder.log"),
            self.nice,
            f"--takeover-seconds={TAKEOVER_SECONDS:g}",
        )

    def wait_until_listening(self) -> None:
        wait_for_port(self.port, self.webhook, timeout=STARTUP_TIMEOUT_SECONDS)

    def kill_and_restart(self) -> None:
        """SIGKILL both processes (and gunicorn's worker), as when a pod dies; start anew."""
        for process in (self.webhook, self.responder):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.kills += 1
        self._start()

    def stop(self) -> None:
        for process in (self.webhook, self.responder):
            stop_server(process)


def kill_replicas(replicas: list[Replica], every: float, seconds: float, stop) -> None:
    """SIGKILL replica 0, 1, 0... every `every` s for `seconds`; restart each at once."""
    for round_number in range(int(seconds // every)):
        if stop.wait(every):
            return
        replicas[round_number % 2].kill_and_restart()


def print_chaos(args, results: dict) -> None:
    chaos, calm = results["kill -9"], results["no kills"]
    print(
        f"\nchaos: 2 replicas (webhook + responder), kill -9 one every {args.kill_every:g} s for "
        f"{args.chaos_seconds:g} s at {args.chaos_rate:g} req/s ({chaos['kills']} kills); "
        f"baseline: the same load for {CHAOS_BASELINE_SECONDS:g} s without kills"
    )
    print(f"{'metric':<30}{'kill -9':>10}{'no kills':>10}")
    for name in (
        "posts",
        "acknowledged",
        "answered once",
        "lost",
        "duplicated",
        "out of order (users)",
        "answers not acknowledged",
    ):
        print(f"{name:<30}{chaos[name]:>10}{calm[name]:>10}")
    for name, fraction in (
        ("end-to-end p50 (ms)", 0.5),
        ("end-to-end p99 (ms)", 0.99),
        ("end-to-end max (ms)", 1.0),
    ):
        print(
            f"{name:<30}{percentile(chaos['end_to_end'], fraction) * 1000:>10.0f}"
            f"{percentile(calm['end_to_end'], fraction) * 1000:>10.0f}"
        )
    exact = all(
        r["acknowledged"] == r["answered once"] and not r["out of order (users)"]
        for r in results.values()
    )
    print(
        "target: every acknowledged message answered exactly once, in order per user: "
        + ("meets" if exact else "MISSES")
    )
