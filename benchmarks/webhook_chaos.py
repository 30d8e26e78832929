"""The chaos run of `webhook_bench.py`: kill -9 webhook replicas under load (see its docstring).

Run through `webhook_bench.py` (it starts Redis, the model server and the fake Graph API).
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

from webhook_bench import (
    STARTUP_TIMEOUT_SECONDS,
    WARMUP_RATE,
    make_post,
    percentile,
    start_webhook,
)

from tests.fixtures.services import free_port, stop_server, wait_for_port
from tests.webhook.fake_graph import FakeGraphApi

CHAOS_QUEUE = {"prefix": "chaos:", "lease_seconds": 5, "claim_idle_seconds": 3}
CHAOS_BASELINE_SECONDS = 15.0
ECHO = re.compile(r'I don\'t know anyone called "(.*)"\.')


def echo_post(i: int, psid: str, text: str, tag: str) -> dict:
    post = make_post(tag, i, psid, text)
    return {**post, "text": text, "replica": i % 2}


async def deliver(session, urls: list[str], post: dict, deadline: float) -> dict | None:
    """Post until a replica answers 200, switching replica after each failure (as
    Messenger retries a delivery); None if none did before `deadline`."""
    import aiohttp

    attempt = 0
    while time.perf_counter() < deadline:
        url = urls[(post["replica"] + attempt) % len(urls)]
        try:
            async with session.post(
                url,
                data=post["body"],
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": post["signature"],
                },
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                await response.read()
                if response.status == 200:
                    return {**post, "acked_at": time.perf_counter()}
        except (TimeoutError, aiohttp.ClientError):
            pass
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

        tasks, start = [], time.perf_counter()
        for i, post in enumerate(posts):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(post)))
        await asyncio.gather(*tasks)
    return acked


def check_echoes(acked: list[dict], graph: FakeGraphApi) -> dict:
    """Count answers per acknowledged message: once, lost, duplicated, out of order."""
    sent_by_user = defaultdict(list)
    for post in sorted(acked, key=lambda p: p["acked_at"]):
        sent_by_user[post["psid"]].append(post)
    answers_by_user = defaultdict(list)
    for request in graph.requests:
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


def chaos_run(args, env: dict, workdir: Path, graph: FakeGraphApi) -> None:
    """Two replicas, one killed every `--kill-every` s; see the module docstring."""
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}/webhook" for port in ports]
    config = {"MIMICAL_WEBHOOK_WORKERS": 8, "MIMICAL_MESSENGER_QUEUE_OPTIONS": CHAOS_QUEUE}
    logs = [workdir / f"chaos-{i}.log" for i in range(2)]
    replicas = Replicas(
        start_webhook(port, env, log, config) for port, log in zip(ports, logs, strict=True)
    )
    try:
        for port, replica in zip(ports, replicas, strict=True):
            wait_for_port(port, replica, timeout=STARTUP_TIMEOUT_SECONDS)
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
                target=kill_replicas,
                args=(replicas, ports, env, logs, config, args.kill_every, seconds, stop),
            )
            if kills:
                killer.start()
            acked = asyncio.run(chaos_load(urls, posts, args.chaos_rate))
            stop.set()
            if kills:
                killer.join()
            graph.wait_for_texts(before + 2 * len(users) + len(acked), timeout=600)
            time.sleep(2 * CHAOS_QUEUE["claim_idle_seconds"])  # any late duplicate
            results[tag] = {
                **check_echoes(acked, graph),
                "posts": len(posts),
                "kills": replicas.kills if kills else 0,
            }
        print_chaos(args, results)
    finally:
        for replica in replicas:
            stop_server(replica)


class Replicas(list):
    kills = 0


def kill_replicas(replicas, ports, env, logs, config, every, seconds, stop) -> None:
    """SIGKILL replica 0, 1, 0... every `every` s for `seconds`; restart each at once."""
    for round_number in range(int(seconds // every)):
        if stop.wait(every):
            return
        victim = round_number % 2
        os.kill(replicas[victim].pid, signal.SIGKILL)
        replicas[victim].wait()
        replicas.kills += 1
        replicas[victim] = start_webhook(ports[victim], env, logs[victim], config)


def print_chaos(args, results: dict) -> None:
    chaos, calm = results["kill -9"], results["no kills"]
    print(
        f"\nchaos: 2 webhook replicas, kill -9 one every {args.kill_every:g} s for "
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
