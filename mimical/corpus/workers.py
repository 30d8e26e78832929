"""Turn threads into corpus lines, in worker processes when the caller asks for them.

Used by `mimical.corpus.importer`: `thread_lines(readers, ...)` yields every thread's
lines in the readers' order, whichever process made them. Threads are independent, so
with `workers` > 1 a reader that can read one thread on its own (`read_thread`, the
Messenger DYI reader) has them read, segmented and scrubbed by a pool of forked workers;
the importer only writes. At most a few threads are in flight (`WINDOW_PER_WORKER`
each), so memory stays flat and the output is the same as in one process, byte for byte.
The importer pauses the cycle collector, and so do the workers it forks: they never walk
(and so copy) the memory they share with it.

Workers are opt-in: they pay only for a large export (tens of MB) on idle CPUs; on a
busy machine the extra processes only add overhead. They are forked, so they inherit the
open readers: where `fork` does not exist (Windows), or from a process running other
threads (a fork copies only the calling thread, so locks held by the others would stay
held), the import runs in one process instead.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mimical.corpus.schema import record_lines
from mimical.corpus.scrub import Scrubber
from mimical.corpus.segment import SegmentCounts, corpus_records
from mimical.corpus.sources import Source
from mimical.corpus.threads import ChatThread
from mimical.errors import TooLargeError

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

# Threads handed out ahead per worker: enough to keep each busy, few enough to keep
# memory flat when one thread is much larger than the rest.
WINDOW_PER_WORKER = 2


@dataclass
class ThreadLines:
    """One thread's corpus lines and what making them counted."""

    id: str
    format: str
    participants: set[str]
    lines: bytes  # empty when the thread has no text messages
    counts: SegmentCounts
    scrubbed: Counter
    skipped: Counter = field(default_factory=Counter)  # left out while reading (workers)


@dataclass(frozen=True)
class LineMaker:
    """Segments and scrubs one thread into its lines (the settings of one import)."""

    personas: frozenset[str]
    gap_seconds: float
    scrub: bool

    def __call__(self, thread: ChatThread) -> ThreadLines:
        counts = SegmentCounts()
        scrubber = Scrubber()
        scrub = scrubber.scrub_all if self.scrub else None
        records = corpus_records(thread, self.personas, counts, self.gap_seconds, scrub)
        lines = record_lines(records)
        return ThreadLines(
            thread.id, thread.format, thread.participants, lines, counts, scrubber.counts
        )


def thread_lines(
    readers: list,
    sources: list[Source],
    make: LineMaker,
    skipped: Counter,
    workers: int = 1,
) -> Iterator[ThreadLines]:
    """Every thread of every reader, in order; with `workers` > 1, threads of readers that
    have `read_thread` are made in that many forked processes (which inherit `readers`)."""
    if workers > 1 and not can_fork():
        workers = 1
    pool = None
    try:
        for index, reader in enumerate(readers):
            if workers > 1 and hasattr(reader, "read_thread"):
                if pool is None:
                    # Imported here: a one-process import does without them (2.5 MB).
                    import multiprocessing
                    from concurrent.futures import ProcessPoolExecutor

                    pool = ProcessPoolExecutor(
                        workers,
                        multiprocessing.get_context("fork"),
                        initializer=_start_worker,
                        initargs=(readers, sources, make),
                    )
                jobs = [(index, thread_id) for thread_id in reader.thread_ids()]
                yield from _in_order(pool, jobs, WINDOW_PER_WORKER * workers)
            else:
                for thread in reader.threads(skipped):
                    yield make(thread)
                    del thread  # not kept alive while the next one is read
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def can_fork() -> bool:
    """Whether worker processes can be forked from here (see the module docstring)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _in_order(pool: ProcessPoolExecutor, jobs: list, window: int) -> Iterator[ThreadLines]:
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.submit(_read_thread, job))
        if len(pending) >= window:
            yield _result(pending.popleft())
    while pending:
        yield _result(pending.popleft())


def _result(future: Future) -> ThreadLines:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:  # a worker was killed, most likely by the kernel for memory
        raise TooLargeError(
            "a process reading the export died (out of memory?); try again with fewer workers"
        ) from None


# What a worker inherits from the importer: the readers and how to make lines.
_inherited: tuple[list, LineMaker] | None = None


def _start_worker(readers: list, sources: list[Source], make: LineMaker) -> None:
    global _inherited
    for source in sources:
        source.reopen()
    _inherited = readers, make


def _read_thread(job: tuple[int, str]) -> ThreadLines:
    reader_index, key = job
    readers, make = _inherited
    skipped: Counter = Counter()
    result = make(readers[reader_index].read_thread(key, skipped))
    result.skipped = skipped
    return result
