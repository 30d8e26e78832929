"""Which of the person's replies may be reused, how the graph finds them, and how they win."""

from __future__ import annotations

import pytest

from mimical.corpus.schema import Pair
from mimical.model.baselines import retrieval_replies
from mimical.model.model import ModelConfig, Vocabulary, build_keras_model, network_weights
from mimical.model.retrieval import Bank, bank_replies, graph_retrieval


def pair(conversation: int, friend: str, reply: str, thread: str = "t") -> Pair:
    return Pair(thread, conversation, friend, reply, False, friend)


TRAIN = [
    pair(0, "how was the exam", "ok"),
    pair(1, "how did the exam go", "ok"),
    pair(2, "want pizza tonight", "pizza sounds great, i am so hungry right now"),
    pair(3, "want pizza tonight?", "pizza sounds great, i am so hungry right now"),
    pair(4, "where do you live", "i live at 12 elm street next to the old mill"),
    pair(5, "email me", "sure, <EMAIL> works"),
    pair(6, "he said you should never trust a man with two watches", "lol"),
    pair(7, "what did sam say", "he said you should never trust a man with two watches, wow"),
]


def test_a_public_persona_reuses_only_replies_under_six_words():
    bank = bank_replies(TRAIN)
    assert set(bank.replies) == {"ok", "lol"}
    # A long reply identifies a moment of someone's life, even one sent twice.
    assert "i live at 12 elm street next to the old mill" not in bank.replies
    assert "pizza sounds great, i am so hungry right now" not in bank.replies


def test_no_policy_reuses_placeholders_or_other_peoples_words():
    everything = bank_replies(TRAIN, "all")
    assert "i live at 12 elm street next to the old mill" in everything.replies
    assert not any("<EMAIL>" in reply for reply in everything.replies)
    # Quotes six words of the friend's message in conversation 6.
    assert not any("two watches" in reply for reply in everything.replies)
    assert len(bank_replies(TRAIN, "off")) == 0
    with pytest.raises(ValueError, match="retrieval policy"):
        bank_replies(TRAIN, "everything")


def test_the_graph_finds_what_the_tf_idf_baseline_finds():
    """In-graph retrieval (hash table + sparse MatMul + TopKV2) ranks as sklearn's TF-IDF."""
    import tensorflow as tf

    bank = bank_replies(TRAIN, "all")
    retrieval = graph_retrieval(bank, 2)
    queries = ["so how was your exam", "want pizza?", "where do you live now", "zzz"]
    similarity, replies = retrieval.top(tf.constant([f"earlier\n{q}" for q in queries]))
    best = [r.decode() for r in replies.numpy()[:, 0]]
    kept = [p for p in TRAIN if p.reply in bank.replies]
    assert best[:3] == retrieval_replies(kept, queries)[:3]
    assert similarity.numpy()[3].max() == 0  # no word in common: nothing matches
    assert similarity.numpy()[0, 0] > 0.3


def test_a_bank_smaller_than_k_is_padded_with_replies_that_match_nothing():
    import tensorflow as tf

    retrieval = graph_retrieval(Bank(("ok",), ("how was the exam",)), 3)
    similarity, replies = retrieval.top(tf.constant(["the exam"]))
    assert replies.numpy()[0].tolist() == [b"ok", b"", b""]
    assert similarity.numpy()[0, 1:].tolist() == [0.0, 0.0]
    assert graph_retrieval(Bank(), 3) is None


EXAM_BANK = Bank(
    ("ok", "fine i guess", "nailed it", "yes please"),
    ("how was the exam", "the exam went how", "exam", "want pizza"),
)


def test_rows_repeating_a_context_read_successive_ranks():
    """Drafts for one conversation are one call of repeated rows: each row gets the next
    `k` replies, so that no two rows share a candidate; past the bank, nothing matches."""
    import tensorflow as tf

    retrieval = graph_retrieval(EXAM_BANK, 1)
    contexts = ["hi\nhow was the exam"] * 3 + ["want pizza?", "hi\nhow was the exam"]
    similarity, replies = retrieval.top(tf.constant(contexts))
    single_similarity, single = retrieval.top(tf.constant(contexts[:1]))
    ranked = [r.decode() for r in replies.numpy()[:, 0]]
    assert ranked[0] == single.numpy()[0, 0].decode() == "ok"  # a lone row is unchanged
    assert len(set(ranked[:3])) == 3 and set(ranked[:3]) <= {"ok", "fine i guess", "nailed it"}
    assert ranked[3] == "yes please"  # another context starts at the top
    assert ranked[4] == "yes please" and similarity.numpy()[4, 0] == 0  # 4th exam row
    assert similarity.numpy()[0, 0] == single_similarity.numpy()[0, 0]

    two = graph_retrieval(EXAM_BANK, 2)
    similarity, replies = two.top(tf.constant(["how was the exam"] * 3))
    assert replies.numpy()[2].tolist() == [b"", b""]  # ranks 4 and 5: past the bank
    assert similarity.numpy()[2].tolist() == [0.0, 0.0]
    assert len({r for row in replies.numpy()[:2] for r in row}) == 4


@pytest.fixture(scope="module")
def generator_parts():
    texts = [p.reply for p in TRAIN] + [p.context for p in TRAIN]
    vocab = Vocabulary.from_texts(texts)
    config = ModelConfig(units=16, embedding_dim=8, candidates=2, retrieved=2)
    model = build_keras_model(config, vocab.size)
    return network_weights(model, config), vocab, config


def test_retrieved_replies_are_scored_and_chosen_in_the_graph(generator_parts):
    """With no sampled candidates the reply is the best retrieved one that matches the
    friend's message; nothing matching means nothing said, and the output says which."""
    import tensorflow as tf

    from mimical.model.generator import reply_generator

    weights, vocab, config = generator_parts
    config = ModelConfig(**{**config.__dict__, "candidates": 0})
    generator = reply_generator(
        weights, vocab, config, retrieval=graph_retrieval(bank_replies(TRAIN, "all"), 2)
    )
    outputs = generator.reply(
        tf.constant(["earlier\nwant pizza tonight", "qqq"]),
        tf.constant([1.0, 1.0]),
        tf.constant([100, 100]),
        tf.constant([1, 2], tf.int64),
    )
    assert outputs["retrieved"].numpy().tolist() == [True, False]
    assert outputs["reply"].numpy().tolist() == [
        b"pizza sounds great, i am so hungry right now",
        b"",
    ]


def test_repeated_rows_answer_different_retrieved_replies(generator_parts):
    import tensorflow as tf

    from mimical.model.generator import reply_generator

    weights, vocab, config = generator_parts
    config = ModelConfig(**{**config.__dict__, "candidates": 0, "retrieved": 1})
    generator = reply_generator(weights, vocab, config, retrieval=graph_retrieval(EXAM_BANK, 1))
    outputs = generator.reply(
        tf.constant(["how was the exam"] * 3),
        tf.fill([3], 1.0),
        tf.fill([3], 100),
        tf.constant([7, 7, 7], tf.int64),
    )
    replies = outputs["reply"].numpy().tolist()
    assert len(set(replies)) == 3 and outputs["retrieved"].numpy().all()


def test_sampled_and_retrieved_candidates_share_one_call(generator_parts):
    import tensorflow as tf

    from mimical.model.generator import reply_generator

    weights, vocab, config = generator_parts
    generator = reply_generator(
        weights, vocab, config, retrieval=graph_retrieval(bank_replies(TRAIN, "all"), 2)
    )
    contexts = ["want pizza tonight", "how was the exam"] * 8
    outputs = generator.reply(
        tf.constant(contexts),
        tf.fill([16], 1.0),
        tf.fill([16], 40),
        tf.range(16, dtype=tf.int64),
    )
    bank = set(bank_replies(TRAIN, "all").replies)
    for reply, retrieved in zip(
        outputs["reply"].numpy(), outputs["retrieved"].numpy(), strict=True
    ):
        assert (reply.decode()[:40] in {r[:40] for r in bank}) or not retrieved
        assert len(reply.decode()) <= 40


def test_other_peoples_words_are_refused_outright(generator_parts):
    """A candidate repeating six words of someone else's message is never said: if every
    candidate does, the reply is empty (the dialog says "...")."""
    import tensorflow as tf

    from mimical.model.generator import reply_generator
    from mimical.model.model import span_fingerprints

    weights, vocab, config = generator_parts
    generator = reply_generator(
        weights, vocab, config, others_spans=span_fingerprints(["a b c d e f"])
    )
    assert generator.recites(tf.constant(["x a b c d e f"]), generator.others_spans).numpy()[0]
    assert not generator.recites(tf.constant(["x a b c d e f"])).numpy()[0]
