"""Import speed and memory on a large Messenger export.

    .venv/bin/python benchmarks/import_bench.py [--messages 1000000] [--small 250000]

Builds two Messenger DYI exports (Facebook's layout, mojibake escapes, 10,000-message
pages, newest first) by cycling through the chitchat chats, then for each size:

- reads every page with a bare `json.load` (the same-run baseline: the least any
  importer must do) and times `import_exports` on the same files, in one process (the
  default) and with one worker process per CPU (`workers=N`, opt-in), best of three runs
  each, alternating (the machine may be shared; the CPU-time ratio of the one-process
  import says more than wall time when it is busy);
- runs both imports again in fresh processes to measure their peak RSS (and that of
  the largest worker).

Goals: import speed >= 0.2x the bare `json.load` speed in one process; peak RSS flat
across sizes (threads are streamed one at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_MESSAGES = 12_000  # one full 10,000-message page and a partial one per thread
PAGE_SIZE = 10_000
PERSONA = "Bench Persona"
REPEATS = 3


def build_export(root: Path, total: int) -> Path:
    """A Messenger export of `total` messages, every thread between PERSONA and one friend."""
    from mimical.samples.plan import load_chats
    from mimical.samples.writers import mojibake_json

    chats = load_chats()
    profile = root / "personal_information/profile_information/profile_information.json"
    profile.parent.mkdir(parents=True)
    profile.write_bytes(mojibake_json({"profile_v2": {"name": {"full_name": PERSONA}}}))
    written = thread_index = chat_index = 0
    offset = 0.0
    while written < total:
        friend = f"Friend Nümber {thread_index}"
        messages = []
        while len(messages) < min(THREAD_MESSAGES, total - written):
            chat = chats[chat_index % len(chats)]
            chat_index += 1
            first = chat["messages"][0][0]
            for sender, seconds, text in chat["messages"]:
                messages.append(
                    {
                        "sender_name": PERSONA if sender == first else friend,
                        "timestamp_ms": int((seconds + offset) * 1000),
                        "content": text,
                        "is_geoblocked_for_viewer": False,
                    }
                )
            offset += 86400
        messages = messages[: total - written]
        directory = root / f"your_facebook_activity/messages/inbox/friend{thread_index}_1"
        directory.mkdir(parents=True)
        newest_first = messages[::-1]
        for number, start in enumerate(range(0, len(newest_first), PAGE_SIZE), 1):
            page = {
                "participants": [{"name": friend}, {"name": PERSONA}],
                "messages": newest_first[start : start + PAGE_SIZE],
                "title": friend,
                "is_still_participant": True,
                "thread_path": f"inbox/friend{thread_index}_1",
                "magic_words": [],
            }
            (directory / f"message_{number}.json").write_bytes(mojibake_json(page))
        written += len(messages)
        thread_index += 1
    return root


def time_json_load(root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of a bare `json.load` of every page."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in sorted(root.rglob("message_*.json")):
        with path.open(encoding="utf-8") as handle:
            json.load(handle)
    return time.perf_counter() - start, time.process_time() - cpu


def time_import(root: Path, output: Path, workers: int) -> tuple[float, float, dict]:
    """Wall and CPU seconds (of this process: not the workers') of an import, its stats."""
    from mimical.corpus.importer import import_exports

    start, cpu = time.perf_counter(), time.process_time()
    stats = import_exports(root, output, workers=workers)
    return time.perf_counter() - start, time.process_time() - cpu, stats


def peak_rss_mb(root: Path, output: Path, workers: int) -> tuple[float, float]:
    """Peak RSS of an import in a fresh process, and of its largest worker (or 0)."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent process.
    # The workers are forked from the importer itself, so theirs is counted from there.
    code = (
        "import sys, resource; from mimical.corpus.importer import import_exports;"
        "import_exports(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]));"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')),"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(root), str(output), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    main, worker = result.stdout.split()
    return int(main) / 1024, int(worker) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=250_000)
    parser.add_argument("--keep", action="store_true", help="keep the exports")
    args = parser.parse_args()
    workers = max(2, min(os.cpu_count() or 1, 4))
    workdir = Path(tempfile.mkdtemp(prefix="mimical-import-bench-"))
    rows = []
    try:
        for total in (args.small, args.messages):
            started = time.perf_counter()
            root = build_export(workdir / f"export-{total}", total)
            built = time.perf_counter() - started
            size = sum(p.stat().st_size for p in root.rglob("*.json")) / 1e6
            output = workdir / f"corpus-{total}.jsonl"
            # Best of REPEATS, alternating, so all see the same machine load.
            baseline = one_process = parallel = float("inf")
            baseline_cpu = one_process_cpu = float("inf")
            for _ in range(REPEATS):
                elapsed, cpu = time_json_load(root)
                baseline, baseline_cpu = min(baseline, elapsed), min(baseline_cpu, cpu)
                elapsed, cpu, stats = time_import(root, output, workers=1)
                one_process, one_process_cpu = min(one_process, elapsed), min(one_process_cpu, cpu)
                elapsed, _, stats = time_import(root, output, workers=workers)
                parallel = min(parallel, elapsed)
            assert stats["messages"] == total, stats
            rss_mb, _ = peak_rss_mb(root, output, 1)
            parallel_rss_mb, worker_rss_mb = peak_rss_mb(root, output, workers)
            rows.append(
                {
                    "messages": total,
                    "threads": stats["threads"],
                    "size_mb": size,
                    "build_s": built,
                    "json_load_s": baseline,
                    "one_process_s": one_process,
                    "cpu_ratio": baseline_cpu / one_process_cpu,
                    "parallel_s": parallel,
                    "rss_mb": rss_mb,
                    "parallel_rss_mb": parallel_rss_mb,
                    "worker_rss_mb": worker_rss_mb,
                }
            )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("Messenger export import (json.load baseline measured in the same run)\n")
    print(
        "| messages | threads | JSON MB | json.load msg/s | import msg/s, 1 process | ratio"
        f" | ratio of CPU times | peak RSS MB | import msg/s, {workers} workers | ratio"
        " | peak RSS MB (largest worker) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        json_rate = row["messages"] / row["json_load_s"]
        one_rate = row["messages"] / row["one_process_s"]
        parallel_rate = row["messages"] / row["parallel_s"]
        print(
            f"| {row['messages']:,} | {row['threads']} | {row['size_mb']:.0f} | {json_rate:,.0f}"
            f" | {one_rate:,.0f} | {one_rate / json_rate:.2f}x | {row['cpu_ratio']:.2f}x"
            f" | {row['rss_mb']:.0f}"
            f" | {parallel_rate:,.0f} | {parallel_rate / json_rate:.2f}x"
            f" | {row['parallel_rss_mb']:.0f} ({row['worker_rss_mb']:.0f}) |"
        )
    growth = rows[-1]["rss_mb"] / rows[0]["rss_mb"]
    parallel_growth = rows[-1]["parallel_rss_mb"] / rows[0]["parallel_rss_mb"]
    print(
        f"\npeak RSS growth {rows[0]['messages']:,} -> {rows[-1]['messages']:,} messages:"
        f" {growth:.2f}x in one process, {parallel_growth:.2f}x with workers (goal: ~1x);"
        " speed goal: ratio >= 0.2x in one process (by CPU time on a busy machine)"
    )


if __name__ == "__main__":
    main()
