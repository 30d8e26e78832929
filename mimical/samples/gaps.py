"""Where the default conversation gap comes from: `python -m mimical.samples.gaps`.

The chitchat data set marks conversations explicitly, so it tells us which silences are
inside a conversation and which separate two conversations of the same pair of people.
For each candidate threshold this prints how many gaps it would misfile:

- split: gaps inside a conversation longer than the threshold (a conversation cut in two);
- merged: gaps between two conversations of the same pair that are shorter (two
  conversations glued together; only gaps between chats that do not overlap in time).

The threshold with the fewest misfiled gaps is the default in `mimical.corpus.segment`.
"""

from __future__ import annotations

from collections import defaultdict

WIDTHS = (10, 7, 8, 7, 9, 9)
CANDIDATES = (300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400)


def gap_table(candidates=CANDIDATES) -> list[dict]:
    from mimical.samples.plan import load_chats

    inside: list[float] = []
    spans: dict[frozenset, list[tuple[float, float]]] = defaultdict(list)
    for chat in load_chats():
        times = [seconds for _, seconds, _ in chat["messages"]]
        inside.extend(later - earlier for earlier, later in zip(times, times[1:], strict=False))
        senders = frozenset(sender for sender, _, _ in chat["messages"])
        if len(senders) == 2:
            spans[senders].append((min(times), max(times)))
    between = []
    for pair in spans.values():
        pair.sort()
        between.extend(b[0] - a[1] for a, b in zip(pair, pair[1:], strict=False) if b[0] > a[1])
    rows = []
    for threshold in candidates:
        split = sum(gap > threshold for gap in inside)
        merged = sum(gap <= threshold for gap in between)
        rows.append(
            {
                "threshold_s": threshold,
                "split": split,
                "split_pct": 100 * split / len(inside),
                "merged": merged,
                "merged_pct": 100 * merged / len(between),
                "misfiled": split + merged,
            }
        )
    return rows


def main() -> None:
    rows = gap_table()
    best = min(rows, key=lambda row: row["misfiled"])
    header = ("threshold", "split", "split %", "merged", "merged %", "misfiled")
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, WIDTHS, strict=True)))
    for row in rows:
        mark = "  <- fewest" if row is best else ""
        print(
            f"{row['threshold_s'] / 60:>8g} m {row['split']:>7} {row['split_pct']:>8.3f}"
            f" {row['merged']:>7} {row['merged_pct']:>9.1f} {row['misfiled']:>9}{mark}"
        )


if __name__ == "__main__":
    main()
