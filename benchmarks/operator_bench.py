"""Operator throughput and memory: many Chatbots created at once must all start training.

    .venv/bin/python benchmarks/operator_bench.py [--chatbots 500]

Starts moto's S3 server and the tests' mock Kubernetes API server (kmock, 127.0.0.1),
runs the real operator as its own process (`operator/main.py`), and measures:

- baseline: one Chatbot created alone → seconds until its phase is Training (Job made),
  and the operator's resident memory once idle;
- load: N Chatbots created at once (16 concurrent clients) → seconds until every one
  is Training with its Job, and the operator's peak RSS (VmHWM) over the whole run.

Targets: N=500 all Training within 60 s; operator peak RSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.services import free_port, start_server, stop_server  # noqa: E402
from tests.kube.apiserver import ApiServerThread, load_crd  # noqa: E402
from tests.kube.conftest import NAMESPACE, Kubectl  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 250.0
SOURCE = "s3://bench-exports/uploads/persona/1/export.zip"


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, from /proc, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found for pid {pid}")


def wait_all_training(kubectl: Kubectl, names: list[str], timeout: float, poll: float) -> float:
    """Seconds until every chatbot in `names` reports phase Training and has its Job."""
    started = time.monotonic()
    wanted = set(names)
    while time.monotonic() - started < timeout:
        training = {
            c["metadata"]["name"]
            for c in kubectl.list("mimical.dev/v1alpha1", "chatbots")
            if c.get("status", {}).get("phase") == "Training"
        }
        jobs = {j["metadata"]["labels"]["mimical.dev/chatbot"] for j in kubectl.jobs()}
        if wanted <= training & jobs:
            return time.monotonic() - started
        time.sleep(poll)  # listing is work for the API server too
    raise TimeoutError(f"not every chatbot reached Training within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chatbots", type=int, default=500)
    args = parser.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    s3_port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    moto = start_server(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(s3_port)], s3_port, workdir / "moto.log"
    )
    import boto3

    endpoint = f"http://127.0.0.1:{s3_port}"
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)

    with ApiServerThread([load_crd()]) as api:
        kubectl = Kubectl(api.url, NAMESPACE)
        env = {
            **os.environ,
            "MIMICAL_NAMESPACE": NAMESPACE,
            "MIMICAL_KUBE_API_URL": api.url,
            "MIMICAL_STORAGE_URL": f"s3://{bucket}/mimical",
            "MIMICAL_S3_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(ROOT),
        }
        log = (workdir / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, str(ROOT / "operator" / "main.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(3)  # imports and the first watch
            kubectl.apply_chatbot("baseline", {"source": SOURCE}).raise_for_status()
            one_seconds = wait_all_training(kubectl, ["baseline"], TARGET_SECONDS, 0.05)
            idle_mb = memory_mb(operator.pid, "VmRSS")

            names = [f"persona-{i:04d}" for i in range(args.chatbots)]
            clients = [Kubectl(api.url, NAMESPACE) for _ in range(16)]

            def create(index_name):
                index, name = index_name
                clients[index % len(clients)].apply_chatbot(name, {"source": SOURCE})

            started = time.monotonic()
            with ThreadPoolExecutor(len(clients)) as pool:
                list(pool.map(create, enumerate(names)))
            created_seconds = time.monotonic() - started
            all_seconds = created_seconds + wait_all_training(
                kubectl, names, 10 * TARGET_SECONDS, 0.5
            )
            peak_mb = memory_mb(operator.pid, "VmHWM")
            stat = Path(f"/proc/{operator.pid}/stat").read_text().split()
            operator_cpu = (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK")
        finally:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(30)
            except subprocess.TimeoutExpired:
                operator.kill()
            stop_server(moto)

    n = args.chatbots
    rows = [
        (
            "seconds to Training",
            f"{one_seconds:.2f} (1 chatbot)",
            f"{all_seconds:.2f}",
            f"{all_seconds / one_seconds:.0f}x",
            f"<= {TARGET_SECONDS:.0f} s",
            all_seconds <= TARGET_SECONDS,
        ),
        (
            "operator RSS, MB",
            f"{idle_mb:.0f} (idle)",
            f"{peak_mb:.0f} (peak)",
            f"{peak_mb / idle_mb:.2f}x",
            f"<= {TARGET_RSS_MB:.0f} MB",
            peak_mb <= TARGET_RSS_MB,
        ),
    ]
    print(f"\nOperator with {n} Chatbots created at once ({created_seconds:.1f} s to create)")
    print(f"| metric | baseline | {n} chatbots | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for *cells, met in rows:
        print("| " + " | ".join([*cells, "yes" if met else "NO"]) + " |")
    bench_cpu = time.process_time()
    print(f"\nCPU seconds: operator {operator_cpu:.1f}, API server + clients {bench_cpu:.1f}")
    print(f"operator log: {workdir / 'operator.log'}")


if __name__ == "__main__":
    main()
