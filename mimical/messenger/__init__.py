"""Messenger: the persona answering a Facebook Page's conversations.

The webhook (`webhook`, a component of the web app factory) checks and stores Meta's
events in a queue (`event_queue`: Redis; `memory_queue`: one process) and answers 200 at
once; a responder (`responder.MessengerWorker`: threads in the webhook process, or
`mimical messenger respond`, `cli`) reads what each payload says (`payload`), answers
through the Graph API (`graph`), hands conversations to the Page's people and takes them
back (`handover`), and watches whether the Page can still send (`page_health`). Meta's
data deletion callback lives in `data_deletion`.
"""
