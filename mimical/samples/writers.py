"""Render a `SamplePlan` in each export format, with the format's real-world quirks.

Used by `mimical.samples.export.write_sample_export`; see the reader modules
(`mimical.corpus.facebook_export`, `whatsapp_export`, `telegram_export`) for what each quirk is.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import orjson

from mimical.samples import whatsapp
from mimical.samples.plan import (
    SampleMessage,
    SamplePlan,
    SampleThread,
    other_member,
    stable_number,
)

MESSENGER_FOLDERS = ("inbox",) * 6 + (
    "archived_threads",
    "filtered_threads",
    "message_requests",
    "e2ee_cutover",
)
MESSENGER_PAGE_SIZE = 100  # Facebook's is 10,000; small here so samples are paginated
SHARED_LINK = "https://www.bbc.co.uk/news/technology-12345678"


# --- Facebook Messenger "Download Your Information" -------------------------------------


def mojibake_json(data) -> bytes:
    """JSON the way Facebook writes it: each UTF-8 byte of a string as a \\u00XX escape."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    latin = text.encode("utf-8").decode("latin-1")
    return re.sub(r"[\x80-\xff]", lambda m: f"\\u{ord(m.group()):04x}", latin).encode("ascii")


def messenger_message(plan: SamplePlan, thread: SampleThread, message: SampleMessage, rng) -> dict:
    sender, kind = message.sender, message.kind
    raw: dict = {"sender_name": sender, "timestamp_ms": int(message.time * 1000)}
    other = other_member(thread, sender)
    you = sender == plan.persona
    if kind in ("text", "share_text"):
        raw["content"] = message.text
        if rng.random() < 0.05:
            raw["reactions"] = [{"reaction": "❤", "actor": other}]
        if kind == "share_text":
            raw["share"] = {"link": SHARED_LINK}
    elif kind == "media":
        key = rng.choice(("photos", "videos", "gifs", "audio_files", "files"))
        raw[key] = [
            {"uri": f"messages/inbox/{thread.key}/{key}/{stable_number(str(message.time))}.bin"}
        ]
        if rng.random() < 0.3:
            raw["content"] = "You sent a photo." if you else f"{sender} sent a photo."
    elif kind == "sticker":
        raw["sticker"] = {"uri": f"messages/stickers_used/{stable_number(sender)}.png"}
    elif kind == "call":
        raw.update(content=f"{sender} started a video chat.", call_duration=63, type="Call")
    elif kind == "unsent":
        raw.update(content="", is_unsent=True)
    elif kind == "reaction":
        raw["content"] = f"{sender} reacted 😆 to your message "
    elif kind == "placeholder":
        raw["content"] = "You sent an attachment." if you else f"{sender} sent an attachment."
    elif kind == "share":
        raw.update(content=SHARED_LINK, share={"link": SHARED_LINK}, type="Share")
    elif kind == "system":
        raw["content"] = rng.choice(
            (
                f"{sender} added {other} to the group.",
                f"{sender} set the nickname for {other} to Bubbles.",
                f"{sender} changed the group photo.",
            )
        )
    elif kind == "notice":
        raw["content"] = (
            f"{sender} named the group {thread.title}."
            if thread.group
            else "You are now connected on Messenger"
        )
    raw["is_geoblocked_for_viewer"] = False
    return raw


def write_messenger(plan: SamplePlan, out: Path, rng: random.Random, legacy: bool) -> None:
    root = out / ("messages" if legacy else "your_facebook_activity/messages")
    if legacy:
        profile = out / "profile_information" / "profile_information.json"
        profile_data = {"profile": {"name": {"full_name": plan.persona}}}
    else:
        profile = out / "personal_information/profile_information/profile_information.json"
        profile_data = {"profile_v2": {"name": {"full_name": plan.persona}}}
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_bytes(mojibake_json(profile_data))
    for index, thread in enumerate(plan.threads):
        folder = MESSENGER_FOLDERS[index % len(MESSENGER_FOLDERS)]
        name = f"{thread.key}_{stable_number(thread.key)}"
        directory = root / folder / name
        directory.mkdir(parents=True, exist_ok=True)
        newest_first = [messenger_message(plan, thread, m, rng) for m in reversed(thread.messages)]
        if legacy:
            for raw in newest_first:
                raw.setdefault("type", "Generic")
        pages = [
            newest_first[start : start + MESSENGER_PAGE_SIZE]
            for start in range(0, len(newest_first), MESSENGER_PAGE_SIZE)
        ]
        for number, page in enumerate(pages, 1):
            data = {
                "participants": [{"name": member} for member in thread.members],
                "messages": page,
                "title": thread.title,
                "is_still_participant": True,
                "thread_path": f"{folder}/{name}",
                "magic_words": [],
            }
            if legacy:
                data["thread_type"] = "RegularGroup" if thread.group else "Regular"
            (directory / f"message_{number}.json").write_bytes(mojibake_json(data))


# --- Messenger end-to-end encrypted chats ------------------------------------------------


def write_messenger_e2ee(plan: SamplePlan, out: Path, rng: random.Random, legacy: bool) -> None:
    for thread in plan.threads:
        messages = []
        for message in thread.messages:
            raw = {
                "isUnsent": message.kind == "unsent",
                "media": [],
                "reactions": [],
                "senderName": message.sender,
                "text": message.text if message.kind == "text" else "",
                "timestamp": int(message.time * 1000),
                "type": "text",
            }
            if message.kind == "media":
                raw.update(
                    media=[{"uri": f"media/{stable_number(str(message.time))}.jpg"}], type="media"
                )
            messages.append(raw)
        data = {"participants": thread.members, "threadName": thread.title, "messages": messages}
        (out / f"{thread.key}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


# --- Telegram Desktop --------------------------------------------------------------------


def telegram_text(text: str, rng) -> tuple[object, list]:
    """Some texts as Telegram's list of strings and entity objects (same concatenation)."""
    words = text.split(" ")
    if len(words) < 3 or rng.random() > 0.1:
        return text, [{"type": "plain", "text": text}]
    head, bold, tail = words[0] + " ", words[1], " " + " ".join(words[2:])
    entities = [
        {"type": "plain", "text": head},
        {"type": "bold", "text": bold},
        {"type": "plain", "text": tail},
    ]
    return [head, {"type": "bold", "text": bold}, tail], entities


def telegram_message(plan, thread, message: SampleMessage, number: int, rng) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(message.time))
    raw = {
        "id": number,
        "type": "message",
        "date": stamp,
        "date_unixtime": str(int(message.time)),
        "from": message.sender,
        "from_id": f"user{stable_number(message.sender)}",
    }
    kind = message.kind
    if kind in ("text", "edited"):
        raw["text"], raw["text_entities"] = telegram_text(message.text, rng)
        if kind == "edited":
            raw.update(edited=stamp, edited_unixtime=str(int(message.time) + 30))
        return raw
    raw.update(text="", text_entities=[])
    if kind == "media":
        if rng.random() < 0.5:
            raw.update(photo=f"photos/photo_{number}.jpg", width=1280, height=960)
        else:
            raw.update(
                file=f"voice_messages/audio_{number}.ogg",
                media_type="voice_message",
                mime_type="audio/ogg",
                duration_seconds=4,
            )
    elif kind == "sticker":
        raw.update(file=f"stickers/sticker_{number}.webp", media_type="sticker", sticker_emoji="😂")
    elif kind == "forwarded":
        raw.update(forwarded_from="Daily Memes", text="when the code works on the first try")
    elif kind == "system":
        raw = {key: raw[key] for key in ("id", "date", "date_unixtime")}
        raw.update(
            type="service",
            actor=message.sender,
            actor_id=f"user{stable_number(message.sender)}",
            action="invite_members",
            members=[other_member(thread, message.sender)],
            text="",
            text_entities=[],
        )
    return raw


def write_telegram(plan: SamplePlan, out: Path, rng: random.Random, legacy: bool) -> None:
    first, _, last = plan.persona.partition(" ")
    chats = []
    for thread in plan.threads:
        messages = [
            telegram_message(plan, thread, m, n, rng) for n, m in enumerate(thread.messages, 1)
        ]
        chats.append(
            {
                "name": thread.title,
                "type": "private_group" if thread.group else "personal_chat",
                "id": stable_number(thread.key),
                "messages": messages,
            }
        )
    start = plan.threads[0].messages[0].time
    persona_message = SampleMessage(plan.persona, start, "remember to buy milk")
    chats.append(
        {
            "type": "saved_messages",
            "id": 1,
            "messages": [telegram_message(plan, None, persona_message, 1, rng)],
        }
    )
    news = SampleMessage("Daily News", start, "Top stories this morning")
    chats.append(
        {
            "name": "Daily News",
            "type": "public_channel",
            "id": 2,
            "messages": [telegram_message(plan, None, news, 1, rng)],
        }
    )
    data = {
        "about": "Here is the data you requested.",
        "personal_information": {
            "user_id": stable_number(plan.persona),
            "first_name": first,
            "last_name": last,
            "phone_number": "+44 7700 900123",
            "bio": "",
        },
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
    }
    (out / "result.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


WRITERS = {
    "messenger": write_messenger,
    "messenger-e2ee": write_messenger_e2ee,
    "whatsapp-android": whatsapp.write_whatsapp_android,
    "whatsapp-ios": whatsapp.write_whatsapp_ios,
    "telegram": write_telegram,
}
