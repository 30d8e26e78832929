"""Handing a conversation to the Page's people and taking it back (Messenger's handover protocol).

With conversation routing, one app owns each conversation (thread); the others get
its events in `standby`. The persona's app passes a conversation to the Page inbox
(`POST /me/pass_thread_control` with the inbox's app id,
`Settings.messenger_inbox_app_id`) when

- the person asks for a human (`%human`, the menu's *Talk to a person*), or
- a Page admin answers by hand and the person writes while the persona is silent
  (`mimical.messenger.payload`: the silence starts with the admin's message).

It marks the conversation handed over (`EventQueue.mark_handed_over`), so that the
person's messages, which then arrive as `standby`, are still queued for the worker;
once the silence has ended (`Settings.messenger_human_pause_seconds` after the
admin's last message, or the person's `%restart`), the next message takes the
conversation back (`POST /me/take_thread_control`) and the persona answers it. When
the Page inbox hands it back itself (*Move to Done*: `pass_thread_control` to our
app) the mark is cleared.

Where the Page's routing does not allow it (the app is not the conversation's
owner or primary receiver, the inbox is not set up), Graph refuses: the silence
still holds, the refusal is logged and counted (`mimical_messenger_graph_errors_total`),
and a conversation that cannot be taken back stays with its owner. An empty
`messenger_inbox_app_id` turns the protocol calls off (silence only).

    handover = Handover(graph, queue, metrics, settings)
    handover.pass_to_inbox(psid, "the person asked for a human")
    handover.take_back(psid)   # False: another owner keeps the conversation
"""

from __future__ import annotations

import logging

from mimical.config import Settings
from mimical.messenger.graph import GraphError

log = logging.getLogger(__name__)

# How long a conversation passed to the inbox is remembered as ours to take back; the
# Page inbox usually hands it back (*Move to Done*) long before.
HANDOVER_TTL_SECONDS = 7 * 24 * 3600


class Handover:
    def __init__(self, graph, queue, metrics, settings: Settings):
        self.graph = graph
        self.queue = queue
        self.metrics = metrics
        self.inbox_app_id = settings.messenger_inbox_app_id

    def pass_to_inbox(self, psid: str, reason: str) -> None:
        """Give the conversation to the Page inbox, unless it has it already; `reason`
        goes to the inbox as the handover's metadata."""
        if not self.inbox_app_id or self.queue.handed_over([psid]):
            return
        body = {"recipient": {"id": psid}, "target_app_id": self.inbox_app_id, "metadata": reason}
        try:
            self.graph.call("POST", "/me/pass_thread_control", body, repeatable=True)
        except GraphError as error:
            log.warning("cannot pass a conversation to the Page inbox: %s", error)
            return
        self.queue.mark_handed_over([psid], HANDOVER_TTL_SECONDS)
        self.metrics.events.labels("handed_over").inc()

    def take_back(self, psid: str) -> bool:
        """Own a conversation we handed over again; True if it is ours (or never left),
        False if Graph refused (its current owner keeps it)."""
        if not self.queue.handed_over([psid]):
            return True
        body = {"recipient": {"id": psid}, "metadata": "the automated persona answers again"}
        try:
            self.graph.call("POST", "/me/take_thread_control", body, repeatable=True)
        except GraphError as error:
            log.warning("cannot take a conversation back from the Page inbox: %s", error)
            return False
        self.queue.clear_handed_over([psid])
        return True
