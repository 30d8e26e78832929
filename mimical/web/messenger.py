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
from mimical.errors import MimicalError

log = logging.getLogger(__name__)

CHANNEL = "messenger"
SEND_API_MAX_CHARS = 2000
# Messenger retries deliveries for a while; a day covers its redelivery window.
DEDUPE_TTL_SECONDS = 24 * 3600
NOT_TEXT = "Sorry, I can only read text messages."


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


def is_user_message(event: dict) -> bool:
    """A message a person sent to the page (not our own echo, a delivery or read receipt)."""
    message = event.get("message")
    return (
        isinstance(message, dict)
        and not message.get("is_echo")
        and isinstance(message.get("mid"), str)
        and isinstance(event.get("sender"), dict)
        and isinstance(event["sender"].get("id"), str)
    )


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
        if not is_user_message(event):
            return
        psid = event["sender"]["id"]
        # A stable hash keeps each user on one worker, so their messages stay in order.
        self._queues[zlib.crc32(psid.encode()) % len(self._queues)].put(event)

    def _run(self, events: queue.Queue) -> None:
        while (event := events.get()) is not None:
            try:
                self.process(event)
            except Exception:  # one bad event must not stop the worker
                log.exception("cannot answer a Messenger message")
            finally:
                events.task_done()
        events.task_done()

    def process(self, event: dict) -> None:
        message, psid = event["message"], event["sender"]["id"]
        if not self.engine.sessions.claim(f"messenger:mid:{message['mid']}", DEDUPE_TTL_SECONDS):
            return
        text = message.get("text")
        self.send_api.typing_on(psid)
        if not isinstance(text, str):
            replies = [NOT_TEXT]
        else:
            try:
                replies = self.engine.handle(CHANNEL, psid, text)
            except MimicalError as error:
                replies = [str(error)]
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
