"""Evaluation numbers and the HTML report (rendered in Chromium)."""

from __future__ import annotations

import pytest

from mimical.errors import InputError
from mimical.model.evaluate import evaluate_model, style
from mimical.model.report import FIGURES, write_report
from tests.fixtures.browser import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def evaluation(tiny_model):
    return evaluate_model(tiny_model.export_dir, tiny_model.corpus, samples=30)


def test_evaluation_compares_with_the_5gram_baseline(evaluation, tiny_model):
    assert evaluation["test_replies"] == tiny_model.metrics["test_replies"]
    assert evaluation["exchanges"] == 30 and evaluation["seeds"] == [0, 1, 2]
    assert 0 < evaluation["baseline_5gram_bits_per_char"] < evaluation["bits_per_char"] < 8
    assert evaluation["style"]["model"]["replies"] == 30
    assert {"context", "real", "model", "retrieval"} <= set(evaluation["samples"][0])
    assert len(evaluation["samples"]) == 10


def test_evaluation_and_training_report_how_much_the_model_reads_the_context(
    evaluation, tiny_model
):
    use = evaluation["context_use"]
    assert use["low"] <= use["bits_per_reply"] <= use["high"] and use["replies"] > 10
    assert use["bits_per_char"] > 0 and use["shuffled_bits_per_char"] > 0
    trained = tiny_model.metrics["validation_context_use"]
    assert trained["low"] <= trained["bits_per_reply"] <= trained["high"]


def test_context_use_is_zero_when_every_context_is_the_same(tiny_model):
    """The shuffled contexts are other pairs' (none stays in place): with one context for
    all, the true one saves nothing; openers, with nothing to read, are left out."""
    from mimical.corpus.schema import Pair
    from mimical.model.evaluate import context_use
    from mimical.model.export import load_export

    replies = ["hey", "what's up", "not much you?", "ok!", "see you later"]
    pairs = [Pair("t", i, "\x1ehow are you", r, False) for i, r in enumerate(replies)]
    pairs.append(Pair("t", 9, "", "hello", True))
    use = context_use(load_export(tiny_model.export_dir), pairs)
    assert use["replies"] == 5
    assert use["bits_per_reply"] == pytest.approx(0.0, abs=1e-3)
    assert context_use(load_export(tiny_model.export_dir), pairs[:1])["bits_per_reply"] is None


def test_every_figure_has_a_mean_and_an_interval_over_three_seeds(evaluation):
    for system in ("model", "retrieval", "random", "echo", "person"):
        for name, figure in evaluation["systems"][system].items():
            if figure["mean"] is not None:
                assert figure["low"] <= figure["mean"] <= figure["high"], (system, name)
                assert figure["seeds"] == 3


def test_evaluation_says_whether_replies_make_sense(evaluation):
    systems = evaluation["systems"]
    model, person = systems["model"], systems["person"]
    # The tiny model writes gibberish: easy to tell apart (some of its replies are the
    # person's own, retrieved), many non-words.
    assert model["two_sample_accuracy"]["mean"] > 0.6
    assert person["non_word_rate"]["mean"] < 0.1 < model["non_word_rate"]["mean"]
    assert model["relevance"]["mean"] < 0.5
    assert person["relevance"]["mean"] == pytest.approx(1.0)
    assert person["distinct_2"]["mean"] == pytest.approx(
        evaluation["style"]["persona"]["distinct_2"], abs=1e-3
    )


def test_the_baselines_are_what_they_claim(evaluation):
    systems = evaluation["systems"]
    # An echo of the friend is no answer: never above a random reply of the person.
    assert systems["echo"]["relevance"]["mean"] <= systems["random"]["relevance"]["mean"]
    # Retrieval and random replies are the person's own training replies (but for the
    # few longer than the 200-character cap).
    assert systems["retrieval"]["exact_copy_rate"]["mean"] >= 0.9
    assert systems["random"]["exact_copy_rate"]["mean"] >= 0.9
    # The person against themselves is the two-sample floor.
    assert systems["person"]["two_sample_accuracy"]["mean"] < 0.7


def test_style_statistics():
    stats = style(["Hello there!", "lol 😀", "what?"])
    assert stats["emoji_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["capitalised_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["question_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["distinct_1"] == 1.0


def test_report_renders_in_a_browser(evaluation, tmp_path):
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    write_report(evaluation, report)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(report.as_uri())
        assert page.locator("img").evaluate("img => img.naturalWidth") > 100
        assert page.locator("h2", has_text="Sample exchanges").count() == 1
        sense_table = page.locator("h2", has_text="make sense").locator("xpath=following::table[1]")
        assert sense_table.locator("tr").count() == len(FIGURES) + 1
        assert "two-sample accuracy" in sense_table.inner_text()
        samples = page.locator("h2", has_text="Sample exchanges").locator(
            "xpath=following::table[1]"
        )
        assert samples.locator("tr").count() == len(evaluation["samples"]) + 1
        browser.close()


def test_evaluate_needs_the_training_corpus(tiny_model, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(tiny_model.corpus.read_text().replace('"thread":"', '"thread":"x'))
    with pytest.raises(InputError, match="test conversations"):
        evaluate_model(tiny_model.export_dir, other)


def test_cli_evaluate_prints_the_sense_measures(tiny_model, capsys):
    from mimical.cli import main

    argv = ["evaluate", str(tiny_model.export_dir), str(tiny_model.corpus), "--samples", "20"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "two-sample accuracy" in out and "non-word rate" in out and "context relevance" in out


def test_one_sample_leaves_the_sense_figures_empty_not_broken(tiny_model, tmp_path, capsys):
    from mimical.cli import main

    argv = [
        "evaluate",
        str(tiny_model.export_dir),
        str(tiny_model.corpus),
        "--samples",
        "1",
        "--report",
        str(tmp_path / "r.html"),
    ]
    assert main(argv) == 0
    assert "two-sample accuracy:   model n/a" in capsys.readouterr().out
    assert "n/a" in (tmp_path / "r.html").read_text()


def test_an_export_from_before_the_validation_split_still_evaluates(tiny_model, tmp_path):
    """Round two's exports recorded one `held_out` part (it chose their checkpoint too)."""
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_model.export_dir, old)
    split = json.loads((old / "assets.extra" / "split.json").read_text())
    (old / "assets.extra" / "split.json").write_text(
        json.dumps({"seed": 0, "held_out": split["test"]})
    )
    result = evaluate_model(old, tiny_model.corpus, samples=10, seeds=(0,), baselines_too=False)
    assert result["exchanges"] == 10 and set(result["systems"]) == {"model"}
