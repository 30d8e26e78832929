"""The README's commands exist: every `mimical ...` invocation in its bash blocks names
sub-commands and `--flags` that the real parser (`mimical.cli.build_parser`) accepts, and
every `make TARGET` it names is a target of the Makefile. Nothing is run: the parser is
built and walked, so a renamed flag or dropped command fails here, not for a reader."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mimical.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)
INLINE_MAKE = re.compile(r"`make ([A-Za-z0-9_.-]+)`")


def bash_lines(text: str) -> list[str]:
    """The commands of the bash blocks: continuation lines joined, output and blank
    lines (and whole-line comments) left out."""
    lines = []
    for block in BASH_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def words(command: str) -> list[str]:
    """`command` split as the shell would (comments dropped), placeholders such as
    `[NAME]` kept as words."""
    return shlex.split(command, comments=True)


def mimical_invocations(text: str) -> list[tuple[str, list[str], list[str]]]:
    """(line, the words after `mimical`, `--flags` named in the line's comment) for each
    `mimical` or `.venv/bin/mimical` command, also one after `VAR=value` or in a pipe."""
    found = []
    for line in bash_lines(text):
        code, _, comment = line.partition(" #")
        for part in re.split(r"&&|\|\|?|;", code):
            tokens = words(part)
            while tokens and ENV_ASSIGNMENT.match(tokens[0]):
                tokens.pop(0)
            if tokens and Path(tokens[0]).name == "mimical":
                found.append((line, tokens[1:], re.findall(r"(?<!\w)--[a-z][a-z0-9-]*", comment)))
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(
        (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {}
    )


def unknown_words(args: list[str], comment_flags: list[str]) -> list[str]:
    """The sub-commands and flags of one invocation that the parser does not know."""
    parser, unknown = build_parser(), []
    flags = [*comment_flags]
    for word in args:
        if word.startswith("--"):
            flags.append(word.split("=", 1)[0])
        elif not word.startswith("-") and subcommands(parser):
            if word not in subcommands(parser):
                return [f"sub-command {word!r}"]
            parser = subcommands(parser)[word]
    if subcommands(parser):
        unknown.append("a missing sub-command")
    known = {name for action in parser._actions for name in action.option_strings}
    known |= {name for action in build_parser()._actions for name in action.option_strings}
    return unknown + [flag for flag in flags if flag not in known]


README_INVOCATIONS = mimical_invocations(README.read_text())


def test_the_readme_shows_mimical_commands():
    assert len(README_INVOCATIONS) >= 10, "the README's bash blocks were not read"


@pytest.mark.parametrize(
    ("line", "args", "comment_flags"), README_INVOCATIONS, ids=[i[0] for i in README_INVOCATIONS]
)
def test_readme_command_is_accepted_by_the_parser(line, args, comment_flags):
    assert unknown_words(args, comment_flags) == [], line


def test_make_targets_named_in_the_readme_exist():
    text = README.read_text()
    named = set(INLINE_MAKE.findall(text))
    for line in bash_lines(text):
        tokens = words(line)
        if tokens[:1] == ["make"]:
            named.update(t for t in tokens[1:] if not t.startswith("-"))
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text()))
    assert named, "the README names no make target"
    assert sorted(named - targets) == []


def test_the_check_reports_what_the_parser_refuses():
    """The checker itself: a made-up flag and sub-command are caught."""
    assert unknown_words(["train", "--no-such-flag"], []) == ["--no-such-flag"]
    assert unknown_words(["serve"], ["--port", "--nope"]) == ["--nope"]
    assert unknown_words(["messenger"], []) == ["a missing sub-command"]
    assert unknown_words(["frobnicate"], []) == ["sub-command 'frobnicate'"]
