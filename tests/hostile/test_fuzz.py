"""Every export reader, fuzzed with hypothesis in a child process with capped memory."""

from __future__ import annotations

import resource
import subprocess
import sys

from tests.hostile import cases

# Address space for the child: the importer needs ~300 MB; the old upload check took
# 1 GB at 20,000 levels of nesting, which the fuzzer tries.
MEMORY_CAP_BYTES = 1024**3
EXAMPLES_PER_READER = 40


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def run_capped(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=_cap_memory,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_reader_refuses_or_reads_any_input_in_bounded_memory():
    result = run_capped("-m", "tests.hostile.fuzz_readers", str(EXAMPLES_PER_READER))
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_memory_cap_catches_what_the_old_upload_check_did():
    """The cap is real: ijson's prefixed parse of 50,000 levels needs more than it allows."""
    script = (
        "import io, ijson, sys\n"
        f"data = {cases.deep_nesting(50_000)!r}\n"
        "try:\n"
        "    for _ in ijson.parse(io.BytesIO(data)): pass\n"
        "except MemoryError:\n"
        "    sys.exit(3)\n"
    )
    assert run_capped("-c", script).returncode == 3
