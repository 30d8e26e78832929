"""WhatsApp "Export chat" text files, from Android or iOS, loose or in the .zip WhatsApp shares.

One file is one chat. Each message starts with a header line:

    Android:  12/31/23, 9:41 PM - Name: text        31.12.23, 21:41 - Name: text
    iOS:      [31.12.23, 21:41:07] Name: text       [12/31/23, 9:41:07 PM] Name: text

and continues over the following lines until the next header. What varies with the
phone's locale and app version, all handled here:

- day-first, month-first or year-first dates; the order is inferred per file from the
  values (a 13+ can only be a day) and, when every value is ambiguous, from which order
  keeps the file chronological, then from the separator and clock style;
- 12- or 24-hour clocks, "PM", "pm", "p. m.", "p.m.";
- invisible marks: U+200E/U+200F (bidi marks before media and system lines on iOS),
  U+202F (narrow no-break space before AM/PM), U+00A0, U+2009; a BOM; CRLF line ends;
- "~ Name" for senders not in the phone's contacts;
- media ("<Media omitted>", "image omitted", "<attached: ...>", "IMG-1.jpg (file attached)",
  localized variants), stickers, deleted messages, calls, polls, locations, encryption and
  group notices (senderless lines on Android, U+200E-prefixed lines on iOS), and the
  "<This message was edited>" marker (stripped, the text is kept).

The export carries no time zone: times are taken as UTC (only gaps matter for segmentation).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePosixPath

from mimical.corpus.sources import Source, read_text, unclaimed_members
from mimical.corpus.threads import ChatMessage, ChatThread, clean_name
from mimical.errors import InputError

_DATE = r"(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})"
_TIME = r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
_AMPM = r"(?:\s?(?P<ampm>[AaPp]\.?\s?[Mm]\.?))?"
HEADERS = {
    "whatsapp-android": re.compile(rf"^{_DATE},?\s{_TIME}{_AMPM}\s[-\u2013]\s(?P<rest>.*)$"),
    "whatsapp-ios": re.compile(rf"^\[{_DATE},?\s{_TIME}{_AMPM}\]\s(?P<rest>.*)$"),
}
# Marks that are invisible but break matching; removed from names and texts.
MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
SPACES = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2009": " "})

MEDIA = re.compile(
    r"^(?:<(?:Media omitted|Medien ausgeschlossen|Multimedia omitido|Médias omis|Mídia oculta"
    r"|Media omessi|Media weggelaten|Medya dahil edilmedi)>"
    r"|(?:image|video|audio|GIF|document|Contact card|photo) omitted"
    r"|(?:imagen|video|audio|documento) omitid[oa]|(?:Bild|Video|Audio|GIF|Dokument)"
    r" weggelassen|(?:image|vidéo|audio) absente?|görüntü dahil edilmedi"
    r"|<(?:attached|adjunto|Anhang|anexo|allegato|pièce jointe) ?: [^>]+>"
    r"|.+\.\w{2,5} \((?:file attached|Datei angehängt|archivo adjunto|fichier joint"
    r"|arquivo anexado|file allegato)\)"
    r"|null|(?:location|Standort|ubicación|localisation): https?://\S+"
    r"|Live location shared|POLL:\n.*|.*\.vcf \(.*\)|document omitted.*)$",
    re.IGNORECASE | re.DOTALL,
)
STICKER = re.compile(
    r"^(?:sticker omitted|<?Sticker weggelassen>?|sticker omitido|autocollant omis)$", re.I
)
DELETED = re.compile(
    r"^(?:This message was deleted|You deleted this message|Diese Nachricht wurde gelöscht"
    r"|Du hast diese Nachricht gelöscht|Este mensaje fue eliminado|Eliminaste este mensaje"
    r"|Se eliminó este mensaje|Ce message a été supprimé|Vous avez supprimé ce message"
    r"|Essa mensagem foi apagada|Você apagou esta mensagem|Questo messaggio è stato eliminato"
    r"|Hai eliminato questo messaggio|Bu mesaj silindi|Bu mesajı sildiniz"
    r"|Waiting for this message\. This may take a while)\.?$",
    re.IGNORECASE,
)
EDITED = re.compile(
    r"\s*<(?:This message was edited|Diese Nachricht wurde bearbeitet|Se editó este mensaje"
    r"|Ce message a été modifié|Mensagem editada|Messaggio modificato|Bu mesaj düzenlendi)\.?>$"
)
CALL = re.compile(
    r"^(?:Missed (?:group )?(?:voice|video) call|(?:Voice|Video) call|Verpasster"
    r" (?:Sprach|Video)anruf|(?:Sprach|Video)anruf|Llamada (?:de voz |de video )?perdida"
    r"|Appel (?:vocal|vidéo) manqué|Chamada de (?:voz|vídeo) perdida)(?:[,.].*)?$",
    re.IGNORECASE,
)
ENCRYPTION = re.compile(
    r"end-to-end encrypt|Ende-zu-Ende|de extremo a extremo|de bout en bout|uçtan uca"
    r"|ponta a ponta|crittografia end-to-end",
    re.IGNORECASE,
)
# A "sender" that is really the start of a group notice containing ": ".
NOTICE_SENDER = re.compile(
    r" (?:changed|added|removed|left|joined|created|deleted|pinned|started|set|turned)\b"
    r"|[\"“”«]"
)
TITLE_PREFIXES = re.compile(
    r"^(?:WhatsApp Chat (?:with|-)|WhatsApp-Chat mit|Chat de WhatsApp con|Discussion WhatsApp"
    r" avec|Conversa do WhatsApp com)\s*",
    re.IGNORECASE,
)


class WhatsAppReader:
    """All WhatsApp chat files found in an import (one thread each)."""

    format = "whatsapp"

    def __init__(self, files: list[tuple[Source, str, str]]):
        self.files = files  # (source, member, style)

    @classmethod
    def detect(cls, sources: list[Source], claimed: set) -> WhatsAppReader | None:
        files = []
        for source, member, sniff in unclaimed_members(sources, claimed, ".txt", 8192):
            style = sniff_style(sniff)
            if style:
                files.append((source, member, style))
                claimed.add((id(source), member))
        return cls(files) if files else None

    def __len__(self) -> int:
        return len(self.files)

    def owner(self) -> str | None:
        return None  # WhatsApp exports never say who exported them

    def participant_sets(self) -> Iterator[set[str]]:
        for thread in self.threads(Counter()):
            yield thread.participants

    def threads(self, skipped: Counter) -> Iterator[ChatThread]:
        for source, member, style in self.files:
            yield parse_chat(source, member, style, skipped)


def sniff_style(data: bytes) -> str | None:
    """The style of export the first lines are in ("whatsapp-android", "whatsapp-ios"), if any."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="ignore")
    else:
        text = data.decode("utf-8-sig", errors="ignore")
    for line in text.splitlines()[:40]:
        line = _normalize(line)
        for style, pattern in HEADERS.items():
            if pattern.match(line):
                return style
    return None


def _normalize(line: str) -> str:
    return line.lstrip("\u200e\u200f\ufeff").translate(SPACES)


def chat_title(source: Source, member: str) -> str:
    """The chat's name, from "WhatsApp Chat with NAME.txt" or, for iOS's `_chat.txt`, from
    the folder or zip around it ("WhatsApp Chat - NAME.zip")."""
    path = PurePosixPath(member.replace("\\", "/"))
    name = path.stem
    if name.lower().startswith("_chat"):
        name = path.parent.name or PurePosixPath(source.label.replace("\\", "/")).stem
    return TITLE_PREFIXES.sub("", name).strip() or name


def parse_chat(source: Source, member: str, style: str, skipped: Counter) -> ChatThread:
    header = HEADERS[style]
    entries: list[list] = []  # [date, time, ampm, rest]
    for line in read_text(source, member).splitlines():
        match = header.match(_normalize(line))
        if match:
            entries.append([match["date"], match["time"], match["ampm"], match["rest"]])
        elif entries:
            entries[-1][3] += "\n" + line
        elif line.strip():
            skipped["unparsed"] += 1
    where = source.where(member)
    order = infer_date_order([entry[0] for entry in entries], [e[2] for e in entries], where)
    title = chat_title(source, member)
    thread = ChatThread(id=f"whatsapp:{title}", title=title, format=style)
    for date, time, ampm, rest in entries:
        sender, text = _split(rest)
        text = classify(sender, text, skipped)
        if text is None:
            continue
        name = clean_name(sender.translate(SPACES).lstrip("~ "))
        thread.participants.add(name)
        thread.messages.append(ChatMessage(name, _timestamp(date, time, ampm, order, where), text))
    return thread


def _split(rest: str) -> tuple[str | None, str]:
    sender, sep, text = rest.partition(": ")
    if not sep:
        first_line = rest.split("\n", 1)[0]
        if first_line.endswith(":") and "\n" not in rest:
            return first_line[:-1], ""
        return None, rest
    if len(sender) > 80 or NOTICE_SENDER.search(MARKS.sub("", sender)):
        return None, rest
    return sender, text


def classify(sender: str | None, text: str, skipped: Counter) -> str | None:
    """The message's human text, or None (counted in `skipped`) for everything else."""
    notice = sender is None or text.startswith("\u200e")  # iOS marks notices with U+200E
    text = EDITED.sub("", MARKS.sub("", text).translate(SPACES)).strip()
    if not text:
        reason = "system" if sender is None else "empty"
    elif MEDIA.match(text):
        reason = "media"
    elif STICKER.match(text):
        reason = "sticker"
    elif DELETED.match(text):
        reason = "deleted"
    elif CALL.match(text):
        reason = "call"
    elif notice or (ENCRYPTION.search(text) and len(text) < 300):
        reason = "system"
    else:
        return text
    skipped[reason] += 1
    return None


def infer_date_order(dates: list[str], ampms: list, where: str) -> str:
    """The order of one file's date fields, "ymd", "dmy" or "mdy" (see the module docstring)."""
    if not dates:
        return "dmy"
    triples = [tuple(int(part) for part in re.split(r"[./-]", date)) for date in dates]
    if len(dates[0].split(re.search(r"[./-]", dates[0])[0])[0]) == 4:
        return "ymd"
    fits = {
        "dmy": all(1 <= d <= 31 and 1 <= m <= 12 for d, m, _ in triples),
        "mdy": all(1 <= m <= 12 and 1 <= d <= 31 for m, d, _ in triples),
    }
    possible = [order for order, ok in fits.items() if ok]
    if not possible:
        raise InputError(f"{where}: cannot read dates like {dates[0]!r}")
    if len(possible) == 1:
        return possible[0]

    def backward_steps(order: str) -> int:
        keys = [(y, m, d) if order == "dmy" else (y, d, m) for d, m, y in triples]
        return sum(later < earlier for earlier, later in zip(keys, keys[1:], strict=False))

    steps = {order: backward_steps(order) for order in possible}
    if steps["dmy"] != steps["mdy"]:
        return min(steps, key=steps.get)
    # Still ambiguous (e.g. one day): US-style exports use slashes and a 12-hour clock.
    if "/" in dates[0] and any(ampms):
        return "mdy"
    return "dmy"


def _timestamp(date: str, time: str, ampm: str | None, order: str, where: str) -> float:
    a, b, c = (int(part) for part in re.split(r"[./-]", date))
    year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
    if year < 100:
        year += 2000
    clock = [int(part) for part in re.split(r"[:.]", time)]
    hour, minute, second = clock[0], clock[1], clock[2] if len(clock) > 2 else 0
    if ampm:
        pm = ampm.strip().lower().startswith("p")
        hour = hour % 12 + (12 if pm else 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except ValueError:
        raise InputError(f"{where}: impossible date {date!r} {time!r}") from None
