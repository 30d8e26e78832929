"""What one webhook payload says, read as Messenger's conversation routing defines it.

A page's webhook payload carries events in two lists per entry:

- `messaging`: events of conversations our app owns (the thread's owner, or the only
  app). People's messages here are answered.
- `standby`: events of conversations another app or the Page inbox owns (Messenger's
  conversation routing / handover protocol). Messages here are read, never answered:
  the owner answers them.

Besides people's messages, three kinds of events steer the persona:

- echoes (`message_echoes`) of what the page sent: ours carry the `mimical:` tag
  (`ECHO_TAG_PREFIX`) and confirm a piece arrived; any other echo is a Page admin (or
  another app) writing to that person by hand, which silences the persona in that
  conversation for `Settings.messenger_human_pause_seconds`;
- `take_thread_control` and `pass_thread_control` (`messaging_handovers`) to another
  app: someone took the conversation from us; silenced the same way (messages then
  come as standby, the rest is a safeguard for what was already queued);
- either of them to our app: the conversation is ours again; the silence ends.

Messages in `standby` of conversations we passed to the Page inbox ourselves are
still queued (`mimical.messenger.handover` takes them back once the silence ends).

    routing = read_payload(payload, app_id="123")
    routing.messages, routing.standby, routing.echo_tags, routing.pause, routing.resume
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimical.messenger.event_queue import Event

# Our pieces' `metadata`, echoed back by Messenger: this prefix, then "<mid>:<piece>".
ECHO_TAG_PREFIX = "mimical:"
# The person asks for a human: the conversation goes to the Page inbox
# (`mimical.messenger.handover`).
HUMAN_COMMAND = "%human"
# Postback payloads that stand for the user typing the command (the persistent menu).
MENU_COMMANDS = frozenset({"%restart", "%help", "%forget", "%show all", HUMAN_COMMAND})


@dataclass
class Routing:
    """One payload's events, sorted by what the webhook does with them."""

    messages: list[Event] = field(default_factory=list)  # to answer, in order
    standby: list[Event] = field(default_factory=list)  # another owner answers these
    echo_tags: list[str] = field(default_factory=list)  # our pieces that arrived
    pause: list[str] = field(default_factory=list)  # PSIDs a person or app took over
    resume: list[str] = field(default_factory=list)  # PSIDs handed back to us

    def __bool__(self) -> bool:
        """Whether the payload asks anything of the worker (deliveries and reads do not)."""
        return any((self.messages, self.standby, self.echo_tags, self.pause, self.resume))


def incoming(event: dict) -> Event | None:
    """What a person sent the page, else None.

    Messages count (text None for stickers, images...; a tapped quick reply's
    payload stands for its shortened title), and so do postbacks: the persistent
    menu's carry a command (`MENU_COMMANDS`), others such as "Get Started" count as
    an empty text, which the dialog answers with the greeting or where the user is.
    Echoes, deliveries and reads do not.
    """
    sender = event.get("sender")
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), str):
        return None
    message, postback = event.get("message"), event.get("postback")
    if isinstance(message, dict) and not message.get("is_echo"):
        if isinstance(message.get("mid"), str):
            text = message.get("text")
            quick_reply = message.get("quick_reply")
            if isinstance(quick_reply, dict) and isinstance(quick_reply.get("payload"), str):
                text = quick_reply["payload"]
            text = text if isinstance(text, str) else None
            return Event(sender["id"], message["mid"], text, sent_at(event))
    elif isinstance(postback, dict):
        # Older postbacks carry no mid; the sender and timestamp identify a redelivery.
        mid = postback.get("mid") or f"postback:{sender['id']}:{event.get('timestamp')}"
        payload = postback.get("payload")
        command = payload if payload in MENU_COMMANDS else ""
        return Event(sender["id"], str(mid), command, sent_at(event))
    return None


def sent_at(event: dict) -> float | None:
    """When the person sent the event, in seconds since the epoch (Messenger's
    `timestamp` is in milliseconds); None when it carries no usable one."""
    timestamp = event.get("timestamp")
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool) and timestamp > 0:
        return timestamp / 1000
    return None


def echo_tag(event: dict) -> str | None:
    """The tag of one of our own pieces that Messenger echoed back, else None."""
    message = event.get("message")
    if not isinstance(message, dict) or not message.get("is_echo"):
        return None
    metadata = message.get("metadata")
    if isinstance(metadata, str) and metadata.startswith(ECHO_TAG_PREFIX):
        return metadata.removeprefix(ECHO_TAG_PREFIX)
    return None


def _recipient(event: dict) -> str | None:
    recipient = event.get("recipient")
    psid = recipient.get("id") if isinstance(recipient, dict) else None
    return psid if isinstance(psid, str) else None


def _sender(event: dict) -> str | None:
    sender = event.get("sender")
    psid = sender.get("id") if isinstance(sender, dict) else None
    return psid if isinstance(psid, str) else None


def human_echo(event: dict, app_id: str) -> str | None:
    """The PSID a Page admin (or another app) just wrote to by hand, else None.

    An echo is ours when it carries our tag, or (with `app_id` known) Graph says our
    app sent it; everything else the page sent is someone else speaking."""
    message = event.get("message")
    if not isinstance(message, dict) or not message.get("is_echo") or echo_tag(event):
        return None
    if app_id and str(message.get("app_id", "")) == app_id:
        return None
    return _recipient(event)


def read_payload(payload: dict, app_id: str = "") -> Routing:
    """Sort a page payload's `messaging` and `standby` events (malformed ones are skipped)."""
    routing = Routing()
    entries = payload.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        for name in ("messaging", "standby"):
            events = entry.get(name)
            for event in events if isinstance(events, list) else []:
                if isinstance(event, dict):
                    _read_event(event, name == "standby", app_id, routing)
    return routing


def _read_event(event: dict, standby: bool, app_id: str, routing: Routing) -> None:
    tag = echo_tag(event)
    if tag is not None:
        routing.echo_tags.append(tag)
        return
    if (psid := human_echo(event, app_id)) is not None:
        routing.pause.append(psid)
        return
    for kind in ("take_thread_control", "pass_thread_control"):
        control = event.get(kind)
        if isinstance(control, dict) and (psid := _sender(event)) is not None:
            # To us: named by our id, or (id unknown) a pass delivered as a `messaging`
            # event, which only the thread's owner gets.
            new_owner = str(control.get("new_owner_app_id", ""))
            passed = kind == "pass_thread_control"
            ours = new_owner == app_id if app_id else passed and not standby
            (routing.resume if ours else routing.pause).append(psid)
            return
    message = incoming(event)
    if message is not None:
        (routing.standby if standby else routing.messages).append(message)
