"""The subword tokenizer: byte fallback round-trips anything; the graph agrees with Python."""

from __future__ import annotations

import pytest

from mimical.model.tokenizer import SPECIAL_TOKENS, Tokenizer, graph_tokenizer

TEXTS = [
    "hey there how are you doing today?",
    "the weather there is nice, then we went to the beach",
    "haha I think you're right\nsee you there",
    "I'm thinking about it 😂😂",
] * 20
ODD = [
    "",
    "\n",
    "hey 😀 café\n\n  tabs\t ok",
    "ÀÉÎ naïve crème brûlée 🙈🙈 déjà vu",
    "日本語のテキスト",
    "there then the thereafter",
    "\u200b zero width, \r\n CRLF, \x00 nul",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=300)


def test_training_learns_pieces_of_frequent_words_within_lines(tokenizer):
    assert tokenizer.size == 300
    assert b" there" in tokenizer.pieces and b"the" in tokenizer.pieces
    assert not any(b"\n" in piece and len(piece) > 1 for piece in tokenizer.pieces)
    assert len(tokenizer.encode(" there")) == 1


@pytest.mark.parametrize("text", ODD + TEXTS[:4])
def test_any_text_round_trips(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(SPECIAL_TOKENS <= i < tokenizer.size for i in ids)
    assert tokenizer.decode(ids) == text


def test_case_and_newlines_are_kept(tokenizer):
    assert tokenizer.decode(tokenizer.encode("Hey\nTHERE")) == "Hey\nTHERE"
    assert tokenizer.encode("a\nb")[1] == SPECIAL_TOKENS + ord("\n")


def test_save_and_load_keep_the_pieces_and_check_the_format(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.pieces == tokenizer.pieces
    (tmp_path / "other.json").write_text('{"format": "something-else", "pieces": []}')
    with pytest.raises(ValueError, match="not a mimical-tokenizer"):
        Tokenizer.load(tmp_path / "other.json")


def test_graph_encode_and_decode_match_python(tokenizer):
    import tensorflow as tf

    in_graph = graph_tokenizer(tokenizer)
    texts = ODD + TEXTS[:4]
    ids, lengths = tf.function(in_graph.encode)(tf.constant(texts))
    for row, text in enumerate(texts):
        assert ids.numpy()[row, : lengths.numpy()[row]].tolist() == tokenizer.encode(text)
    decoded = in_graph.decode(ids, lengths).numpy()
    assert [d.decode() for d in decoded] == texts
    empty_ids, empty_lengths = in_graph.encode(tf.constant([], tf.string))
    assert empty_ids.shape[0] == 0 and empty_lengths.shape == (0,)


def test_extra_pieces_are_kept_whole_within_the_vocabulary_size():
    from mimical.model.tokenizer import COMMON_EMOJI

    texts = [f"word{i} " * 3 for i in range(100)]  # more merges than the room left
    tokenizer = Tokenizer.train(texts, 400, extra=COMMON_EMOJI)
    assert tokenizer.size == 400
    assert len(tokenizer.encode("😂")) == 1 and len(tokenizer.encode("❤️")) == 1
    assert tokenizer.decode(tokenizer.encode("so funny 😂😂 ❤️")) == "so funny 😂😂 ❤️"


def test_each_scrubber_placeholder_is_one_token_after_a_space_or_not():
    """`<EMAIL>` is one piece the model can be forbidden to write, wherever it stands
    (at a space the longest match would otherwise take " <" and spell out the rest)."""
    from mimical.model.tokenizer import placeholder_ids, placeholder_pieces

    texts = [*TEXTS, "<3 <3 haha :<", "mail me at <EMAIL> or call <PHONE>"]
    tokenizer = Tokenizer.train(texts, vocab_size=320, extra=placeholder_pieces())
    assert len(placeholder_ids(tokenizer)) == len(placeholder_pieces()) == 12
    for text in ("<EMAIL>", " <EMAIL>", "x <IBAN>!", "see <URL:youtube.com>\n<CARD>"):
        ids = tokenizer.encode(text)
        assert len(set(ids) & set(placeholder_ids(tokenizer))) == text.count("<")
        assert tokenizer.decode(ids) == text
    assert placeholder_ids(Tokenizer.train(TEXTS, vocab_size=300)) == []
