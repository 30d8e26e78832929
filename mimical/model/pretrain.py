"""The base model's data: chitchat conversations minus the held-out people.

Held-out people never reach the base, so that fine-tuning and evaluating on one of them
measures what a new user would get. The rule, in one place for training and evaluation:

- a sender is held out when the sha256 hex digest of its chitchat sender id starts
  with 'b' or 'c' (about 1/8 of the senders);
- a conversation is left out of the base when any of its senders is held out or is the
  demo persona (`mimical.samples.plan.DEMO_PERSONA`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mimical.samples.plan import DEMO_PERSONA

HELD_OUT_DIGEST_PREFIXES = ("b", "c")
HELD_OUT_RULE = (
    "a conversation is left out when any sender's sha256(sender id) hex digest starts with "
    f"{' or '.join(HELD_OUT_DIGEST_PREFIXES)}, or the demo persona ({DEMO_PERSONA}) takes part"
)


def is_held_out(sender_id: str) -> bool:
    """True for a held-out person: never in the base model's training data."""
    return hashlib.sha256(sender_id.encode()).hexdigest().startswith(HELD_OUT_DIGEST_PREFIXES)


def held_out_conversation(sender_ids: Iterable[str]) -> bool:
    """True when a conversation with these senders must stay out of the base model."""
    return any(s == DEMO_PERSONA or is_held_out(s) for s in sender_ids)
