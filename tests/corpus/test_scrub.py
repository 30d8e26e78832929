"""PII scrubbing: each kind is replaced and counted; look-alikes are left alone."""

from __future__ import annotations

import pytest

from mimical.corpus.scrub import Scrubber


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("write to jane.doe+chat@mail.example.co.uk!", "write to <EMAIL>!", "email"),
        ("call +44 20 7946 0958 tonight", "call <PHONE> tonight", "phone"),
        ("my cell is +1 (415) 555-2671", "my cell is <PHONE>", "phone"),
        ("ring 0049 30 901820 please", "ring <PHONE> please", "phone"),
        ("home: (555) 123-4567", "home: <PHONE>", "phone"),
        ("see https://www.youtube.com/watch?v=abc123.", "see <URL:youtube.com>.", "url"),
        ("(www.Example.org/path?q=1)", "(<URL:example.org>)", "url"),
        ("card 4111 1111 1111 1111 exp 12/29", "card <CARD> exp 12/29", "card"),
        ("card 5500-0000-0000-0004", "card <CARD>", "card"),
        ("pay to DE89 3704 0044 0532 0130 00 OK", "pay to <IBAN> OK", "iban"),
        ("GB82WEST12345698765432", "<IBAN>", "iban"),
    ],
)
def test_each_kind_is_replaced_and_counted(text, expected, kind):
    scrub = Scrubber()
    assert scrub(text) == expected
    assert scrub.counts[kind] == 1
    assert sum(scrub.counts.values()) == 1


@pytest.mark.parametrize(
    "text",
    [
        "see you on 2018-05-02 at 10:30",
        "it was 12.05.2023, remember?",
        "a 1000000 prize",
        "card 4111 1111 1111 1112",  # fails the Luhn check
        "DE89 3704 0044 0532 0130 01",  # fails the IBAN check
        "score was 3-2",
        "@ben what's up",
        "+12",
        "0011010010110100101",
    ],
)
def test_look_alikes_are_kept(text):
    scrub = Scrubber()
    assert scrub(text) == text
    assert sum(scrub.counts.values()) == 0


def test_counts_accumulate_over_messages():
    scrub = Scrubber()
    scrub("a@b.io and c@d.io")
    scrub("https://x.com/1 https://y.com/2")
    assert scrub.counts == {"email": 2, "url": 2, "phone": 0, "card": 0, "iban": 0}
