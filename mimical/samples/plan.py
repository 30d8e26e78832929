"""The plan of a sample export: which chats, threads, quirks, and what an import must count.

The PyPI `chitchat-dataset` holds 7,168 real two-person chats (258k messages) with
timestamps and anonymous sender ids. One sender is the persona; each chat partner
becomes a thread (their chats one after another; a chat that overlaps the previous one
is moved to a day after it), and two partners share one group thread. Names are made up
from the sender ids, some with accents so encodings get exercised.

`build_sample` makes the format's plan: the messages with the quirks each format really
has (skipped kinds, multi-line and non-ASCII texts, personal data to scrub) and the
numbers an import must report. `mimical.samples.export.write_sample_export` renders it
in the format's files (`mimical.samples.writers`).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

SAMPLE_FORMATS = ("messenger", "messenger-e2ee", "whatsapp-android", "whatsapp-ios", "telegram")
# The most prolific sender: 25,272 messages in 777 chats.
DEMO_PERSONA = "31267496-e50f-4f91-a197-c5b1bfde803b"
GROUP_TITLE = "Weekend plans ⛰️"
OVERLAP_SHIFT_SECONDS = 86400

# Kinds of non-text messages each format really produces, with the skip reason the
# importer must count them under. "edited" and "share_text" are kept as text.
QUIRKS = {
    "messenger": (
        "media",
        "sticker",
        "call",
        "unsent",
        "reaction",
        "placeholder",
        "share",
        "share_text",
        "system",
    ),
    "messenger-e2ee": ("media", "unsent"),
    "whatsapp-android": ("media", "deleted", "call", "edited", "system"),
    "whatsapp-ios": ("media", "sticker", "deleted", "call", "edited", "system"),
    "telegram": ("media", "sticker", "system", "forwarded", "edited"),
}
KEPT_KINDS = ("text", "edited", "share_text")
QUIRK_RATE = 0.06  # non-text messages per text message
EMOJI = ("😂", "👍", "❤️", "🎉", "😅", "🙈")
ACCENTED = ("café", "naïve", "déjà vu", "jalapeño", "über", "crème brûlée")
# Personal data put into some persona messages; the importer must scrub each kind.
PII = (
    ("email", "mail me at {user}@example.com"),
    ("phone", "call me on +44 20 7946 0958"),
    ("url", "see https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ("card", "card is 4111 1111 1111 1111 lol"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00"),
)
PII_RATE = 0.01

FIRST_NAMES = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Noah",
    "Emma",
    "Liam",
    "Olivia",
    "Mia",
    "Lucas",
    "Zoë",
    "José",
    "Chloé",
    "Søren",
    "Anaïs",
    "Björn",
    "Ngozi",
    "Priya",
    "Mateo",
    "Yuki",
    "Amara",
    "Leila",
    "Kai",
    "Inès",
)
LAST_NAMES = (
    "Rivera",
    "Chen",
    "Okafor",
    "Müller",
    "García",
    "Nguyen",
    "Kowalski",
    "Smith",
    "Dubois",
    "Rossi",
    "Haddad",
    "Johansson",
    "Silva",
    "Kim",
    "Patel",
    "O'Brien",
    "Novák",
    "Andersen",
    "Fernández",
    "Tanaka",
)


def display_name(sender_id: str, taken: frozenset[str] = frozenset()) -> str:
    """A made-up, stable name for a chitchat sender id (skipping names already `taken`)."""
    seed = int(hashlib.sha256(sender_id.encode()).hexdigest(), 16)
    combos = len(FIRST_NAMES) * len(LAST_NAMES)
    for step in range(combos):
        index = (seed + step) % combos
        name = f"{FIRST_NAMES[index % len(FIRST_NAMES)]} {LAST_NAMES[index // len(FIRST_NAMES)]}"
        if name not in taken:
            return name
    raise ValueError("out of names")


DEMO_PERSONA_NAME = display_name(DEMO_PERSONA)


@dataclass
class SampleMessage:
    sender: str
    time: float  # UTC seconds
    text: str
    kind: str = "text"  # "text", or a quirk from QUIRKS


@dataclass
class SampleThread:
    key: str  # short unique slug
    title: str
    members: list[str]  # persona first
    group: bool
    messages: list[SampleMessage] = field(default_factory=list)


@dataclass
class SamplePlan:
    format: str
    persona: str  # display name
    threads: list[SampleThread]
    chats: int  # chitchat chats used
    injected_pii: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # what the importer must report

    def kept(self, thread: SampleThread) -> list[SampleMessage]:
        return [m for m in thread.messages if m.kind in KEPT_KINDS]

    @property
    def messages(self) -> int:
        return sum(len(self.kept(thread)) for thread in self.threads)

    @property
    def persona_messages(self) -> int:
        return sum(
            1 for thread in self.threads for m in self.kept(thread) if m.sender == self.persona
        )


@functools.cache
def load_chats() -> tuple[dict, ...]:
    """The chitchat chats, each {"start": seconds, "messages": [(sender, seconds, text)]}."""
    import chitchat_dataset

    path = Path(chitchat_dataset.__file__).with_name("dataset.json")
    chats = []
    for raw in orjson.loads(path.read_bytes()).values():
        messages = [
            (m["sender"], datetime.fromisoformat(m["timestamp"]).timestamp(), m["text"])
            for turn in raw["messages"]
            for m in turn
            if m["text"].strip()  # a few are empty; real exports have no empty text messages
        ]
        if messages:
            chats.append({"start": messages[0][1], "messages": messages})
    chats.sort(key=lambda chat: chat["start"])
    return tuple(chats)


def build_sample(
    format: str, persona: str | None = None, max_conversations: int | None = None, seed: int = 0
) -> SamplePlan:
    """The plan of a sample export: threads, messages, quirks and the expected counts."""
    if format not in SAMPLE_FORMATS:
        raise ValueError(f"unknown sample format {format!r} (choose from {SAMPLE_FORMATS})")
    persona_id = persona or DEMO_PERSONA
    rng = random.Random(f"{seed}:{format}")
    chats = [
        chat
        for chat in load_chats()
        if persona_id in (senders := {m[0] for m in chat["messages"]}) and len(senders) == 2
    ][:max_conversations]
    if not chats:
        raise ValueError(f"sender {persona_id!r} has no two-person chats in the data set")
    by_partner: dict[str, list[dict]] = defaultdict(list)
    for chat in chats:
        partner = next(m[0] for m in chat["messages"] if m[0] != persona_id)
        by_partner[partner].append(chat)
    names = {persona_id: display_name(persona_id)}
    for partner in sorted(by_partner):
        names[partner] = display_name(partner, frozenset(names.values()))
    persona_name = names[persona_id]
    resolution = 60 if format == "whatsapp-android" else 1  # Android shows no seconds

    partners = sorted(by_partner, key=lambda p: (len(by_partner[p]), names[p]))
    groups = [partners[:2]] if len(partners) >= 3 else []
    plan = SamplePlan(format, persona_name, [], len(chats))
    if format == "telegram":
        plan.skipped["thread"] += 2  # "Saved Messages" and a channel: not conversations
    for members in groups + [[p] for p in partners[len(groups) * 2 :]]:
        group = len(members) > 1
        title = GROUP_TITLE if group else names[members[0]]
        thread = SampleThread(
            key=_slug(title) + hashlib.sha1("".join(members).encode()).hexdigest()[:6],
            title=title,
            members=[persona_name] + [names[m] for m in members],
            group=group,
        )
        member_chats = sorted((c for m in members for c in by_partner[m]), key=lambda c: c["start"])
        thread.messages = _thread_messages(member_chats, names, resolution, rng, plan)
        _add_quirks(thread, QUIRKS[format], rng, plan)
        plan.threads.append(thread)
    return plan


def _thread_messages(chats, names, resolution, rng, plan) -> list[SampleMessage]:
    messages: list[SampleMessage] = []
    shift = 0.0
    for chat in chats:
        if messages and chat["start"] + shift <= messages[-1].time:
            shift = messages[-1].time + OVERLAP_SHIFT_SECONDS - chat["start"]
        for sender, seconds, text in chat["messages"]:
            name = names[sender]
            time = (seconds + shift) // resolution * resolution
            roll = rng.random()
            if roll < 0.03:
                text = f"{text} {rng.choice(EMOJI)}"
            elif roll < 0.05:
                text = f"{text} ({rng.choice(ACCENTED)})"
            elif (
                roll < 0.10
                and messages
                and messages[-1].sender == name
                and messages[-1].kind == "text"
            ):
                messages[-1].text += "\n" + text  # one multi-line message
                continue
            if name == plan.persona and rng.random() < PII_RATE:
                kind, template = rng.choice(PII)
                text = f"{text} {template.format(user=_slug(name, '.'))}"
                plan.injected_pii[kind] += 1
            messages.append(SampleMessage(name, time, text))
    return messages


def _add_quirks(thread: SampleThread, kinds, rng, plan) -> None:
    """Mark some messages (edited, shared with a comment) and insert non-text ones.

    Inserted messages take the time of the message before them, so gaps do not change.
    WhatsApp opens every chat with the encryption notice, Messenger with a "connected" or
    "named the group" notice: a "notice" message first.
    """
    result: list[SampleMessage] = []
    if plan.format.startswith("whatsapp") or plan.format == "messenger":
        first = thread.messages[0]
        result.append(SampleMessage(thread.members[0], first.time, "", "notice"))
        plan.skipped["system"] += 1
    for message in thread.messages:
        result.append(message)
        if rng.random() >= QUIRK_RATE:
            continue
        kind = rng.choice([k for k in kinds if k != "system" or thread.group])
        if kind in KEPT_KINDS:
            message.kind = kind
        else:
            result.append(SampleMessage(rng.choice(thread.members), message.time, "", kind))
            plan.skipped[kind] += 1
    thread.messages = result


def stable_number(text: str, digits: int = 10) -> int:
    """A stable pseudo-random number (ids, file names) derived from `text`."""
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % 10**digits


def other_member(thread: SampleThread, sender: str) -> str:
    """Someone in the thread other than `sender`."""
    return next((m for m in thread.members if m != sender), thread.members[0])


def _slug(text: str, separator: str = "") -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return separator.join(
        "".join(c for c in word if c.isalnum()) for word in ascii_text.lower().split()
    )
