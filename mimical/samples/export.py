"""Write a sample export: `write_sample_export(format, out_dir)` or `mimical sample-export`.

mimical sample-export --format whatsapp-ios --out /tmp/wa --max-conversations 50
"""

from __future__ import annotations

import random
from pathlib import Path

from mimical.samples.plan import build_sample
from mimical.samples.writers import WRITERS


def write_sample_export(
    format: str,
    out_dir: str | Path,
    persona: str | None = None,
    max_conversations: int | None = None,
    *,
    seed: int = 0,
    legacy_layout: bool = False,
) -> Path:
    """Write a sample export of `format` under `out_dir` (created); return `out_dir`.

    `persona` is a chitchat sender id (default `DEMO_PERSONA`); `max_conversations` caps the
    chitchat chats used (the demo persona has 656 two-person chats). `legacy_layout` writes
    Messenger's pre-2024 layout (`messages/` at the root, `type` fields).
    """
    plan = build_sample(format, persona, max_conversations, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    WRITERS[format](plan, out_dir, random.Random(seed), legacy_layout)
    return out_dir
