"""Runtime settings, read once from the environment.

Every service (CLI, API, webhook, operator, training job) reads the same
`Settings`; tests build one directly with overrides instead of touching
`os.environ`. Unset values give the embedded default: local files, in-memory
sessions, an in-process model server and local training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


def _default_home() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "mimical"


@dataclass(frozen=True)
class Settings:
    # Where embedded mode keeps its registry, storage and scratch space.
    home: Path = field(default_factory=_default_home)
    # Object storage root: file:///path or s3://bucket/prefix. Empty: <home>/storage.
    storage_url: str = ""
    # S3-compatible endpoint (MinIO, moto); empty means AWS itself.
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    # Redis for sessions, webhook dedupe and rate limits; empty keeps them in memory.
    redis_url: str = ""
    # host:port of a TF Serving compatible gRPC server; empty starts one in-process.
    model_server: str = ""
    # How chatbots get built: "local" (worker process) or "kubernetes" (Chatbot resources).
    orchestrator: str = "local"
    namespace: str = "default"
    # Kubernetes API URL for development and tests; empty: in-cluster account, else kubeconfig.
    kube_api_url: str = ""
    # Operator: training image, the Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY that
    # training Jobs read (empty: the cluster gives credentials, e.g. IRSA), and the shared
    # TF Serving's model-config ConfigMap and gRPC endpoint.
    training_image: str = "mimical-training:0.1.0"
    s3_secret: str = ""
    serving_configmap: str = "mimical-tfserving-models"
    serving_endpoint: str = "mimical-tfserving:8500"
    # Training pod defaults (JSON, set by the chart): resources; for GPU Chatbots the device
    # plugin's resource name, a node selector and tolerations.
    training_resources: str = ""
    training_gpu_resource: str = "nvidia.com/gpu"
    training_gpu_node_selector: str = ""
    training_gpu_tolerations: str = ""
    # Messenger Platform. The Graph API version is part of the URL; each version works
    # for about two years (v26.0, July 2026, is the latest as of this writing).
    graph_api_url: str = "https://graph.facebook.com/v26.0"
    fb_app_secret: str = ""
    fb_verify_token: str = ""
    fb_page_access_token: str = ""
    # Threads answering Messenger events in each webhook process. 0 (Redis only): the
    # webhook only stores and acknowledges events, and `mimical messenger respond`
    # answers them in processes of their own, so acknowledging never waits for a CPU
    # busy with answers (what the chart runs).
    messenger_workers: int = 8
    # Uploads larger than this are refused with 413; raw uploads are deleted after import.
    upload_max_bytes: int = 512 * 1024 * 1024
    # Every other request body (webhook events, chat messages, JSON): 413 past this, read
    # no further.
    body_max_bytes: int = 256 * 1024
    # Reverse proxies in front of the web services whose X-Forwarded-For/-Proto to trust
    # (the ingress: 1). 0 trusts none: the client is the socket's peer.
    trusted_proxy_hops: int = 0
    # Bearer token that lets a scraper read /metrics from another host; empty: only
    # loopback clients may (the web ports face the internet through the ingress).
    metrics_token: str = ""
    keep_uploads: bool = False
    # Public base URL of the web chat, used in links handed to users.
    public_url: str = "http://127.0.0.1:8080"

    @property
    def storage_root(self) -> str:
        return self.storage_url or (self.home / "storage").as_uri()

    def with_overrides(self, **overrides) -> Settings:
        return replace(self, **overrides)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read `MIMICAL_<FIELD>` variables (plus the conventional REDIS_URL and AWS ones)."""
        env = os.environ if environ is None else environ
        aliases = {
            "redis_url": ["REDIS_URL"],
            "s3_endpoint_url": ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
            "s3_region": ["AWS_REGION", "AWS_DEFAULT_REGION"],
        }
        values: dict[str, object] = {}
        for f in fields(cls):
            names = [f"MIMICAL_{f.name.upper()}", *aliases.get(f.name, [])]
            raw = next((env[n] for n in names if env.get(n)), None)
            if raw is None:
                continue
            if f.name == "home":
                values[f.name] = Path(raw).expanduser()
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        return cls(**values)
