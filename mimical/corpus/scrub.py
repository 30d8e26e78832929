"""Replace personal data in message text with typed placeholders before it reaches training.

    <EMAIL>          e-mail addresses
    <PHONE>          phone numbers: international (+44 20 7946 0958, 0049 30 123456) checked
                     with Google's libphonenumber, and grouped national ones of 9-15 digits
                     ((555) 123-4567 x, 020 7946 0958)
    <URL:domain>     links keep only their host ("<URL:youtube.com>"): where a link points is
                     part of how people talk, the path and query often identify someone
    <CARD>           payment card numbers (13-19 digits passing the Luhn check)
    <IBAN>           bank account numbers passing the IBAN mod-97 check

Numbers that fail the checksums stay as they are (order numbers, scores, dates), so the
counts in the import stats are real findings.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import compress
from urllib.parse import urlsplit

import phonenumbers
from stdnum import iban, luhn

from mimical.corpus.threads import RECORD_SEPARATOR

KINDS = ("email", "phone", "url", "card", "iban")

PATTERN = re.compile(
    r"(?P<url>(?:https?://|\bwww\.)[^\s<>\"']+)"
    r"|(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b)"
    r"|(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,9}\b)"
    r"|(?P<number>(?:(?<![\w+])\+|\b00|(?<!\w)\(|\b)\d[\d ()./\-\u2011]{5,24}\d\b)"
)
# What a match of each kind cannot do without (url, email, iban, number); much cheaper to
# search for than PATTERN, which tries four alternatives at every position.
NEEDED_PATTERN = re.compile(r"://|www\.|@|[A-Z]{2}\d{2}|\d[\d ()./\-\u2011]{5,}\d")
DIGITS = b"0123456789"
# All bytes but the separator, the digits, "@" and "/": deleting them from the joined texts
# leaves, per text, an empty chunk when the text holds none of those (see `scrub_all`).
UNNEEDED = bytes(sorted(set(range(256)) - set(DIGITS + b"@/") - set(RECORD_SEPARATOR.encode())))
URL_TAIL = ".,;:!?)]}'\""


class Scrubber:
    """Scrubs texts and counts what it replaced, by kind."""

    def __init__(self) -> None:
        self.counts: Counter = Counter({kind: 0 for kind in KINDS})

    def __call__(self, text: str) -> str:
        # Every kind needs a digit, an "@", a "/" or a "www": testing the bytes for those
        # lets most messages skip the pattern (5x faster than a regex search).
        data = text.encode()
        if b"@" in data or b"/" in data or b"www" in data or data.translate(None, DIGITS) != data:
            return self._scrub(text)
        return text

    def _scrub(self, text: str) -> str:
        return PATTERN.sub(self._replace, text) if NEEDED_PATTERN.search(text) else text

    def scrub_all(self, texts: list[str]) -> list[str]:
        """Scrub many texts (a thread's) at once; same result as one call per text.

        The test in `__call__` costs as much per text as the rest of the import, so it is
        made once for all of them: join, delete every byte but digits, "@" and "/", and the
        texts whose chunk is left non-empty, or that hold a "www", are the few to scrub.
        """
        joined = RECORD_SEPARATOR.join(texts)
        chunks = joined.encode().translate(None, UNNEEDED).split(RECORD_SEPARATOR.encode())
        if len(chunks) != len(texts):  # a text holds the separator itself
            return list(map(self, texts))
        may_hold_data = list(map(bool, chunks))
        if "www" in joined:  # a link may start with "www." and hold no digit and no "/"
            may_hold_data = [
                may or "www" in text for may, text in zip(may_hold_data, texts, strict=True)
            ]
        scrubbed = list(texts)
        for index in compress(range(len(texts)), may_hold_data):
            scrubbed[index] = self._scrub(texts[index])
        return scrubbed

    def _replace(self, match: re.Match) -> str:
        kind = match.lastgroup
        found = match.group(kind)
        if kind == "url":
            return self._url(found)
        if kind == "email":
            self.counts["email"] += 1
            return "<EMAIL>"
        if kind == "iban":
            return self._iban(found)
        return self._number(found)

    def _url(self, found: str) -> str:
        tail = ""
        while found and found[-1] in URL_TAIL:
            found, tail = found[:-1], found[-1] + tail
        host = urlsplit(found if "://" in found else f"http://{found}").hostname or ""
        self.counts["url"] += 1
        host = host.removeprefix("www.")
        return (f"<URL:{host}>" if host else "<URL>") + tail

    def _iban(self, found: str) -> str:
        # The pattern may run into the following words; try the longest valid prefix.
        parts = found.split(" ")
        for end in range(len(parts), 0, -1):
            candidate = "".join(parts[:end])
            if len(candidate) >= 15 and iban.is_valid(candidate):
                self.counts["iban"] += 1
                rest = " ".join(parts[end:])
                return "<IBAN>" + (" " + rest if rest else "")
        return found

    def _number(self, found: str) -> str:
        digits = re.sub(r"\D", "", found)
        if 13 <= len(digits) <= 19 and not re.search(r"[()./]", found) and luhn.is_valid(digits):
            self.counts["card"] += 1
            return "<CARD>"
        if found.startswith(("+", "00")):
            number = "+" + digits[2:] if found.startswith("00") else "+" + digits
            try:
                possible = phonenumbers.is_possible_number(phonenumbers.parse(number, None))
            except phonenumbers.NumberParseException:
                possible = False
            if possible:
                self.counts["phone"] += 1
                return "<PHONE>"
            return found
        if 9 <= len(digits) <= 15 and re.search(r"[ ()\-\u2011]", found) and not _date_like(found):
            self.counts["phone"] += 1
            return "<PHONE>"
        return found


def _date_like(found: str) -> bool:
    return bool(re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.*", found))
