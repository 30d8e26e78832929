"""The API's and chat's limits are settings: read from `MIMICAL_*_RATE_LIMIT` like every
other setting and checked at start-up (tests/api/test_api.py checks they are enforced)."""

from __future__ import annotations

import pytest

from mimical.cli import main
from mimical.config import Settings
from mimical.errors import InputError


def test_limits_come_from_the_environment():
    settings = Settings.from_env(
        {"MIMICAL_BUILD_RATE_LIMIT": "2 per hour", "MIMICAL_UPLOADS_AT_ONCE": "3"}
    )
    assert settings.build_rate_limit == "2 per hour"
    assert settings.uploads_at_once == 3
    assert Settings.from_env({}).password_rate_limit == "5 per 15 minutes"


@pytest.mark.parametrize("raw", ["lots", "-1/hour", "5 per fortnight"])
def test_a_limit_that_is_no_limit_is_refused_naming_its_variable(raw):
    with pytest.raises(InputError, match=r"MIMICAL_PASSWORD_RATE_LIMIT=.* is not a rate limit"):
        Settings.from_env({"MIMICAL_PASSWORD_RATE_LIMIT": raw})


def test_the_cli_says_which_limit_is_wrong_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MIMICAL_HOME", str(tmp_path))
    monkeypatch.setenv("MIMICAL_CHAT_RATE_LIMIT", "fast")
    assert main(["serve", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mimical serve: error: MIMICAL_CHAT_RATE_LIMIT='fast'")
    assert "Traceback" not in error and len(error.splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "raw", "complaint"),
    [
        ("MIMICAL_MESSENGER_WORKERS", "eight", "is not a whole number"),
        ("MIMICAL_TRAINING_EPOCHS", "1.5", "is not a whole number"),
        ("MIMICAL_TRAINING_MAX_MINUTES", "soon", "is not a number"),
        ("MIMICAL_MIRROR_INTERVAL", "15s", "is not a number"),
        ("MIMICAL_MESSENGER_DISCLOSURE", "maybe", "is not a yes or no"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_variable(variable, raw, complaint):
    with pytest.raises(InputError, match=f"{variable}='{raw}' {complaint}"):
        Settings.from_env({variable: raw})


def test_every_process_reads_its_typed_settings_from_the_environment(tmp_path):
    settings = Settings.from_env(
        {
            "MIMICAL_TRAINING_MAX_MINUTES": "2.5",
            "MIMICAL_TRAINING_EPOCHS": "3",
            "MIMICAL_MIRROR_DIR": str(tmp_path),
            "MIMICAL_MESSENGER_DISCLOSURE": "off",
        }
    )
    assert (settings.training_max_minutes, settings.training_epochs) == (2.5, 3)
    assert settings.mirror_dir == tmp_path and settings.messenger_disclosure is False
    assert Settings.from_env({}).training_epochs is None
