"""The abuse probes of issue T ("nothing anonymous can exhaust what everyone shares"),
sent to the mimical on PYTHONPATH: what its API, sessions and chart do with each. Run
it on two checkouts for the before → after table:

    PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/abuse_probes.py --out before.json
    PYTHONPATH=$PWD .venv/bin/python benchmarks/abuse_probes.py --out after.json
    .venv/bin/python benchmarks/abuse_probes.py --compare before.json after.json

Real apps (`create_app`) over a real registry and a redis-server of their own (started
afresh for each probe, so memory and key counts are the probe's alone); requests come
from outside addresses. The chart probes render the checkout's own chart with helm. An
"error: ..." answer is an exception the app did not handle: the test client raises it,
a served app answers 500.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis
import yaml

LONG_NAME_REQUESTS = 3000
OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}
EMOJI_MESSAGE = "😀" * 2000


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    from mimical.testing.servers import start_redis as start

    return start(workdir)


class Probes:
    def __init__(self, home: Path, redis_url: str):
        from mimical.config import Settings
        from mimical.orchestration import open_registry

        self.settings = Settings(home=home, redis_url=redis_url)
        self.redis_url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.registry = open_registry(self.settings)
        self.apps = []

    def client(self, components=("api",), **overrides):
        from mimical.app import create_app

        settings = self.settings.with_overrides(**overrides)
        app = create_app(settings, components=components, test_config={"TESTING": True})
        self.apps.append(app)
        client = app.test_client()
        client.environ_base.update(OUTSIDE)
        return client

    def close(self) -> None:
        from mimical.appkit.resources import close_resources

        for app in self.apps:
            close_resources(app)
        self.registry.close()

    def _redis_growth(self, send) -> tuple[int, int, list[int]]:
        """(new keys, bytes of Redis memory, status codes) of `send()`'s requests."""
        keys, memory = self.redis.dbsize(), self.redis.info("memory")["used_memory"]
        codes = send()
        grown = self.redis.info("memory")["used_memory"] - memory
        return self.redis.dbsize() - keys, grown, codes

    # ------------------------------------------------------------ the probes

    def long_names_with_a_wrong_token(self) -> str:
        client = self.client(password_rate_limit="100000 per minute")

        def send():
            return [
                client.get(
                    f"/api/chatbots/{index:04x}" + "ab" * 1948,
                    headers={"Authorization": "Bearer x"},
                ).status_code
                for index in range(LONG_NAME_REQUESTS)
            ]

        keys, memory, codes = self._redis_growth(send)
        answers = ", ".join(f"{codes.count(c)}x{c}" for c in sorted(set(codes)))
        return (
            f"{LONG_NAME_REQUESTS} requests: {answers}; +{keys} Redis keys, "
            f"{memory / LONG_NAME_REQUESTS:.0f} B of Redis memory per request"
        )

    def wrong_tokens_from_one_ipv6_64(self) -> str:
        client = self.client()
        codes = [
            client.get(
                f"/api/chatbots/guess-{n}",
                headers={"Authorization": "Bearer x"},
                environ_base={"REMOTE_ADDR": f"2001:db8:1:2::{n + 1:x}"},
            ).status_code
            for n in range(50)
        ]
        checked, limited = codes.count(401), codes.count(429)
        return f"50 names from 50 addresses of one /64: {checked} checked, {limited}x429"

    def emoji_session(self) -> str:
        from mimical.dialog import sessions
        from mimical.dialog.sessions import RedisSessionStore

        history = [EMOJI_MESSAGE, "ok", EMOJI_MESSAGE, "sure", EMOJI_MESSAGE, "bye"]
        session = {"state": "chatting", "persona": "alice", "history": history}
        store = RedisSessionStore(self.redis_url)
        try:
            store.save("web:probe", session)
            stored = self.redis.strlen("mimical:web:probe")
        except Exception as error:
            return f"refused: {type(error).__name__}"
        bloated = {**session, "history": history * 4}
        # The cap the dialog engine saves a chat's session with, where there is one.
        cap = getattr(sessions, "SESSION_MAX_BYTES", None)
        try:
            store.save("web:bloated", bloated, **({"max_bytes": cap} if cap else {}))
            capped = f"a {len(json.dumps(bloated, ensure_ascii=False)) // 1024} KB one stored"
        except Exception as error:
            capped = f"a 4x larger one refused ({type(error).__name__})"
        return f"3 messages of 2,000 emoji: {stored / 1024:.1f} KB in Redis; {capped}"

    def full_redis(self) -> str:
        client = self.client()
        self.redis.config_set("maxmemory", 1)
        answers = [
            client.get("/api/chatbots/alice", headers={"Authorization": "Bearer x"}),
            client.get("/api/chatbots/alice", headers={"X-Chatbot-Password": "guess"}),
        ]
        self.redis.config_set("maxmemory", 0)
        return "full Redis: " + ", ".join(
            f"{a.status_code} {(a.get_json(silent=True) or {}).get('error', 'not JSON')}"
            for a in answers
        )

    def private_name_on_create(self) -> str:
        self.registry.create("hidden", public=False, password="pw-hidden")
        client = self.client(build_rate_limit="1000/minute", upload_rate_limit="1000/minute")

        def create(name: str):
            export = (io.BytesIO(b"\x00 not an export"), "export.zip")
            data = {"name": name, "public": "false", "password": "pw", "export": export}
            return client.post("/api/chatbots", data=data, content_type="multipart/form-data")

        taken, free = create("hidden"), create("nobody-has-this")
        return f"bad upload: private name {taken.status_code}, free name {free.status_code}"

    def build_progress_names(self) -> str:
        from mimical.build import build_chatbot
        from mimical.storage import open_storage

        class Stop(Exception):
            pass

        storage = open_storage((self.settings.home / "store").as_uri())
        key = "uploads/alice/1/WhatsApp_Chat_with_Jane_Doe.txt"
        storage.put_bytes(key, b"12/01/2023, 10:00 - Jane Doe: hi\n12/01/2023, 10:01 - Me: yo\n")
        messages = []

        def report(phase, fraction, message):
            messages.append(message)
            raise Stop

        with contextlib.suppress(Stop):
            build_chatbot(storage, "alice", key, 1, report)
        return f"first public progress line: {messages[0]!r}" if messages else "no progress"

    def public_model_location(self) -> str:
        self.registry.create("alice", public=True)
        self.registry.update_status("alice", phase="Ready", model_version=1, add_version=1)
        answer = self.client().get("/getPublicModel/alice").get_json()
        return f"/getPublicModel fields: {', '.join(sorted(answer))}"

    def lone_surrogate(self) -> str:
        client = self.client(components=("api", "chat"))
        response = client.post(
            "/chat/messages", data=b'{"text": "\\ud800"}', content_type="application/json"
        )
        return f"chat message with a lone surrogate: {response.status_code}"

    def away_cache(self) -> str:
        _, token = self.registry.create("owner", public=False, password="pw")
        client = self.client(components=("api", "away"))
        response = client.get(
            "/api/chatbots/owner/away", headers={"Authorization": f"Bearer {token}"}
        )
        cache = response.headers.get("Cache-Control", "none")
        return f"away answer ({response.status_code}): Cache-Control {cache}"

    def chart(self) -> str:
        helm = Path(sys.executable).with_name("helm")
        chart = Path(sys.modules["mimical"].__file__).parents[1] / "charts" / "mimical"
        rendered = subprocess.run(
            [str(helm), "template", "probe", str(chart)], capture_output=True, text=True
        )
        objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
        redis_set = next(o for o in objects if o["kind"] == "StatefulSet")
        args = redis_set["spec"]["template"]["spec"]["containers"][0]["args"]
        appendonly = args[args.index("--appendonly") + 1]
        kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
        egress = sum(
            1
            for o in objects
            if o["kind"] == "NetworkPolicy" and "Egress" in o["spec"].get("policyTypes", [])
        )
        pdb = ("PodDisruptionBudget", "probe-mimical-redis") in kinds
        headless = any(
            o["kind"] == "Service" and o["spec"].get("clusterIP") == "None" for o in objects
        )
        claims = "volumeClaimTemplates" in redis_set["spec"]
        return (
            f"Redis appendonly {appendonly}, PVC {claims}, PDB {pdb}, headless {headless}; "
            f"{egress} egress policies"
        )

    def chart_as_dependency(self) -> str:
        helm = Path(sys.executable).with_name("helm")
        chart = Path(sys.modules["mimical"].__file__).parents[1] / "charts" / "mimical"
        with tempfile.TemporaryDirectory() as parent:
            version = yaml.safe_load((chart / "Chart.yaml").read_text())["version"]
            dependency = {"name": "mimical", "version": version, "repository": f"file://{chart}"}
            meta = {"apiVersion": "v2", "name": "umbrella", "version": "0.1.0"}
            Path(parent, "Chart.yaml").write_text(
                yaml.safe_dump({**meta, "dependencies": [dependency]})
            )
            subprocess.run([str(helm), "dependency", "build", parent], capture_output=True)
            result = subprocess.run(
                [str(helm), "template", "u", parent], capture_output=True, text=True
            )
        return "renders" if result.returncode == 0 else result.stderr.strip().splitlines()[0][:90]


PROBES = [
    (
        f"{LONG_NAME_REQUESTS} x 3,900-char names with a wrong token",
        "long_names_with_a_wrong_token",
    ),
    ("wrong owner tokens from one IPv6 /64", "wrong_tokens_from_one_ipv6_64"),
    ("a web chat session of emoji", "emoji_session"),
    ("Redis full (maxmemory, noeviction)", "full_redis"),
    ("create under a private name, bad upload", "private_name_on_create"),
    ("build progress of WhatsApp_Chat_with_Jane_Doe.txt", "build_progress_names"),
    ("public model location", "public_model_location"),
    ("lone surrogate in a chat message", "lone_surrogate"),
    ("owner-only away answer", "away_cache"),
    ("chart: Redis durability, egress", "chart"),
    ("chart as another chart's dependency", "chart_as_dependency"),
]


def run(out: Path) -> None:
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, method in PROBES:
            workdir = Path(scratch) / method
            workdir.mkdir()
            process, url = start_redis(workdir)
            probes = Probes(workdir / "home", url)
            try:
                results[label] = getattr(probes, method)()
            except Exception as error:  # an old checkout may lack what a probe uses
                results[label] = f"error: {type(error).__name__}: {error}"[:160]
            finally:
                probes.close()
                process.terminate()
                process.wait()
            print(f"{label}: {results[label]}", file=sys.stderr)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))


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
        if shutil.which("redis-server") is None:
            sys.exit("redis-server is not installed (scripts/bootstrap installs it)")
        run(args.out or Path("abuse_probes.json"))


if __name__ == "__main__":
    main()
