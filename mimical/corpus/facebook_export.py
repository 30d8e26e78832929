"""Facebook Messenger exports: "Download Your Information" JSON and E2EE chat exports.

DYI layout (either root; Facebook moved it to `your_facebook_activity/` in 2024):

    [your_facebook_activity/]messages/{inbox,archived_threads,filtered_threads,
        message_requests,e2ee_cutover}/<thread>/message_1.json, message_2.json, ...
    [personal_information/]profile_information/profile_information.json

Pages hold at most 10,000 messages, newest first, `message_1.json` newest. Every string
is UTF-8 whose bytes were written as `\\u00XX` escapes (mojibake: "Ã©" for "é"); the exact
inverse is `text.encode("latin-1").decode("utf-8")`, applied only where it round-trips.

E2EE exports (messenger.com/secure_storage/dyi) are one JSON file per thread:
`{"participants": [...], "threadName": ..., "messages": [{"senderName", "text",
"timestamp", "type", "isUnsent", "media", "reactions"}]}` in proper UTF-8.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import PurePosixPath

import orjson

from mimical.corpus.sources import Source, unclaimed_members
from mimical.corpus.threads import (
    RECORD_SEPARATOR,
    ChatMessage,
    ChatThread,
    by_time,
    clean_name,
    times_in_range,
)
from mimical.errors import InputError

FOLDERS = ("inbox", "archived_threads", "filtered_threads", "message_requests", "e2ee_cutover")
PAGE = re.compile(r"(?:^|/)messages/(" + "|".join(FOLDERS) + r")/([^/]+)/message_(\d+)\.json$")
MEDIA_KEYS = ("photos", "videos", "gifs", "audio_files", "files")
# Keys that make a message more than plain text.
SPECIAL_KEYS = frozenset((*MEDIA_KEYS, "sticker", "share", "call_duration", "is_unsent"))
# How notices without a name in front begin (see BARE_NOTICE).
BARE_PREFIXES = ("You ", "Say hi", "Messages and", "The ", "Reacted ")

# Notices Messenger writes as messages, after the name of who did it (or "You").
NOTICES = {
    "placeholder": r"sent (?:an? |\d+ )?(?:attachment|photo|video|GIF|gif|sticker|voice message"
    r"|audio(?: clip)?|file|link|location|live location|contact|post|reel|story)s?\.?"
    r"|sent a GIF from .{1,40}",
    "reaction": r"reacted .{1,12} to (?:your|a|their|his|her) message ?\.?",
    "unsent": r"unsent a message\.?",
    "call": r"(?:started|joined|ended|missed) (?:a |the )?(?:video |audio |group )?(?:call|chat)\.?"
    r"|missed your (?:video )?call\.?|missed a (?:video )?call from .{1,80}",
    "system": r"(?:named the group|changed the group name to) .{1,120}|changed the group photo\.?"
    r"|(?:added .{1,80} to|removed .{1,80} from) the group\.?|(?:left|created|joined) the group\.?"
    r"|set (?:the nickname for .{1,80}|(?:his|her|their|your) own nickname|your nickname) to .+"
    r"|cleared the nickname for .{1,80}|changed the (?:chat )?theme.{0,80}"
    r"|set the (?:quick reaction|emoji) to .{1,20}|changed the emoji.{0,40}|pinned a message\.?"
    r"|turned (?:on|off) disappearing messages.{0,40}",
}
NOTICE = re.compile("|".join(f"(?P<{reason}>{pattern})" for reason, pattern in NOTICES.items()))
# Notices with no name in front.
BARE_NOTICE = re.compile(
    r"(?P<system>You are now connected on Messenger\.?|Say hi to your new Facebook friend.{0,80}"
    r"|You can now (?:message|call) .{0,80}|Messages and calls are secured with end-to-end"
    r" encryption.{0,200})|(?P<call>The (?:video )?(?:call|chat) (?:ended|is over)\.?)"
    r"|(?P<reaction>Reacted .{1,12} to your message ?\.?)"
)


def notice_reason(text: str, sender: str) -> str | None:
    """The skip reason if `text` is one of Messenger's notices rather than a message."""
    for subject in (sender, "You"):
        if subject and text.startswith(subject + " "):
            match = NOTICE.fullmatch(text, len(subject) + 1)
            if match:
                return match.lastgroup
    match = BARE_NOTICE.fullmatch(text)
    return match.lastgroup if match else None


def fix_mojibake_all(texts: list[str]) -> list[str]:
    """`fix_mojibake` of each text: the whole list in one go when every text round-trips."""
    if all(map(str.isascii, texts)):
        return texts
    try:
        joined = RECORD_SEPARATOR.join(texts).encode("latin-1").decode("utf-8")
        fixed = joined.split(RECORD_SEPARATOR)
    except (UnicodeEncodeError, UnicodeDecodeError):
        fixed = []
    return fixed if len(fixed) == len(texts) else list(map(fix_mojibake, texts))


def fix_mojibake(text: str) -> str:
    """Undo Facebook's UTF-8-as-Latin-1 escapes; leave already-correct text alone."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def load_json(source: Source, member: str):
    try:
        return orjson.loads(source.read(member))
    except orjson.JSONDecodeError as error:
        raise InputError(f"{source.where(member)}: corrupt JSON ({error})") from None


class MessengerReader:
    """All DYI threads found in an import, whichever source (zip part) holds their pages."""

    format = "messenger"

    def __init__(self, pages: dict[str, list[tuple[int, Source, str]]], profile):
        self.pages = pages  # thread id → [(page number, source, member)]
        self.profile = profile  # (source, member) of profile_information.json, or None

    @classmethod
    def detect(cls, sources: list[Source], claimed: set) -> MessengerReader | None:
        pages: dict[str, list[tuple[int, Source, str]]] = defaultdict(list)
        profile = None
        for source in sources:
            for member in source.members():
                match = PAGE.search(member.replace("\\", "/"))  # some zip tools write "\\"
                if match:
                    folder, thread, number = match.groups()
                    thread_pages = pages[f"messenger:{folder}/{thread}"]
                    # The same page twice (an export given both zipped and unzipped) counts once.
                    if all(int(number) != page[0] for page in thread_pages):
                        thread_pages.append((int(number), source, member))
                    claimed.add((id(source), member))
                elif member.endswith("profile_information.json") and profile is None:
                    profile = (source, member)
                    claimed.add((id(source), member))
        return cls(dict(pages), profile) if pages else None

    def __len__(self) -> int:
        return len(self.pages)

    def owner(self) -> str | None:
        if self.profile is None:
            return None
        data = load_json(*self.profile)
        for key in ("profile_v2", "profile"):
            name = (data.get(key) or {}).get("name") if isinstance(data, dict) else None
            if isinstance(name, dict) and name.get("full_name"):
                return clean_name(fix_mojibake(name["full_name"]))
        return None

    def participant_sets(self) -> Iterator[set[str]]:
        for pages in self.pages.values():
            _, source, member = min(pages, key=lambda page: page[0])
            yield _participants(load_json(source, member))

    def thread_ids(self) -> list[str]:
        return list(self.pages)

    def threads(self, skipped: Counter) -> Iterator[ChatThread]:
        for thread_id in self.thread_ids():
            yield self.read_thread(thread_id, skipped)

    def read_thread(self, thread_id: str, skipped: Counter) -> ChatThread:
        """One thread, all its pages; threads are independent, so workers can share them out."""
        pages = sorted(self.pages[thread_id], key=lambda page: page[0])  # message_1 (newest) first
        thread = ChatThread(id=thread_id, title="", format=self.format)
        newest_first = []
        for _, source, member in pages:
            data = load_json(source, member)
            if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
                raise InputError(f"{source.where(member)}: no 'messages' list")
            thread.participants |= _participants(data)
            thread.title = thread.title or fix_mojibake(data.get("title") or "")
            newest_first.extend(data["messages"])
        where = pages[0][1].where(pages[0][2])
        try:
            thread.messages = _messages(newest_first[::-1], skipped)
        except (AttributeError, TypeError) as error:  # e.g. a message that is not an object
            raise InputError(f"{where}: unexpected message structure ({error})") from None
        if not times_in_range(thread.messages):
            raise InputError(f"{where}: a timestamp_ms that is not a message time")
        return thread


def _messages(raws: list, skipped: Counter) -> list[ChatMessage]:
    """Text messages, oldest first (`raws` are nearly so: pages can overlap).

    Nearly every message is plain text (no media, share, call...): their mojibake is fixed
    all at once (`fix_mojibake_all`). Only the rest, and texts that may be notices ("Ann
    sent a photo."), go through `dyi_text` one by one.
    """
    raw_names = {raw.get("sender_name") for raw in raws}
    names = {raw_name: clean_name(fix_mojibake(raw_name or "")) for raw_name in raw_names}
    notice_prefixes = (*{name + " " for name in names.values()}, *BARE_PREFIXES)
    plain_contents = [
        raw.get("content") or ""
        if raw.get("type", "Generic") == "Generic" and SPECIAL_KEYS.isdisjoint(raw)
        else ""
        for raw in raws
    ]
    texts = [text.strip() for text in fix_mojibake_all(plain_contents)]
    for index, text in enumerate(texts):
        if not text or text.startswith(notice_prefixes):
            texts[index] = dyi_text(raws[index], skipped)
    messages = [
        (names[raw.get("sender_name")], (raw.get("timestamp_ms") or 0) / 1000, text)
        for raw, text in zip(raws, texts, strict=True)
        if text is not None
    ]
    messages.sort(key=by_time)  # nearly sorted already: a linear pass
    return messages


def _participants(data) -> set[str]:
    names = set()
    participants = data.get("participants") if isinstance(data, dict) else None
    for participant in participants if isinstance(participants, list) else ():
        name = participant.get("name") if isinstance(participant, dict) else participant
        if isinstance(name, str) and name:
            names.add(clean_name(fix_mojibake(name)))
    return names


def dyi_text(message: dict, skipped: Counter) -> str | None:
    """The human text of one DYI message, or None (counted in `skipped`) if it has none."""
    kind = message.get("type", "Generic")
    if message.get("is_unsent"):
        skipped["unsent"] += 1
        return None
    if kind == "Call" or "call_duration" in message:
        skipped["call"] += 1
        return None
    if kind in ("Subscribe", "Unsubscribe"):
        skipped["system"] += 1
        return None
    if "sticker" in message:
        skipped["sticker"] += 1
        return None
    content = message.get("content")
    has_media = any(message.get(key) for key in MEDIA_KEYS)
    if not content or not content.strip():
        skipped["media" if has_media else "share" if "share" in message else "empty"] += 1
        return None
    text = fix_mojibake(content).strip()
    reason = notice_reason(text, fix_mojibake(message.get("sender_name") or ""))
    if reason:
        skipped["media" if reason == "placeholder" and has_media else reason] += 1
        return None
    if kind == "Share" or "share" in message:
        link = (message.get("share") or {}).get("link") or ""
        own = text.replace(fix_mojibake(link), "").strip() if link else text
        if not own or own.startswith(("http://", "https://")) and " " not in own:
            skipped["share"] += 1
            return None
    return text


# E2EE message types that carry the sender's words (a caption counts) or only media.
E2EE_TEXT_TYPES = ("text", "generic", "message", "link", "share")
E2EE_MEDIA_TYPES = ("media", "image", "photo", "video", "audio", "file", "gif", "attachment")


class MessengerE2EEReader:
    """Messenger end-to-end encrypted chat exports: one JSON file per thread."""

    format = "messenger-e2ee"

    def __init__(self, files: list[tuple[Source, str]]):
        self.files = files

    @classmethod
    def detect(cls, sources: list[Source], claimed: set) -> MessengerE2EEReader | None:
        files = []
        for source, member, sniff in unclaimed_members(sources, claimed, ".json", 65536):
            e2ee_thread = b'"participants"' in sniff and b'"threadName"' in sniff
            if b'"senderName"' in sniff or e2ee_thread:
                files.append((source, member))
                claimed.add((id(source), member))
        return cls(files) if files else None

    def __len__(self) -> int:
        return len(self.files)

    def owner(self) -> str | None:
        return None

    def participant_sets(self) -> Iterator[set[str]]:
        for source, member in self.files:
            yield _e2ee_participants(self._load(source, member))

    def _load(self, source: Source, member: str) -> dict:
        data = load_json(source, member)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise InputError(f"{source.where(member)}: no 'messages' list")
        return data

    def threads(self, skipped: Counter) -> Iterator[ChatThread]:
        for source, member in self.files:
            try:
                yield self._thread(source, member, skipped)
            except (AttributeError, TypeError, ValueError) as error:  # e.g. a number as text
                where = source.where(member)
                raise InputError(f"{where}: unexpected message structure ({error})") from None

    def _thread(self, source: Source, member: str, skipped: Counter) -> ChatThread:
        data = self._load(source, member)
        stem = PurePosixPath(member).stem
        thread = ChatThread(
            id=f"messenger-e2ee:{stem}",
            title=data.get("threadName") or stem,
            format=self.format,
            participants=_e2ee_participants(data),
        )
        for raw in data["messages"]:
            if not isinstance(raw, dict):
                raise InputError(f"{source.where(member)}: unexpected message {raw!r:.40}")
            text = e2ee_text(raw, skipped)
            if text is not None:
                sender = clean_name(raw.get("senderName"))
                thread.messages.append(
                    ChatMessage(sender, (raw.get("timestamp") or 0) / 1000, text)
                )
        thread.messages.sort(key=by_time)
        if not times_in_range(thread.messages):
            raise InputError(f"{source.where(member)}: a timestamp that is not a message time")
        return thread


def _e2ee_participants(data: dict) -> set[str]:
    participants = data.get("participants")
    names = {
        clean_name(p if isinstance(p, str) else p.get("name") if isinstance(p, dict) else "")
        for p in (participants if isinstance(participants, list) else ())
    }
    names.discard("")
    return names


def e2ee_text(message: dict, skipped: Counter) -> str | None:
    """The human text of one E2EE message, or None (counted in `skipped`) if it has none."""
    kind = str(message.get("type") or "text").lower()
    text = (message.get("text") or "").strip()
    if message.get("isUnsent"):
        skipped["unsent"] += 1
    elif "call" in kind:
        skipped["call"] += 1
    elif kind == "sticker":
        skipped["sticker"] += 1
    elif not text:
        skipped["media" if message.get("media") or kind in E2EE_MEDIA_TYPES else "empty"] += 1
    elif kind not in E2EE_TEXT_TYPES and kind not in E2EE_MEDIA_TYPES:
        skipped["system"] += 1  # admin and other notices
    elif reason := notice_reason(text, message.get("senderName") or ""):
        skipped[reason] += 1
    else:
        return text
    return None
