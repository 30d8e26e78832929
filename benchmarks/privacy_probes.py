"""The hostile probes of issue O ("private chats stay private"), sent to the mimical on
PYTHONPATH: what its API and web chat answer each one. Run it on two checkouts for the
before → after table:

    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/privacy_probes.py --out before.json
    PYTHONPATH=$PWD .venv/bin/python benchmarks/privacy_probes.py --out after.json
    .venv/bin/python benchmarks/privacy_probes.py --compare before.json after.json

Real apps (`create_app`, every component) over a real registry and a redis-server it
starts; requests come from an outside address (203.0.113.5) unless a probe says
otherwise. No model server: chat probes stop before a persona would reply. Probes that
need a browser extension or a cluster are left to their tests (README security table).
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}
PRIVATE, PASSWORD = "secret", "open sesame"
FRIENDS = ("Bob Private-Friend", "Cat Secret-Pal")
WHATSAPP = "12/01/2023, 10:00 - Bob: hi\n12/01/2023, 10:01 - Ann: yo\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


class Probes:
    def __init__(self, home: Path, redis_url: str):
        from mimical.config import Settings

        try:
            from mimical.orchestration import open_registry
        except ImportError:  # a checkout from before the registry's factory moved
            from mimical.registry import open_registry

        self.settings = Settings(home=home, redis_url=redis_url, trusted_proxy_hops=1)
        self.redis_url = redis_url
        self.registry = open_registry(self.settings)
        self.apps = []
        self.owner_token = self._persona(PRIVATE, PASSWORD)

    def _persona(self, name: str, password: str) -> str:
        _, token = self.registry.create(name, public=False, password=password)
        self.registry.update_status(name, phase="Ready", model_version=1, add_version=1)
        return token

    def app(self, settings=None, **config):
        from mimical.app import create_app

        app = create_app(settings or self.settings, test_config={"TESTING": True, **config})
        self.apps.append(app)
        return app

    def client(self, app=None, outside: bool = True):
        client = (app or self.app()).test_client()
        if outside:
            client.environ_base.update(OUTSIDE)
        return client

    @staticmethod
    def say(client, text: str, **kwargs) -> dict:
        return client.post("/chat/messages", json={"text": text}, **kwargs).get_json()

    def close(self) -> None:
        from mimical.appkit.resources import close_resources

        for app in self.apps:
            close_resources(app)

    # ------------------------------------------------------------ the probes

    def failed_build_reason(self) -> str:
        export = io.BytesIO()
        with zipfile.ZipFile(export, "w") as archive:
            for friend, other in zip(FRIENDS * 2, "ABC", strict=False):
                lines = [
                    f"12/01/2023, 10:00 - {friend}: hi",
                    f"12/01/2023, 10:01 - {other}: yo",
                ]
                archive.writestr(f"Chat with {other}.txt", "\n".join(lines) + "\n")
        export.seek(0)
        client = self.client()
        created = client.post(
            "/api/chatbots",
            data={"name": "pals", "public": "true", "export": (export, "export.zip")},
            content_type="multipart/form-data",
        )
        if created.status_code != 202:
            return f"create answered {created.status_code}"
        deadline = time.monotonic() + 180
        while self.registry.get("pals").phase != "Failed" and time.monotonic() < deadline:
            time.sleep(0.2)
        message = client.get("/api/chatbots/pals").get_json().get("message", "")
        named = [friend for friend in FRIENDS if friend in message]
        return f"anonymous GET: {'names ' + ', '.join(named) if named else repr(message)}"

    def password_change_and_old_chats(self) -> str:
        app = self.app()
        friend = self.client(app)
        self.say(friend, "")
        self.say(friend, PRIVATE)
        self.say(friend, PASSWORD)
        patch = self.client(app).patch(
            f"/api/chatbots/{PRIVATE}",
            json={"password": "brand new"},
            headers={"Authorization": f"Bearer {self.owner_token}"},
        )
        # The old way to rotate: delete the name and create it again.
        self.registry.delete(PRIVATE)
        self.owner_token = self._persona(PRIVATE, "rotated")
        after = self.say(friend, "still there?")
        return f"PATCH {patch.status_code}; old chat after re-create: state {after['state']}"

    def cookie_less_chat_keys(self) -> str:
        import redis

        store = redis.Redis.from_url(self.redis_url)
        client = self.client(self.app())
        before = set(store.keys("*"))
        for text in ["", "%show all", "%help", "%restart"] * 25:
            client.post("/chat/messages", json={"text": text})
            for cookie in ("mimical_chat", "__Host-mimical_chat"):
                client.delete_cookie(cookie)
        return f"{len(set(store.keys('*')) - before)} new Redis keys for 100 requests"

    def rotating_cookies(self) -> str:
        client = self.client(self.app())
        codes = []
        for _ in range(150):
            codes.append(client.post("/chat/messages", json={"text": "%help"}).status_code)
            for cookie in ("mimical_chat", "__Host-mimical_chat"):
                client.delete_cookie(cookie)
        return f"150 messages, a fresh cookie each: {codes.count(429)} answered 429"

    def refused_uploads(self) -> str:
        client = self.client(self.app())
        codes = [
            client.post(
                "/api/chatbots",
                data={
                    "name": f"j{i}",
                    "public": "true",
                    "export": (io.BytesIO(b"\0junk"), "x.bin"),
                },
                content_type="multipart/form-data",
            ).status_code
            for i in range(35)
        ]
        return f"35 junk uploads: {codes.count(415)}x415, {codes.count(429)}x429"

    def concurrent_uploads(self) -> str:
        from werkzeug.serving import make_server

        if hasattr(self.settings, "upload_rate_limit"):
            app = self.app(self.settings.with_overrides(upload_rate_limit="1000/minute"))
        else:  # a checkout from before `Settings` held the limits
            app = self.app(MIMICAL_UPLOAD_RATE_LIMIT="1000/minute")
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        slow = socket.create_connection(("127.0.0.1", server.server_port))
        slow.sendall(
            b"POST /api/chatbots HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\n"
        )
        time.sleep(2)  # the half-sent upload has its headers in
        second = self.client(app, outside=False).post(
            "/api/chatbots",
            data={"name": "second", "public": "true", "export": (io.BytesIO(b"\0junk"), "x.bin")},
            content_type="multipart/form-data",
        )
        slow.close()
        server.shutdown()
        return f"a 2nd upload during a half-sent one: {second.status_code}"

    def chart_proxy_hops(self) -> str:
        helm = Path(sys.executable).with_name("helm")
        chart = Path(sys.modules["mimical"].__file__).parents[1] / "charts" / "mimical"
        rendered = subprocess.run(
            [str(helm), "template", "probe", str(chart)], capture_output=True, text=True
        ).stdout
        if "MIMICAL_TRUSTED_PROXY_HOPS" not in rendered:
            return "chart sets no MIMICAL_TRUSTED_PROXY_HOPS"
        line = rendered.split("MIMICAL_TRUSTED_PROXY_HOPS", 1)[1].split("value:", 1)[1]
        return f"chart: MIMICAL_TRUSTED_PROXY_HOPS={line.split()[0]}"

    def concurrent_guesses(self) -> str:
        """12, not 50: without a cap on checks at once, 50 argon2 checks need 3.2 GB."""
        client_app = self.app()
        codes: list[int] = []

        def guess(index: int) -> None:
            response = self.client(client_app).post(
                f"/api/chatbots/{PRIVATE}/model", json={"password": f"guess {index}"}
            )
            codes.append(response.status_code)

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return f"12 guesses at once: {codes.count(401)} checked (401), {codes.count(429)}x429"

    def planted_cookie(self) -> str:
        app = self.app()
        client = self.client(app)
        planted = "attacker-chosen-id-0123456789"
        client.set_cookie("mimical_chat", planted)
        self.say(client, "")
        self.say(client, PRIVATE)
        unlocked = self.say(client, PASSWORD)
        cookie = client.get_cookie("mimical_chat")
        kept = cookie is not None and cookie.value == planted
        holder = "the planted id" if kept else "a new server id"
        return f"after unlocking: {holder} ({unlocked['state']})"

    def enumeration(self) -> str:
        app = self.app()
        api = self.client(app)
        statuses = [api.get(f"/api/chatbots/{name}").status_code for name in (PRIVATE, "nobody")]
        answers = []
        for name in (PRIVATE, "nobody"):
            chat = self.client(app)
            self.say(chat, "")
            answers.append(self.say(chat, name)["replies"])
        same = "same answer" if answers[0] == answers[1] else f"{answers[0]!r} vs {answers[1]!r}"
        return f"API private/unknown: {statuses[0]}/{statuses[1]}; chat: {same}"

    def token_response_headers(self) -> str:
        client = self.client()
        created = client.post(
            "/api/chatbots",
            data={
                "name": "cached",
                "public": "true",
                "export": (io.BytesIO(WHATSAPP.encode()), "WhatsApp Chat with Bob.txt"),
            },
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"},
            content_type="multipart/form-data",
        )
        cache = created.headers.get("Cache-Control", "none")
        hsts = created.headers.get("Strict-Transport-Security", "none")
        return f"owner-token answer ({created.status_code}): Cache-Control {cache}; HSTS {hsts}"

    def public_metrics(self) -> str:
        outside = self.client().get("/metrics")
        loopback = self.client(outside=False).get("/metrics")  # a port-forward, a sidecar
        return (
            f"GET /metrics from outside: {outside.status_code}, "
            f"from loopback: {loopback.status_code}"
        )

    def access_log_format(self) -> str:
        """What the images' gunicorn (`-c python:mimical.web.gunicorn_config`) logs."""
        import importlib

        config = importlib.import_module("mimical.web.gunicorn_config")
        log_format = getattr(config, "access_log_format", None)
        if log_format is None:
            return "gunicorn's default: the request line, query string included"
        return "the path only" if "%(r)s" not in log_format else "the request line"

    def storage_errors(self) -> str:
        settings = self.settings.with_overrides(
            storage_url="s3://secret-bucket-name/prefix",
            s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        )
        client = self.client(self.app(settings))
        created = client.post(
            "/api/chatbots",
            data={
                "name": "bucketed",
                "public": "true",
                "export": (io.BytesIO(WHATSAPP.encode()), "WhatsApp Chat with Bob.txt"),
            },
            content_type="multipart/form-data",
        )
        ready = client.get("/readyz")
        leaks = [
            label
            for label, response in (("create", created), ("readyz", ready))
            if "secret-bucket-name" in response.get_data(as_text=True)
        ]
        return (
            f"create {created.status_code}, readyz {ready.status_code}; "
            f"bucket named by: {', '.join(leaks) or 'neither'}"
        )

    def image_dependencies(self) -> str:
        checkout = Path(sys.modules["mimical"].__file__).parents[1]
        dockerfile = (checkout / "services" / "backend" / "Dockerfile").read_text()
        return (
            "pip --require-hashes from a lock"
            if "--require-hashes" in dockerfile
            else ("pip install of pyproject's >= ranges")
        )


PROBES = [
    ("failed build's reason, asked anonymously", "failed_build_reason"),
    ("password change; chat after delete + re-create", "password_change_and_old_chats"),
    ("100 cookie-less chat requests", "cookie_less_chat_keys"),
    ("chat limit dodged with fresh cookies", "rotating_cookies"),
    ("refused uploads counted", "refused_uploads"),
    ("concurrent uploads", "concurrent_uploads"),
    ("trusted proxy hops behind the chart's ingress", "chart_proxy_hops"),
    ("burst of password guesses", "concurrent_guesses"),
    ("planted chat cookie (fixation)", "planted_cookie"),
    ("private vs unknown name (enumeration)", "enumeration"),
    ("owner-token response over HTTPS", "token_response_headers"),
    ("/metrics on the public port", "public_metrics"),
    ("access log of ?hub.verify_token=...", "access_log_format"),
    ("storage down: 503 bodies", "storage_errors"),
    ("image dependencies", "image_dependencies"),
]


def run(out: Path) -> None:
    import redis

    redis_process, redis_url = start_redis()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as home:
            for label, method in PROBES:
                redis.Redis.from_url(redis_url).flushall()  # limits counted afresh
                probes = Probes(Path(home) / method, redis_url)  # a fresh home and apps each
                try:
                    results[label] = getattr(probes, method)()
                except Exception as error:  # an old checkout may lack what a probe uses
                    results[label] = f"error: {type(error).__name__}: {error}"[:160]
                finally:
                    probes.close()
                print(f"{label}: {results[label]}", file=sys.stderr)
    finally:
        redis_process.terminate()
        redis_process.wait()
    out.write_text(json.dumps(results, indent=1))


def compare(before: Path, after: Path) -> None:
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    print("| probe | before | after |\n| --- | --- | --- |")
    for label, _ in PROBES:
        print(f"| {label} | {old.get(label, '-')} | {new.get(label, '-')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the answers as JSON here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        run(args.out or Path("privacy_probes.json"))


if __name__ == "__main__":
    main()
