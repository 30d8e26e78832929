"""Chat-export import: read Messenger, WhatsApp and Telegram exports into one corpus.

`mimical import PATH...` is the entry point (see `mimical.corpus.cli`); the record
format every other part of mimical reads is defined in `mimical.corpus.schema`. Each
reader is named for the export it reads (`facebook_export`, `whatsapp_export`,
`telegram_export`) and yields the threads of `threads` (`ChatThread`), which `importer`
segments and scrubs the same way for every format.
"""
