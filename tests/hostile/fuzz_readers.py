"""Fuzz every export reader: any input ends in a corpus or an `InputError`, nothing else.

Run by `tests/hostile/test_fuzz.py` in a child process whose address space is capped
(`resource.setrlimit`), so an input that makes a reader's memory explode fails the
test instead of the machine. Each reader gets inputs shaped like its format with
hostile values anywhere (wrong types, huge and non-finite numbers, odd text), byte-level
damage to a valid file, and the deep nesting of the hostile corpus.

    python -m tests.hostile.fuzz_readers [EXAMPLES_PER_READER]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimical.corpus.importer import import_exports
from mimical.errors import MimicalError
from tests.hostile import cases

# Values that have broken parsers: wrong types, non-finite and huge numbers, odd text.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e400", "nan", "-inf", "", " ", "0", "99999999999999999999", "\u202e"]),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def hostile_or(valid):
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(valid, valid, JSON_VALUES)


NAMES = hostile_or(st.sampled_from(["Ann", "Bob", "Zoé Ünïcode", ""]))
TEXTS = hostile_or(st.text(max_size=40))
MILLIS = hostile_or(st.integers(min_value=0, max_value=2_000_000_000_000))


@st.composite
def messenger_page(draw) -> bytes:
    message = st.fixed_dictionaries(
        {"sender_name": NAMES, "timestamp_ms": MILLIS, "content": TEXTS},
        optional={
            "type": hostile_or(st.just("Generic")),
            "photos": JSON_VALUES,
            "is_unsent": JSON_VALUES,
            "reactions": JSON_VALUES,
        },
    )
    page = draw(
        st.fixed_dictionaries(
            {
                "participants": hostile_or(
                    st.lists(st.fixed_dictionaries({"name": NAMES}), max_size=3)
                ),
                "messages": hostile_or(st.lists(hostile_or(message), max_size=8)),
            },
            optional={"title": TEXTS, "thread_path": TEXTS},
        )
    )
    return json.dumps(page).encode()


@st.composite
def e2ee_thread(draw) -> bytes:
    message = st.fixed_dictionaries(
        {"senderName": NAMES, "timestamp": MILLIS, "text": TEXTS},
        optional={
            "type": hostile_or(st.sampled_from(["text", "call", "sticker"])),
            "isUnsent": JSON_VALUES,
            "media": JSON_VALUES,
        },
    )
    thread = draw(
        st.fixed_dictionaries(
            {
                "participants": hostile_or(st.lists(NAMES, max_size=3)),
                "threadName": TEXTS,
                "messages": hostile_or(st.lists(hostile_or(message), max_size=8)),
            }
        )
    )
    return json.dumps(thread).encode()


@st.composite
def telegram_export(draw) -> bytes:
    message = st.fixed_dictionaries(
        {
            "id": JSON_VALUES,
            "type": hostile_or(st.just("message")),
            "date": TEXTS,
            "date_unixtime": hostile_or(st.integers(0, 2_000_000_000).map(str)),
            "from": NAMES,
            "from_id": hostile_or(st.sampled_from(["user1", "user2"])),
            "text": hostile_or(
                st.lists(
                    st.one_of(TEXTS, st.fixed_dictionaries({"type": TEXTS, "text": TEXTS})),
                    max_size=3,
                )
            ),
        },
    )
    chat = st.fixed_dictionaries(
        {
            "name": NAMES,
            "type": hostile_or(st.just("personal_chat")),
            "id": JSON_VALUES,
            "messages": hostile_or(st.lists(hostile_or(message), max_size=8)),
        }
    )
    if draw(st.booleans()):
        return json.dumps(draw(chat)).encode()
    export = {
        "personal_information": hostile_or(
            st.fixed_dictionaries({"user_id": JSON_VALUES, "first_name": NAMES, "last_name": NAMES})
        ),
        "chats": hostile_or(
            st.fixed_dictionaries({"list": hostile_or(st.lists(hostile_or(chat), max_size=3))})
        ),
    }
    return json.dumps(draw(st.fixed_dictionaries(export))).encode()


@st.composite
def whatsapp_chat(draw) -> bytes:
    date = draw(st.sampled_from(["12/01/2024", "31/12/99", "1/2/03", "99/99/9999", "2024-01-12"]))
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        time = draw(st.sampled_from(["10:00", "9:05 PM", "25:61", "10:00:00", ""]))
        name = draw(st.sampled_from(["Ann", "Bob", "", "+44 7700 900123", "\u200eAnn"]))
        text = draw(st.text(max_size=30))
        style = draw(st.sampled_from(["{d}, {t} - {n}: {x}", "[{d}, {t}] {n}: {x}", "{x}"]))
        lines.append(style.format(d=date, t=time, n=name, x=text))
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


@st.composite
def damaged(draw, valid: bytes) -> bytes:
    """A valid file cut short, with bytes changed, or nested absurdly deep."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 9)) == 0:
        data = bytearray(cases.deep_nesting(draw(st.integers(70, 20_000))))
    return bytes(data)


def import_refuses_or_succeeds(files: dict[str, bytes], zipped: bool) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="mimical-fuzz-"))
    try:
        if zipped:
            export = scratch / "export.zip"
            export.write_bytes(cases.zip_bytes(files))
        else:
            export = scratch / "export"
            for name, data in files.items():
                (export / name).parent.mkdir(parents=True, exist_ok=True)
                (export / name).write_bytes(data)
        output = scratch / "out" / "corpus.jsonl"
        try:
            import_exports(export, output, workers=0)
        except MimicalError:
            assert not output.exists(), "a refused import left a corpus behind"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


READERS = {
    "messenger": (cases.MESSENGER_MEMBER, messenger_page(), cases.messenger_page()),
    "messenger-e2ee": (
        "thread.json",
        e2ee_thread(),
        b'{"participants": ["Ann", "Bob"], '
        b'"threadName": "Bob", "messages": [{"senderName": "Ann", '
        b'"timestamp": 1700000000000, "text": "hello there", "type": "text"}]}',
    ),
    "telegram": ("result.json", telegram_export(), cases.telegram_export()),
    "whatsapp": (
        "WhatsApp Chat with Bob.txt",
        whatsapp_chat(),
        b"12/01/2024, 10:00 - Ann: hi there\n12/01/2024, 10:01 - Bob: hello\n",
    ),
}


def fuzz(reader: str, examples: int) -> None:
    member, shaped, valid = READERS[reader]
    inputs = st.one_of(shaped, damaged(valid))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=inputs, zipped=st.booleans())
    def check(data: bytes, zipped: bool) -> None:
        import_refuses_or_succeeds({member: data}, zipped)

    check()


def main(examples: int) -> int:
    failed = []
    for reader in READERS:
        try:
            fuzz(reader, examples)
        except Exception as error:  # report every reader, then fail
            failed.append(reader)
            print(f"--- {reader}: {type(error).__name__}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
