"""Keep TensorFlow's C++ start-up log lines off a user's terminal.

Loading TensorFlow prints lines like `I0000 … cudart_stub.cc:31] Could not find
cuda drivers` and `E0000 … failed call to cuInit: INTERNAL: CUDA error`, which
read like failures on any machine without a GPU. `TF_CPP_MIN_LOG_LEVEL=3` hides
the ones logged once TensorFlow's logging is set up, but not those logged while
its libraries load ("All log messages before absl::InitializeLog() is called
are written to STDERR"): those are written straight to file descriptor 2. So
`quiet_tensorflow()` also catches what the import of `tensorflow` writes to
fd 2, drops the native log lines and passes everything else on.

The CLI calls `quiet_tensorflow()` unless `--verbose`. It marks the environment,
so processes it starts (build workers are spawned, and import `mimical` afresh)
are quiet too.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from contextlib import contextmanager

# Set by `quiet_tensorflow()`, inherited by child processes: `mimical/__init__.py`
# calls `quiet_tensorflow()` again in a process that starts with it set.
QUIET_ENV = "MIMICAL_QUIET_TENSORFLOW"

# What TensorFlow's native libraries write while loading: absl's notice that logging
# is not set up yet, glog-style lines ("I0000 00:00:1795790228.404609    8598
# cudart_stub.cc:31] ..."), and the continuation line of the CPU feature notice.
NATIVE_LOG_LINE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\]"
    rb"|To enable the following instructions:)"
)


def quiet_tensorflow() -> None:
    """Hide TensorFlow's native log lines in this process and the ones it starts."""
    os.environ[QUIET_ENV] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return  # too late: it printed its start-up lines and read its log level
    if not any(isinstance(finder, QuietImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImportFinder())


class QuietImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first `import tensorflow` in `_native_stderr_filtered`.

    It stays in place until that import runs: a mere `importlib.util.find_spec`
    ("is TensorFlow installed?") asks it too, and must not use it up.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        index = sys.meta_path.index(self)
        sys.meta_path.remove(self)  # the finders below find the real spec
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(index, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, finder: QuietImportFinder):
        self.loader = loader
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)  # one import only
        try:
            with _native_stderr_filtered():
                self.loader.exec_module(module)
        finally:
            # Leave no trace: the module looks imported by its own loader.
            module.__spec__.loader = module.__loader__ = self.loader


@contextmanager
def _native_stderr_filtered():
    """Send fd 2 to a file meanwhile, then copy all but native log lines to the real one.

    Other threads' stderr output in that time is only delayed, not lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if not NATIVE_LOG_LINE.match(line))
            while kept:
                kept = kept[os.write(2, kept) :]
