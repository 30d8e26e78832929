"""`mimical train` and `mimical evaluate` through the real command line entry point."""

from __future__ import annotations

import json

from mimical.cli import main


def test_cli_evaluate_prints_json(tiny_model, tmp_path, capsys):
    report = tmp_path / "r.html"
    argv = [
        "evaluate",
        str(tiny_model.model_base / tiny_model.name),
        str(tiny_model.corpus),
        "--json",
        "--samples",
        "5",
        "--report",
        str(report),
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["style"]["model"]["replies"] == 5 and report.is_file()


def test_cli_train_errors_are_one_line_with_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["train", str(empty), "-o", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["train", str(empty), "-o", str(tmp_path), "--name", "../x"]) == 2
    assert main(["train", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path)]) == 2


def test_cli_train_exports_a_version(small_corpus, tmp_path, capsys):
    argv = [
        "train",
        str(small_corpus),
        "-o",
        str(tmp_path),
        "--name",
        "cli",
        "--size",
        "tiny",
        "--epochs",
        "1",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["version"] == 1 and (tmp_path / "cli" / "1" / "saved_model.pb").is_file()
