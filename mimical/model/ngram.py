"""A character n-gram language model with interpolated Kneser–Ney smoothing.

The yardstick for the persona model: if a recurrent network that also reads the
friend's message cannot beat a 5-gram over the persona's own replies, it has learnt
nothing worth serving. Each reply is scored as its characters followed by an
end-of-turn symbol, exactly as the network scores it.

    python -m mimical.model.ngram corpus.jsonl   # held-out bits/char of the 5-gram

Interpolated Kneser–Ney (Chen & Goodman 1998), one discount per order estimated as
D = n1 / (n1 + 2·n2). The highest order uses raw counts; lower orders use
continuation counts (how many distinct characters precede an n-gram), which is what
makes "Francisco"-style characters that only follow one context rank low elsewhere.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import Iterable
from pathlib import Path

START = "\x02"  # pads the history before a reply
END = "\x03"  # the end-of-turn symbol every reply ends with


class CharNgramModel:
    def __init__(self, order: int = 5):
        self.order = order
        self.counts: list[collections.Counter] = []  # [k] → k-gram (continuation) counts
        self.context_totals: list[dict[str, int]] = []
        self.context_types: list[dict[str, int]] = []
        self.discounts: list[float] = []
        self.alphabet_size = 1

    def fit(self, texts: Iterable[str]) -> CharNgramModel:
        n = self.order
        highest: collections.Counter = collections.Counter()
        alphabet = {END}
        for text in texts:
            alphabet.update(text)
            padded = START * (n - 1) + text + END
            highest.update(padded[i - n + 1 : i + 1] for i in range(n - 1, len(padded)))
        self.alphabet_size = len(alphabet) + 1  # + one slot for characters never seen
        counts = {n: highest}
        for k in range(n - 1, 0, -1):
            # Continuation count: each distinct (k+1)-gram adds 1 to its k-suffix.
            counts[k] = collections.Counter(gram[1:] for gram in counts[k + 1])
        self.counts = [collections.Counter()] + [counts[k] for k in range(1, n + 1)]
        self.context_totals, self.context_types, self.discounts = [{}], [{}], [0.0]
        for k in range(1, n + 1):
            totals: dict[str, int] = collections.defaultdict(int)
            types: dict[str, int] = collections.defaultdict(int)
            for gram, count in self.counts[k].items():
                totals[gram[:-1]] += count
                types[gram[:-1]] += 1
            of_count = collections.Counter(self.counts[k].values())
            n1, n2 = of_count.get(1, 0), of_count.get(2, 0)
            self.discounts.append(n1 / (n1 + 2 * n2) if n1 + n2 else 0.5)
            self.context_totals.append(dict(totals))
            self.context_types.append(dict(types))
        return self

    def probability(self, history: str, symbol: str) -> float:
        """P(symbol | last order-1 characters of history), interpolated down to uniform."""
        p = 1.0 / self.alphabet_size
        for k in range(1, self.order + 1):
            context = history[len(history) - k + 1 :] if k > 1 else ""
            total = self.context_totals[k].get(context)
            if not total:  # unseen context: keep the lower-order estimate
                continue
            discount = self.discounts[k]
            count = self.counts[k].get(context + symbol, 0)
            p = (
                max(count - discount, 0.0) / total
                + discount * self.context_types[k][context] / total * p
            )
        return p

    def bits(self, text: str) -> tuple[float, int]:
        """(total bits, symbols scored) for one reply: its characters and then END."""
        padded = START * (self.order - 1) + text + END
        total = 0.0
        for i in range(self.order - 1, len(padded)):
            total -= math.log2(self.probability(padded[i - self.order + 1 : i], padded[i]))
        return total, len(text) + 1


def bits_per_char(model: CharNgramModel, texts: Iterable[str]) -> float:
    bits, symbols = 0.0, 0
    for text in texts:
        b, n = model.bits(text)
        bits, symbols = bits + b, symbols + n
    return bits / max(symbols, 1)


if __name__ == "__main__":
    from mimical.model.data import load_split

    split = load_split(Path(sys.argv[1]))
    baseline = CharNgramModel().fit(p.reply for p in split.train)
    test_bpc = bits_per_char(baseline, (p.reply for p in split.test))
    print(f"5-gram test bits/char: {test_bpc:.3f}")
