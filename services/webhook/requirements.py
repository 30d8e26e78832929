"""Print the webhook image's Python requirements: the project's, without TensorFlow.

The webhook, the Messenger responder (`mimical messenger respond`), the web chat and
the model-mirror sidecar reach the persona models only through TF Serving's gRPC API,
whose few messages `mimical.serving.client` declares itself (over grpcio and
protobuf). `tensorflow-serving-api`, which pulls the `tensorflow` package (about a
gigabyte installed, seconds to import), is for training and the in-process model
server only; tests/deploy/test_webhook_image.py checks the image's processes never
import it.

    python services/webhook/requirements.py pyproject.toml   # scripts/lock-requirements
"""

import re
import sys
import tomllib
from pathlib import Path

# Distributions of `project.dependencies` the webhook image does without.
MODEL_ONLY = {"tensorflow-serving-api"}


def requirements(pyproject: Path) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    name = re.compile(r"[A-Za-z0-9._-]+")
    return [d for d in dependencies if name.match(d).group().lower() not in MODEL_ONLY]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]))))
