"""The webhook image runs without TensorFlow: its requirements leave it out, nothing
they pull brings it back, and its processes (webhook, web chat, Messenger responder,
model-mirror sidecar) never import it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys

from packaging.requirements import Requirement

from tests.deploy.conftest import ROOT

REQUIREMENTS_SCRIPT = ROOT / "services" / "webhook" / "requirements.py"
TENSORFLOW = re.compile(r"tensorflow|keras|tf-keras")


def image_requirements() -> list[str]:
    result = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT), str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def installed_closure(requirements: list[str]) -> set[str]:
    """Every distribution these requirements pull, as installed here (extras and
    markers that do not apply are skipped, as pip does)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            pulled = Requirement(text)
            if pulled.marker is None or pulled.marker.evaluate({"extra": ""}):
                todo.append(pulled)
    return seen


def test_the_image_requirements_pull_no_tensorflow():
    requirements = image_requirements()
    assert requirements and "grpcio>=1.60" in requirements and "protobuf>=4.25" in requirements
    closure = installed_closure(requirements)
    assert {"flask", "gunicorn", "redis", "grpcio", "protobuf"} <= closure
    assert not {name for name in closure if TENSORFLOW.match(name)}
    # The full install (training, the in-process model server) still has it.
    assert "tensorflow" in installed_closure(["tensorflow-serving-api"])


IMAGE_PROCESSES = """
import sys

sys.path.insert(0, "services/webhook")
import main  # the image's entry file
from mimical.config import Settings
from mimical.kube import model_mirror  # the sidecar the same image runs
from mimical.messenger.cli import Responder, run_respond  # the responder's process
from mimical.appkit.dialog_app import get_engine

wsgi = main.create_service_app()
app = wsgi.app
client = app.test_client()
assert client.get("/chat").status_code == 200
assert client.get("/messenger/privacy").status_code == 200
with app.app_context():
    engine = get_engine()  # what the web chat makes before its first answer
engine = Responder(Settings.from_env()).engine()  # what a responder makes before answering
print(sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")}))
"""


def test_the_webhook_and_responder_processes_import_no_tensorflow(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MIMICAL_HOME": str(tmp_path),
        "MIMICAL_MODEL_SERVER": "127.0.0.1:1",  # never called: nothing is asked
        "MIMICAL_MESSENGER_WORKERS": "0",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never connected: nothing is posted
    }
    result = subprocess.run(
        [sys.executable, "-c", IMAGE_PROCESSES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_without_tensorflow_or_a_model_server_the_error_says_what_to_set(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MIMICAL_HOME": str(tmp_path)}
    env.pop("MIMICAL_MODEL_SERVER", None)
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"  # as in the webhook image
        "from mimical.config import Settings\n"
        "from mimical.serving.connect import connect_models\n"
        "try:\n"
        "    connect_models(Settings.from_env())\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.startswith("UnavailableError no model server: set MIMICAL_MODEL_SERVER")
