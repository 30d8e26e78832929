"""Sample WhatsApp "Export chat" files (Android .txt or .zip, iOS .zip with `_chat.txt`).

Used by `mimical.samples.writers`; the quirks are the ones `mimical.corpus.whatsapp_export`
reads: three date/clock styles per platform, German texts, U+202F before AM/PM, U+200E
marks on iOS, "~ Name" senders, BOM, CRLF, media/deleted/call/notice lines.
"""

from __future__ import annotations

import random
import time
import zipfile
from pathlib import Path

from mimical.samples.plan import SamplePlan, SampleThread, other_member, stable_number

# (header format, 12-hour clock, localized texts) per style; files cycle through them.
ANDROID_STYLES = (
    ("{M}/{D}/{yy}, {h}:{mm}\u202f{AMPM} - ", "en"),  # US, recent Android: U+202F before PM
    ("{DD}/{MM}/{yyyy}, {HH}:{mm} - ", "en"),  # UK
    ("{DD}.{MM}.{yy}, {HH}:{mm} - ", "de"),  # German
)
IOS_STYLES = (
    ("[{DD}.{MM}.{yy}, {HH}:{mm}:{ss}] ", "en"),
    ("[{M}/{D}/{yy}, {h}:{mm}:{ss}\u202f{AMPM}] ", "en"),
    ("[{DD}/{MM}/{yyyy}, {HH}:{mm}:{ss}] ", "en"),
)
WHATSAPP_TEXTS = {
    "en": {
        "notice": "Messages and calls are end-to-end encrypted. No one outside of this chat, not"
        " even WhatsApp, can read or listen to them. Tap to learn more.",
        "media": "<Media omitted>",
        "deleted": "This message was deleted",
        "you_deleted": "You deleted this message",
        "call": "Missed voice call",
        "edited": "<This message was edited>",
    },
    "de": {
        "notice": "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb"
        " dieses Chats kann sie lesen oder anhören, nicht einmal WhatsApp.",
        "media": "<Medien ausgeschlossen>",
        "deleted": "Diese Nachricht wurde gelöscht",
        "you_deleted": "Du hast diese Nachricht gelöscht",
        "call": "Verpasster Sprachanruf",
        "edited": "<Diese Nachricht wurde bearbeitet>",
    },
}


def whatsapp_stamp(pattern: str, seconds: float) -> str:
    t = time.gmtime(seconds)
    hour12 = t.tm_hour % 12 or 12
    return pattern.format(
        M=t.tm_mon,
        D=t.tm_mday,
        DD=f"{t.tm_mday:02}",
        MM=f"{t.tm_mon:02}",
        yy=f"{t.tm_year % 100:02}",
        yyyy=t.tm_year,
        h=hour12,
        HH=f"{t.tm_hour:02}",
        mm=f"{t.tm_min:02}",
        ss=f"{t.tm_sec:02}",
        AMPM="PM" if t.tm_hour >= 12 else "AM",
    )


def android_chat(plan: SamplePlan, thread: SampleThread, style: int, rng) -> str:
    pattern, language = ANDROID_STYLES[style]
    texts = WHATSAPP_TEXTS[language]
    lines = []
    for message in thread.messages:
        stamp = whatsapp_stamp(pattern, message.time)
        sender, kind = message.sender, message.kind
        if kind == "notice":
            lines.append(stamp + texts["notice"])
            continue
        if kind == "system":
            other = other_member(thread, sender)
            lines.append(
                stamp
                + rng.choice(
                    (
                        f"{sender} added {other}",
                        f"{sender} left",
                        f'{sender} changed the subject to "{thread.title}"',
                    )
                )
            )
            continue
        body = {
            "text": message.text,
            "edited": f"{message.text} {texts['edited']}",
            "media": rng.choice(
                (
                    texts["media"],
                    f"IMG-20180502-WA{stable_number(stamp, 4):04}.jpg (file attached)",
                    "location: https://maps.google.com/?q=51.5,-0.1",
                )
            ),
            "deleted": texts["you_deleted" if sender == plan.persona else "deleted"],
            "call": texts["call"],
        }[kind]
        lines.append(f"{stamp}{sender}: {body}")
    return "\n".join(lines) + "\n"


def ios_chat(plan: SamplePlan, thread: SampleThread, style: int, rng) -> str:
    pattern, _ = IOS_STYLES[style]
    lines = []
    for message in thread.messages:
        stamp = whatsapp_stamp(pattern, message.time)
        sender, kind = message.sender, message.kind
        if thread.group and sender == thread.members[-1]:
            sender = f"~\u202f{sender}"  # not in the phone's contacts
        if kind == "notice":
            text = WHATSAPP_TEXTS["en"]["notice"].replace(" Tap to learn more.", "")
            lines.append(f"{stamp}{thread.title}: \u200e{text}")
            continue
        if kind == "system":
            other = other_member(thread, message.sender)
            lines.append(f"\u200e{stamp}{thread.title}: \u200e{message.sender} added {other}")
            continue
        if kind in ("text", "edited"):
            body = message.text + (" \u200e<This message was edited>" if kind == "edited" else "")
            lines.append(f"{stamp}{sender}: {body}")
            continue
        body = {
            "media": rng.choice(
                (
                    "image omitted",
                    "video omitted",
                    "GIF omitted",
                    f"<attached: 000000{stable_number(stamp, 2):02}-PHOTO-2018-05-02.jpg>",
                )
            ),
            "sticker": "sticker omitted",
            "deleted": "You deleted this message."
            if sender == plan.persona
            else "This message was deleted.",
            "call": "Missed voice call",
        }[kind]
        lines.append(f"\u200e{stamp}{sender}: \u200e{body}")
    newline = "\r\n" if style == 2 else "\n"
    return newline.join(lines) + newline


def write_whatsapp_android(plan: SamplePlan, out: Path, rng: random.Random, legacy: bool) -> None:
    for index, thread in enumerate(plan.threads):
        name = f"WhatsApp Chat with {thread.title}"
        style = index % len(ANDROID_STYLES)
        text = android_chat(plan, thread, style, rng)
        data = ("\ufeff" if style == 2 else "").encode() + text.encode()
        if index % 3 == 1:  # shared through "Export chat" → a .zip with media
            with zipfile.ZipFile(out / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"{name}.txt", data)
                archive.writestr("IMG-20180502-WA0001.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
        else:
            (out / f"{name}.txt").write_bytes(data)


def write_whatsapp_ios(plan: SamplePlan, out: Path, rng: random.Random, legacy: bool) -> None:
    for index, thread in enumerate(plan.threads):
        text = ios_chat(plan, thread, index % len(IOS_STYLES), rng)
        path = out / f"WhatsApp Chat - {thread.title}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("_chat.txt", text.encode())
            archive.writestr("00000012-PHOTO-2018-05-02.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
