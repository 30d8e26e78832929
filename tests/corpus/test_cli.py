"""`mimical sample-export` and `mimical import` from the command line."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

import mimical.cli
from mimical.corpus import cli as corpus_cli
from mimical.samples import cli as samples_cli
from mimical.samples.plan import DEMO_PERSONA_NAME


@pytest.fixture
def mimical_main():
    """`mimical.cli.main` with only this area's commands (others import heavy libraries)."""
    return functools.partial(mimical.cli.main, modules=(corpus_cli, samples_cli))


def test_sample_export_then_import_json(mimical_main, tmp_path, capsys):
    assert (
        mimical_main(
            [
                "sample-export",
                "--format",
                "whatsapp-ios",
                "--out",
                str(tmp_path / "wa"),
                "--max-conversations",
                "15",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "wa")
    out = tmp_path / "corpus.jsonl"
    assert mimical_main(["import", str(tmp_path / "wa"), "-o", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["format"] == "whatsapp-ios" and stats["persona"] == DEMO_PERSONA_NAME
    for key in (
        "threads",
        "messages",
        "persona_messages",
        "conversations",
        "turns",
        "pairs",
        "persona_starts",
        "scrubbed",
        "skipped",
    ):
        assert key in stats
    assert out.is_file()


def test_human_summary_and_options(mimical_main, sample_export, tmp_path, capsys):
    export = sample_export("telegram")
    out = tmp_path / "c.jsonl"
    assert (
        mimical_main(
            [
                "import",
                str(export),
                "-o",
                str(out),
                "--no-scrub",
                "--gap-minutes",
                "600",
                "--me",
                DEMO_PERSONA_NAME,
                "--format",
                "telegram",
                "--workers",
                "2",  # only Messenger DYI threads are shared out: this runs in one process
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert summary.startswith(f"Imported telegram export as {DEMO_PERSONA_NAME}:")
    assert "Scrubbed: nothing." in summary and f"Wrote {out}" in summary
    assert "4111 1111 1111 1111" in out.read_text()  # --no-scrub keeps personal data


def test_bad_input_exits_2_with_one_line(tmp_path):
    code = (
        "import sys, mimical.cli as c, mimical.corpus.cli as corpus_cli;"
        "sys.exit(c.main(sys.argv[1:], modules=(corpus_cli,)))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "import",
            str(tmp_path / "missing"),
            "-o",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr == f"mimical import: error: {tmp_path}/missing: no such file or directory\n"
    )
    assert result.stdout == ""


def test_sample_export_unknown_persona(mimical_main, tmp_path, capsys):
    assert (
        mimical_main(
            ["sample-export", "--format", "telegram", "--out", str(tmp_path), "--persona", "nobody"]
        )
        == 2
    )
    assert "sender 'nobody' has no two-person chats" in capsys.readouterr().err


def test_progress_bar_on_stderr(sample_export, tmp_path, capsys):
    from mimical.corpus.importer import import_exports

    import_exports(sample_export("whatsapp-android"), tmp_path / "c.jsonl", progress=True)
    assert "thread" in capsys.readouterr().err  # tqdm's "N/M [..., thread/s]"
