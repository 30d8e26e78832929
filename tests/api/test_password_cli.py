"""`mimical password` against a live API: the owner changes it, mistakes are one line."""

from __future__ import annotations

import pytest

from mimical.cli import main


@pytest.fixture
def typed(monkeypatch):
    """What the user types at the hidden prompts, in order."""
    answers: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    return answers


def test_the_owner_changes_the_password(live_url, registered, registry, typed, monkeypatch, capsys):
    monkeypatch.setenv("MIMICAL_OWNER_TOKEN", registered("vault", public=False, password="old"))
    typed.extend(["n3w pass", "n3w pass"])
    assert main(["password", "vault", "--backend", live_url]) == 0
    assert "vault: password changed" in capsys.readouterr().out
    assert registry.verify_password("vault", "n3w pass")
    assert not registry.verify_password("vault", "old")


@pytest.mark.parametrize(
    ("token", "answers", "backend", "complaint"),
    [
        ("", [], None, "set MIMICAL_OWNER_TOKEN"),
        ("wrong", ["x", "x"], None, "wrong owner token for 'vault'"),
        ("owner", ["x", "y"], None, "the two passwords differ"),
        ("owner", ["x", "x"], "http://api.example.org", "use https://"),
    ],
)
def test_mistakes_are_one_line(
    live_url, registered, typed, monkeypatch, capsys, token, answers, backend, complaint
):
    owner = registered("vault", public=False, password="old")
    monkeypatch.setenv("MIMICAL_OWNER_TOKEN", owner if token == "owner" else token)
    typed.extend(answers)
    assert main(["password", "vault", "--backend", backend or live_url]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mimical password: error: ") and complaint in error
    assert "Traceback" not in error
