"""`mimical chat` and `mimical demo --message`: the terminal channels, end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mimical.cli import main
from mimical.dialog.cli import chat_in_terminal
from mimical.dialog.engine import GREETING, PASSWORD_PROMPT, SHOW_ALL_HINT, DialogEngine
from mimical.dialog.sessions import MemorySessionStore, PasswordTries
from mimical.quiet import NATIVE_LOG_LINE, QUIET_ENV
from tests.fixtures.chat import PASSWORD, PRIVATE, PUBLIC


def scripted(lines):
    """A stand-in for input()/getpass(): the next line, then end of input."""
    remaining = list(lines)
    prompts = []

    def read(prompt):
        prompts.append(prompt)
        if not remaining:
            raise EOFError
        return remaining.pop(0)

    return read, prompts


def test_terminal_chat_reads_passwords_without_echo(personas, served_models, chat_settings):
    engine = DialogEngine(
        personas, served_models.client, MemorySessionStore(), PasswordTries(chat_settings)
    )
    read, prompts = scripted([PASSWORD, "hello there", "%restart"])
    written = []
    chat_in_terminal(engine, "me", PRIVATE, read=read, read_secret=read, write=written.append)
    assert written[0] == PASSWORD_PROMPT
    assert written[1].startswith("You are now chatting with Secret Agent")
    assert written[2].strip()  # the persona's reply
    assert written[3:5] == [GREETING, SHOW_ALL_HINT]
    assert prompts[:2] == ["password: ", "you> "]


def test_chat_command_talks_to_the_configured_model_server(
    personas, served_models, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MIMICAL_HOME", str(personas.path.parent))
    monkeypatch.setenv("MIMICAL_MODEL_SERVER", served_models.target)
    (tmp_path / "stdin").write_text("%show all\n")
    with (tmp_path / "stdin").open() as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{GREETING}\n{SHOW_ALL_HINT}\nyou> Public personas:\n")


@pytest.mark.slow
def test_demo_message_trains_once_then_reuses_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIMICAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MIMICAL_MODEL_SERVER", raising=False)
    argv = [
        "demo",
        "--message",
        "hey, how was your weekend?",
        "--max-minutes",
        "0.05",
        "--max-conversations",
        "12",
    ]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert first.out.strip()
    assert "3/3 training" in first.err and "trained model version 1" in first.err

    assert main(argv) == 0
    second = capsys.readouterr()
    assert second.out.strip()
    assert "reusing Alex Chen (model version 1)" in second.err
    assert "training" not in second.err


def run_chat(home, *options: str) -> subprocess.CompletedProcess:
    """`mimical [OPTIONS] chat tiny` in a fresh process, saying hello, with its own model server."""
    env = {**os.environ, "MIMICAL_HOME": str(home)}
    for name in ("MIMICAL_MODEL_SERVER", "TF_CPP_MIN_LOG_LEVEL", QUIET_ENV):
        env.pop(name, None)
    command = [str(Path(sys.executable).with_name("mimical")), *options, "chat", PUBLIC]
    return subprocess.run(
        command, input=b"hello\n", capture_output=True, env=env, timeout=300, check=True
    )


def native_log_lines(stderr: bytes) -> list[bytes]:
    return [line for line in stderr.splitlines(keepends=True) if NATIVE_LOG_LINE.match(line)]


@pytest.mark.slow
def test_tensorflow_start_up_lines_show_only_with_verbose(personas, served_models, chat_settings):
    # The chat's in-process model server loads and runs the model: TensorFlow starts up.
    models = chat_settings.home / "storage" / "models"
    shutil.copytree(served_models.export_dir, models / PUBLIC / "1")

    quiet = run_chat(chat_settings.home)
    assert b"You are now chatting with Tiny" in quiet.stdout
    assert native_log_lines(quiet.stderr) == [] and b"cuInit" not in quiet.stderr

    verbose = run_chat(chat_settings.home, "--verbose")
    assert b"You are now chatting with Tiny" in verbose.stdout
    assert native_log_lines(verbose.stderr)  # what the quiet run hid


def test_asking_whether_tensorflow_is_installed_keeps_its_import_quiet():
    """`importlib.util.find_spec("tensorflow")` (the model connection asks it) must not
    use up the quiet import that comes after it."""
    code = (
        "import importlib.util, sys\n"
        "from mimical.quiet import QuietImportFinder, quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "assert importlib.util.find_spec('tensorflow') is not None\n"
        "print(any(isinstance(f, QuietImportFinder) for f in sys.meta_path))\n"
        "import tensorflow\n"
        "print(any(isinstance(f, QuietImportFinder) for f in sys.meta_path))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", QUIET_ENV)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=env, timeout=300, check=True
    )
    assert result.stdout.split() == [b"True", b"False"]
    assert not [line for line in result.stderr.splitlines() if NATIVE_LOG_LINE.match(line)]
