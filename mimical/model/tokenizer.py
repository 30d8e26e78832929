"""Subword tokens: byte pieces learned by byte-pair merges, encoded by greedy longest match.

    python -m mimical.model.tokenizer corpus.txt 4096 tokenizer.json   # train and save

The vocabulary is the 256 single bytes plus pieces learned from the base corpus, so any
string (emoji, accents, odd whitespace, newlines) round-trips: what no piece covers falls
back to its bytes. Case is kept and a newline is its own token (pieces never span one),
because both are part of how a person writes.

Training is byte-pair encoding (Sennrich et al. 2016) over the text's words: start from
bytes, repeatedly merge the most frequent adjacent pair into a new piece. Encoding does
not replay the merges: it takes, at each position, the longest piece that matches there.
That rule is simple enough to run inside a TensorFlow graph with core ops only (a hash
table lookup of every prefix up to the longest piece, in a `while_loop`), which is what
`GraphTokenizer` does for the exported model; `encode` here is the same rule in Python.

Token ids: 0–3 are the model's special tokens (padding, unknown, context end, turn end),
4–259 the bytes, then the learned pieces in the order they were merged.
"""

from __future__ import annotations

import collections
import functools
import heapq
import json
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# Shared with the character vocabulary (`mimical.model.model`): PAD, UNK, SEP, EOT.
SPECIAL_TOKENS = 4
FORMAT = "mimical-tokenizer"
VERSION = 1
# Emoji people send most (with the emoji-style variant where one is usual): each is one
# piece, so that a persona's favourite emoji is one token to learn, not three or four
# bytes that the base (trained on chats with few emoji) never learnt to put together.
_COMMON_EMOJI_TEXT = (
    "😂 ❤️ ❤ 😍 🤣 😊 🙏 💕 😭 😘 👍 😅 👏 😁 🔥 🥰 💔 💖 💙 😢 🤔 😆 🙄 💪 😉 ☺️ 👌 🤗 "
    "💜 😔 😎 😇 🌹 🤦 🎉 💞 ✌️ ✨ 🤷 😱 😌 🌸 🙌 💛 😏 🙂 💗 💚 😃 🤩 😜 😋 😡 😬 🥺 😒 "
    "😞 😀 🤪 😳 💯 👀 ☹️ 😄 🙃 😐 😑 😴 😕 😥 🎶 👋 🎂 💀 👊 😩 😤 🤞 🙈 😝 😛 🥳 🤯 ♥️"
)
COMMON_EMOJI = tuple(_COMMON_EMOJI_TEXT.split())
# The first byte of every four-byte UTF-8 character: nearly all of them are emoji, so the
# byte that starts an emoji no piece covers is where such an emoji begins.
FOUR_BYTE_LEAD = b"\xf0"
# Words (with their leading space), runs of punctuation, runs of other whitespace and
# single newlines: merges stay inside one chunk, so no piece crosses a word or a line.
CHUNK = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\n|[^\S\n]+|.", re.UNICODE)


def placeholder_pieces() -> tuple[str, ...]:
    """Pieces reserved for the scrubber's placeholders (`mimical.corpus.schema`), so that
    the model reads `<EMAIL>` as one token it can be forbidden to write, not as "<", "EM",
    "AIL", ">" (which taught base v3 that "<" and capitals go together). Each also with
    a leading space: at a space the longest match would otherwise take " <"."""
    from mimical.corpus.schema import PLACEHOLDERS, URL_PLACEHOLDER_START

    return tuple(p for stem in (*PLACEHOLDERS, URL_PLACEHOLDER_START) for p in (stem, " " + stem))


def placeholder_ids(tokenizer) -> list[int]:
    """The token ids of `placeholder_pieces` in `tokenizer` (none in a tokenizer made
    before they were reserved, nor in a character vocabulary)."""
    ids = getattr(tokenizer, "_ids", {})
    return sorted(ids[p.encode()] for p in placeholder_pieces() if p.encode() in ids)


def is_emoji(char: str) -> bool:
    """Pictographs and other symbols (So), and the emoji blocks."""
    return unicodedata.category(char) == "So" or 0x1F000 <= ord(char) <= 0x1FAFF


def has_emoji(text: str) -> bool:
    return any(map(is_emoji, text))


class Tokenizer:
    """Learned byte pieces; `pieces[i]` is token id SPECIAL_TOKENS + i."""

    def __init__(self, pieces: Iterable[bytes] = ()):
        learned = [p for p in pieces if len(p) > 1]
        self.pieces: tuple[bytes, ...] = tuple(bytes([b]) for b in range(256)) + tuple(learned)

    @property
    def size(self) -> int:
        return SPECIAL_TOKENS + len(self.pieces)

    @functools.cached_property
    def max_piece_bytes(self) -> int:
        return max(len(p) for p in self.pieces)

    @functools.cached_property
    def _ids(self) -> dict[bytes, int]:
        return {piece: SPECIAL_TOKENS + i for i, piece in enumerate(self.pieces)}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, extra: Iterable[str] = ()) -> Tokenizer:
        """Learn pieces by merging the most frequent adjacent pairs until, with the
        `extra` pieces (kept whole whatever their count), there are `vocab_size` tokens."""
        reserved = [p for p in dict.fromkeys(e.encode() for e in extra) if len(p) > 1]
        vocab_size -= len(reserved)
        chunks = collections.Counter()
        for text in texts:
            chunks.update(CHUNK.findall(text))
        # Each distinct chunk is a list of pieces with a count; start from its bytes.
        words = [[bytes([b]) for b in chunk.encode()] for chunk in chunks]
        counts = list(chunks.values())
        pair_counts = collections.Counter()
        where = collections.defaultdict(set)  # pair → indices of the words that hold it
        for index, word in enumerate(words):
            for pair in zip(word, word[1:], strict=False):
                pair_counts[pair] += counts[index]
                where[pair].add(index)
        # A max-heap of (count, pair) with stale entries skipped when popped: the most
        # frequent pair without scanning all pairs at every merge (ties: smaller pair).
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)
        learned = []
        while SPECIAL_TOKENS + 256 + len(learned) < vocab_size and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -negative_count:
                continue  # stale: this pair's count changed since it was pushed
            if -negative_count < 2:
                break
            merged = pair[0] + pair[1]
            learned.append(merged)
            changed = set()
            for index in where.pop(pair):
                word, count = words[index], counts[index]
                # Forget this word's pairs, merge every occurrence, count its new pairs.
                for old in zip(word, word[1:], strict=False):
                    pair_counts[old] -= count
                    changed.add(old)
                new_word, i = [], 0
                while i < len(word):
                    if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                        new_word.append(merged)
                        i += 2
                    else:
                        new_word.append(word[i])
                        i += 1
                words[index] = new_word
                for new in zip(new_word, new_word[1:], strict=False):
                    pair_counts[new] += count
                    where[new].add(index)
                    changed.add(new)
            for changed_pair in changed - {pair}:
                if pair_counts[changed_pair] > 0:
                    heapq.heappush(heap, (-pair_counts[changed_pair], changed_pair))
            pair_counts.pop(pair, None)
        known = set(learned)
        return cls([*learned, *(p for p in reserved if p not in known)])

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: at each position the longest piece that matches there."""
        data, ids, position = text.encode(), self._ids, 0
        tokens = []
        while position < len(data):
            for length in range(min(self.max_piece_bytes, len(data) - position), 0, -1):
                token = ids.get(data[position : position + length])
                if token is not None:
                    tokens.append(token)
                    position += length
                    break
        return tokens

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (special tokens decode to nothing; broken UTF-8 is replaced)."""
        data = b"".join(self.pieces[i - SPECIAL_TOKENS] for i in ids if i >= SPECIAL_TOKENS)
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> str:
        learned = [p.hex() for p in self.pieces[256:]]
        return json.dumps({"format": FORMAT, "version": VERSION, "pieces": learned})

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} file")
        return cls(bytes.fromhex(p) for p in data["pieces"])

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls.from_json(Path(path).read_text())


def graph_tokenizer(tokenizer: Tokenizer):
    """The in-graph twin of `tokenizer` (a tf.Module); see `_graph_tokenizer_class`."""
    return _graph_tokenizer_class()(tokenizer)


@functools.cache
def _graph_tokenizer_class():
    """Define GraphTokenizer lazily so importing this module does not import TensorFlow."""
    import tensorflow as tf

    class GraphTokenizer(tf.Module):
        """`Tokenizer.encode`/`decode` with core TensorFlow ops, for exported models."""

        def __init__(self, tokenizer: Tokenizer):
            super().__init__(name="tokenizer")
            self.max_piece_bytes = tokenizer.max_piece_bytes
            pieces = tf.constant(tokenizer.pieces, tf.string)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    pieces, tf.range(SPECIAL_TOKENS, tokenizer.size, dtype=tf.int64)
                ),
                default_value=-1,
            )
            # id → bytes; the special tokens decode to nothing.
            self.id_to_piece = tf.concat([tf.fill([SPECIAL_TOKENS], ""), pieces], 0)
            # Characters each token adds: its bytes that are not UTF-8 continuation bytes.
            self.token_chars = tf.constant(
                [0] * SPECIAL_TOKENS
                + [sum(b & 0xC0 != 0x80 for b in piece) for piece in tokenizer.pieces],
                tf.int32,
            )

        def encode(self, texts):
            """(B,) strings → (B, T) right-padded ids, (B,) lengths; greedy longest match.

            First the longest piece starting at every byte position, all at once (one
            substring and one table lookup op); then a cheap walk that jumps from each
            match to the position after it.
            """
            batch = tf.shape(texts)[0]
            total = tf.strings.length(texts)  # (B,) bytes
            positions = tf.range(tf.reduce_max(tf.concat([total, [1]], 0)))  # (P,)
            lengths = tf.range(1, self.max_piece_bytes + 1)  # (L,)
            shape = [batch, tf.size(positions), self.max_piece_bytes]
            prefixes = tf.strings.substr(
                tf.broadcast_to(texts[:, None, None], shape),
                # Positions past a row's end read its end (Substr fails beyond it).
                tf.broadcast_to(tf.minimum(positions[None, :], total[:, None])[:, :, None], shape),
                tf.broadcast_to(lengths, shape),
            )  # (B, P, L)
            ids = self.table.lookup(prefixes)
            # A prefix cut by the text's end is shorter than asked: not that length's match.
            hit = (ids >= 0) & tf.equal(tf.strings.length(prefixes), lengths)
            longest = tf.reduce_max(tf.where(hit, lengths, 0), axis=2)  # (B, P)
            token = tf.gather(ids, tf.maximum(longest - 1, 0), batch_dims=2)  # (B, P)
            token = tf.cast(token, tf.int32)

            def step(position, tokens, count):
                at = tf.minimum(position, tf.size(positions) - 1)[:, None]
                active = position < total
                picked = tf.gather(token, at, batch_dims=1)[:, 0]
                tokens = tokens.write(count, tf.where(active, picked, 0))
                jump = tf.gather(longest, at, batch_dims=1)[:, 0]
                return position + tf.where(active, jump, 0), tokens, count + 1

            _, tokens, _ = tf.while_loop(
                # At least one step, so that even an empty batch stacks a (T, B) array.
                lambda position, _, count: tf.equal(count, 0) | tf.reduce_any(position < total),
                step,
                (
                    tf.zeros([batch], tf.int32),
                    tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
                    tf.constant(0),
                ),
            )
            ids = tf.reshape(tf.transpose(tokens.stack()), [batch, -1])  # (B, T)
            return ids, tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1)

        def decode(self, ids, lengths):
            """(B, T) ids and (B,) lengths → (B,) strings; broken UTF-8 is dropped."""
            ragged = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
            data = tf.strings.reduce_join(tf.gather(self.id_to_piece, ragged), axis=1)
            return tf.strings.unicode_transcode(data, "UTF-8", "UTF-8", errors="ignore")

    return GraphTokenizer


if __name__ == "__main__":
    text = Path(sys.argv[1]).read_text()
    Tokenizer.train(text.splitlines(), int(sys.argv[2])).save(Path(sys.argv[3]))
