"""The evaluation as one self-contained HTML page (the curve plot is an embedded PNG).

mimical evaluate MODEL_DIR corpus.jsonl --report report.html
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from mimical.atomic import atomic_write

STYLE_ROWS = [
    ("replies", "replies sampled"),
    ("length_mean", "length, mean chars"),
    ("length_median", "length, median chars"),
    ("length_p90", "length, 90th percentile"),
    ("emoji_rate", "replies with emoji"),
    ("capitalised_rate", "replies starting with a capital"),
    ("ends_with_punctuation_rate", "replies ending with . ! ?"),
    ("question_rate", "replies asking something (?)"),
    ("distinct_1", "distinct-1"),
    ("distinct_2", "distinct-2"),
    ("top_words", "top words"),
]


def curve_png(curve: list[dict]) -> bytes:
    """Held-out bits/char and training loss (converted to bits) per epoch.

    The training loss also counts the friends' text (see `context_loss_weight`), so it
    is a trend to compare with the held-out curve, not the same quantity.
    """
    import math

    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6, 3.2), dpi=100)
    epochs = [point["epoch"] for point in curve]
    axes.plot(
        epochs, [p["train_loss"] / math.log(2) for p in curve], "o-", label="training (all text)"
    )
    axes.plot(
        epochs, [p["validation_bits_per_char"] for p in curve], "o-", label="validation replies"
    )
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("bits per character")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, list):
        value = ", ".join(map(str, value))
    return f"<td>{html.escape(str(value))}</td>"


def _text(value: str) -> str:
    return html.escape(value).replace("\n", "<br>") or "<i>(opens the conversation)</i>"


SYSTEM_NOTES = {
    "model": "the persona model's sampled replies",
    "retrieval": "the person's training reply whose friend turn is nearest (TF-IDF)",
    "random": "a random training reply of the person",
    "echo": "the friend's turn said back (must fail relevance)",
    "person": "the person's real replies (two-sample: half against half, the floor)",
}
# (figure, label, format, how to read it)
FIGURES = [
    ("two_sample_accuracy", "two-sample accuracy", ".2f", "0.50 = cannot tell from real"),
    ("relevance", "relevance", ".2f", "to the friend's turn; 1 = as real, 0 = random turn"),
    ("non_word_rate", "non-words", ".1%", "words no one in other people's chats wrote"),
    ("distinct_2", "distinct-2", ".2f", "unique word pairs / all word pairs"),
    ("length_ks", "length KS", ".2f", "distance of reply lengths from the real ones'"),
    ("lines_ks", "lines KS", ".2f", "distance of line counts from the real ones'"),
    ("verbatim_rate", "verbatim", ".1%", "repeats 6 words of a training message"),
    ("exact_copy_rate", "exact copies", ".1%", "identical to a training reply"),
]


def figure_cell(figure: dict, spec: str) -> str:
    """`mean [low, high]` of one figure over the seeds, "n/a" when undefined."""
    if figure["mean"] is None:
        return "n/a"
    if figure["seeds"] < 2:
        return format(figure["mean"], spec)
    low, high = format(figure["low"], spec), format(figure["high"], spec)
    return f"{format(figure['mean'], spec)} [{low}, {high}]"


def systems_rows(systems: dict) -> str:
    """One row per figure, one column per system."""
    return "\n".join(
        f"<tr><th>{label}</th>"
        + "".join(f"<td>{figure_cell(figures[key], spec)}</td>" for figures in systems.values())
        + f"<td>{html.escape(note)}</td></tr>"
        for key, label, spec, note in FIGURES
    )


def render_report(result: dict) -> str:
    png = base64.b64encode(curve_png(result["curve"])).decode("ascii")
    persona, model = result["style"]["persona"], result["style"]["model"]
    style_rows = "\n".join(
        f"<tr><th>{label}</th>{_cell(persona[key])}{_cell(model[key])}</tr>"
        for key, label in STYLE_ROWS
    )
    samples = "\n".join(
        f"<tr><td>{_text(s['context'])}</td><td>{_text(s['real'])}</td>"
        f"<td>{_text(s['model'])}</td><td>{_text(s.get('retrieval', ''))}</td></tr>"
        for s in result["samples"]
    )
    system_heads = "".join(f"<th>{html.escape(system)}</th>" for system in result["systems"])
    system_notes = "".join(
        f"<li><b>{html.escape(system)}</b>: {html.escape(SYSTEM_NOTES[system])}</li>"
        for system in result["systems"]
    )
    training = result["training"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mimical evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
</style></head><body>
<h1>Persona model evaluation</h1>
<p>Model <code>{html.escape(result["model"])}</code>: {result["exchanges"]} of
{result["test_replies"]} test replies, seeds {", ".join(map(str, result["seeds"]))}, every
reply cut at {result["reply_chars"]} characters; mean [95% interval] over the seeds.</p>
<table>
<tr><th>bits per character (model)</th><td>{result["bits_per_char"]:.3f}</td></tr>
<tr><th>bits per character (5-gram baseline)</th>
<td>{result["baseline_5gram_bits_per_char"]:.3f}</td></tr>
<tr><th>improvement over baseline</th><td>{result["improvement_over_baseline"]:.1%}</td></tr>
<tr><th>context use (bits per reply saved by the true context)</th>
<td>{_context_use(result["context_use"])}</td></tr>
<tr><th>training</th><td>{training["epochs"]} epochs ({html.escape(training["stop_reason"])}),
{training["training_seconds"]:.0f} s on {training["device"]}</td></tr>
</table>
<h2>Do the replies make sense?</h2>
<table><tr><th></th>{system_heads}<th>how to read it</th></tr>
{systems_rows(result["systems"])}
</table>
<ul>{system_notes}</ul>
<h2>Training curve</h2>
<img alt="training curve" src="data:image/png;base64,{png}">
<h2>Style</h2>
<table><tr><th></th><th>persona (real)</th><th>model</th></tr>
{style_rows}
</table>
<h2>Sample exchanges</h2>
<table><tr><th>friend (context)</th><th>real reply</th><th>model reply</th><th>retrieval</th></tr>
{samples}
</table>
</body></html>
"""


def write_report(result: dict, path: Path) -> None:
    atomic_write(path, render_report(result))


def _context_use(use: dict) -> str:
    if use["bits_per_reply"] is None:
        return "no replies with a context"
    return f"{use['bits_per_reply']:.1f} ({use['low']:.1f} to {use['high']:.1f})"
