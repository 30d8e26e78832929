"""Messenger's side of the chat: answer webhook events through the Send API.

The webhook acknowledges at once and hands events here. Workers process them in
the background: each message `mid` only once (claimed in Redis, or memory without
it, because Messenger redelivers when it thinks a webhook was slow), one user's
messages in order (a user always lands on the same worker), and each answer goes
out with a typing indicator first and in pieces of at most 2,000 characters (the
Send API's limit). Send API calls retry 429 and 5xx answers with backoff
(urllib3's `Retry`, honouring `Retry-After`).

Usage (what `mimical.web.webhook` does):

    worker = MessengerWorker(engine, settings)
    worker.submit(event)   # one entry of a webhook payload's `messaging` list
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib

from mimical.config import Settings
from mimical.errors import InputError, MimicalError

log = logging.getLogger(__name__)

CHANNEL = "messenger"
SEND_API_MAX_CHARS = 2000
# Messenger retries deliveries for a while; a day covers its redelivery window.
DEDUPE_TTL_SECONDS = 24 * 3600
NOT_TEXT = "Sorry, I can only read text messages."
TRY_AGAIN = "Sorry, something went wrong on our side. Please try again in a minute."


def split_message(text: str, limit: int = SEND_API_MAX_CHARS) -> list[str]:
    """Pieces of at most `limit` characters, cut at a line break or space when there is one."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ")
    if text:
        pieces.append(text)
    return pieces


def incoming(event: dict) -> tuple[str, str, str | None] | None:
    """(sender id, dedupe id, text) of what a person sent the page, else None.

    Messages count (text None for stickers, images...), and so do postbacks such as
    the "Get Started" button, as an empty text: the dialog answers those with the
    greeting, or where the user is. Our own echoes, deliveries and reads do not.
    """
    sender = event.get("sender")
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), str):
        return None
    message, postback = event.get("message"), event.get("postback")
    if isinstance(message, dict) and not message.get("is_echo"):
        if isinstance(message.get("mid"), str):
            text = message.get("text")
            return sender["id"], message["mid"], text if isinstance(text, str) else None
    elif isinstance(postback, dict):
        # Older postbacks carry no mid; the sender and timestamp identify a redelivery.
        mid = postback.get("mid") or f"postback:{sender['id']}:{event.get('timestamp')}"
        return sender["id"], str(mid), ""
    return None


class SendApi:
    """The Graph API's `/me/messages` for one page, with retries on 429 and 5xx."""

    def __init__(self, graph_api_url: str, page_access_token: str, *, retries: int = 4):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.url = graph_api_url.rstrip("/") + "/me/messages"
        self.session = requests.Session()
        # Proxy settings from the environment, resolved once instead of on every call
        # (requests re-reads os.environ per request, a measurable cost at 200 msg/s).
        self.session.proxies = requests.utils.get_environ_proxies(self.url)
        self.session.trust_env = False
        # The token goes in a header, not the URL, so no access log or debug line shows it.
        self.session.headers["Authorization"] = f"Bearer {page_access_token}"
        retry = Retry(
            total=retries,
            backoff_factor=0.2,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,  # the Send API is POST-only
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _post(self, body: dict) -> bool:
        import requests

        try:
            response = self.session.post(self.url, json=body, timeout=10)
        except requests.RequestException as error:
            log.warning("Send API unreachable: %s", type(error).__name__)
            return False
        if response.status_code >= 400:
            log.warning("Send API answered %s: %s", response.status_code, response.text[:200])
            return False
        return True

    def typing_on(self, psid: str) -> bool:
        return self._post({"recipient": {"id": psid}, "sender_action": "typing_on"})

    def send_text(self, psid: str, text: str) -> bool:
        return self._post(
            {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": text}}
        )

    def close(self) -> None:
        self.session.close()


class MessengerWorker:
    """Background threads that turn Messenger events into dialog replies."""

    def __init__(self, engine, settings: Settings, *, workers: int = 8):
        self.engine = engine
        self.send_api = SendApi(settings.graph_api_url, settings.fb_page_access_token)
        self._queues = [queue.Queue() for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"messenger-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, event: dict) -> None:
        """Queue one messaging event; returns at once."""
        message = incoming(event)
        if message is None:
            return
        # A stable hash keeps each user on one worker, so their messages stay in order.
        self._queues[zlib.crc32(message[0].encode()) % len(self._queues)].put(message)

    def _run(self, events: queue.Queue) -> None:
        while (message := events.get()) is not None:
            try:
                self.process(*message)
            except Exception:  # one bad event must not stop the worker
                log.exception("cannot answer a Messenger message")
            finally:
                events.task_done()
        events.task_done()

    def process(self, psid: str, mid: str, text: str | None) -> None:
        """Answer one message (see `incoming`) unless its mid was answered already."""
        try:
            if not self.engine.sessions.claim(f"messenger:mid:{mid}", DEDUPE_TTL_SECONDS):
                return
            self.send_api.typing_on(psid)
            # text is None for stickers, images, audio...
            replies = [NOT_TEXT] if text is None else self.engine.handle(CHANNEL, psid, text)
        except InputError as error:  # e.g. a message over the length limit
            replies = [str(error)]
        except MimicalError as error:  # Redis down: answer rather than stay silent
            log.warning("cannot handle a Messenger message: %s", error)
            replies = [TRY_AGAIN]
        for reply in replies:
            for piece in split_message(reply):
                self.send_api.send_text(psid, piece)

    def join(self) -> None:
        """Wait until every queued event is answered (tests, benchmarks)."""
        for events in self._queues:
            events.join()

    def close(self) -> None:
        for events in self._queues:
            events.put(None)
        for thread in self._threads:
            thread.join()
        self.send_api.close()
