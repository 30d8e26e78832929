"""Chat-export import: read Messenger, WhatsApp and Telegram exports into one corpus.

`mimical import PATH...` is the entry point (see `mimical.corpus.cli`); the record
format every other part of mimical reads is defined in `mimical.corpus.schema`.
"""
