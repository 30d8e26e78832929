"""Operator throughput and memory: many Chatbots created at once must all start training.

    .venv/bin/python benchmarks/operator_bench.py [--chatbots 500] [--api emulator|real|both]

Starts moto's S3 server and a Kubernetes API server on 127.0.0.1 — the tests' emulator
(kmock) and/or the real control plane of tests/cluster (etcd + kube-apiserver +
kube-controller-manager from scripts/install-control-plane, the chart helm-installed, the
operator with its own ServiceAccount token) — runs the real operator as its own process
(`operator/main.py`), and measures on each:

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

from mimical.testing.apiserver import ApiServerThread, load_crd  # noqa: E402
from mimical.testing.controlplane import ControlPlane, binary_dir, missing_binaries  # noqa: E402
from mimical.testing.kubectl import NAMESPACE, Kubectl  # noqa: E402
from mimical.testing.release import Release, process_env  # noqa: E402
from mimical.testing.servers import start_moto, stop_server  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 250.0


def own_source(env: dict, name: str) -> str:
    """An upload of the chatbot's own: the operator refuses any other persona's objects."""
    return f"{env['MIMICAL_STORAGE_URL'].rstrip('/')}/uploads/{name}/1/export.zip"


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


def run_operator_bench(kubectl_factory, env: dict, n: int, log: Path) -> dict:
    """Baseline (one Chatbot) and load (n at once) against one API server."""
    kubectl = kubectl_factory()
    operator = subprocess.Popen(
        [sys.executable, str(ROOT / "operator" / "main.py")],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)  # imports and the first watch
        kubectl.apply_chatbot(
            "baseline", {"source": own_source(env, "baseline")}
        ).raise_for_status()
        one_seconds = wait_all_training(kubectl, ["baseline"], TARGET_SECONDS, 0.05)
        idle_mb = memory_mb(operator.pid, "VmRSS")

        names = [f"persona-{i:04d}" for i in range(n)]
        clients = [kubectl_factory() for _ in range(16)]

        def create(index_name):
            index, name = index_name
            clients[index % len(clients)].apply_chatbot(name, {"source": own_source(env, name)})

        started = time.monotonic()
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(create, enumerate(names)))
        created_seconds = time.monotonic() - started
        all_seconds = created_seconds + wait_all_training(kubectl, names, 10 * TARGET_SECONDS, 0.5)
        peak_mb = memory_mb(operator.pid, "VmHWM")
        stat = Path(f"/proc/{operator.pid}/stat").read_text().split()
        operator_cpu = (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK")
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
    return {
        "one": one_seconds,
        "all": all_seconds,
        "created": created_seconds,
        "idle_mb": idle_mb,
        "peak_mb": peak_mb,
        "cpu": operator_cpu,
    }


def on_emulator(bucket: str, endpoint: str, n: int, workdir: Path) -> dict:
    with ApiServerThread([load_crd()]) as api:
        env = {
            **os.environ,
            "MIMICAL_NAMESPACE": NAMESPACE,
            "MIMICAL_KUBE_API_URL": api.url,
            "MIMICAL_STORAGE_URL": f"s3://{bucket}/mimical",
            "MIMICAL_S3_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(ROOT),
        }
        return run_operator_bench(
            lambda: Kubectl(api.url, NAMESPACE), env, n, workdir / "operator-emulator.log"
        )


def on_real_api_server(bucket: str, endpoint: str, n: int, workdir: Path) -> dict:
    binaries = binary_dir()
    if missing := missing_binaries(binaries):
        raise SystemExit(f"{', '.join(missing)} missing: run scripts/install-control-plane")
    plane = ControlPlane(binaries, workdir / "control-plane")
    plane.workdir.mkdir()
    plane.start()
    try:
        namespace = "bench"
        plane.kubectl("create", "namespace", namespace)
        helm = Path(sys.executable).with_name("helm")
        subprocess.run(
            [
                str(helm),
                "install",
                "mimical",
                str(ROOT / "charts" / "mimical"),
                f"--namespace={namespace}",
                f"--kubeconfig={plane.admin_kubeconfig}",
                f"--set=storage.bucket={bucket}",
                "--set=storage.prefix=mimical",
                f"--set=storage.endpoint={endpoint}",
            ],
            check=True,
            capture_output=True,
        )
        env = {
            **os.environ,
            **process_env(
                plane, Release(namespace, bucket, endpoint), "operator", workdir / "operator"
            ),
        }

        def admin_kubectl():
            kubectl = Kubectl(plane.url, namespace)
            kubectl.http.trust_env = False  # else REQUESTS_CA_BUNDLE overrides `verify`
            kubectl.http.verify = str(plane.pki["ca.crt"])
            kubectl.http.cert = (str(plane.pki["admin.crt"]), str(plane.pki["admin.key"]))
            return kubectl

        return run_operator_bench(admin_kubectl, env, n, workdir / "operator-real.log")
    finally:
        plane.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chatbots", type=int, default=500)
    parser.add_argument("--api", choices=["emulator", "real", "both"], default="both")
    args = parser.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    moto, endpoint = start_moto(workdir)
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    apis = {"emulator": on_emulator, "real": on_real_api_server}
    wanted = list(apis) if args.api == "both" else [args.api]
    n = args.chatbots
    try:
        results = {api: apis[api](bucket, endpoint, n, workdir) for api in wanted}
    finally:
        stop_server(moto)

    print(f"\nOperator with {n} Chatbots created at once")
    print(f"| API server | metric | baseline | {n} chatbots | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for api, r in results.items():
        rows = [
            (
                "seconds to Training",
                f"{r['one']:.2f} (1 chatbot)",
                f"{r['all']:.2f} ({r['created']:.1f} creating)",
                f"{r['all'] / r['one']:.0f}x",
                f"<= {TARGET_SECONDS:.0f} s",
                r["all"] <= TARGET_SECONDS,
            ),
            (
                "operator RSS, MB",
                f"{r['idle_mb']:.0f} (idle)",
                f"{r['peak_mb']:.0f} (peak)",
                f"{r['peak_mb'] / r['idle_mb']:.2f}x",
                f"<= {TARGET_RSS_MB:.0f} MB",
                r["peak_mb"] <= TARGET_RSS_MB,
            ),
        ]
        for *cells, met in rows:
            print("| " + " | ".join([api, *cells, "yes" if met else "NO"]) + " |")
    cpu = ", ".join(f"{api} {r['cpu']:.1f}" for api, r in results.items())
    print(f"\noperator CPU seconds: {cpu}; logs in {workdir}")


if __name__ == "__main__":
    main()
