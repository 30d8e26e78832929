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

# The training budget (minutes of the training loop) when nothing else is asked: of
# `mimical demo`, of builds through `mimical serve` and of a Chatbot resource (the CRD's
# `spec.training.maxMinutes` default, which `mimical.kube.manifests` applies too; tests/kube
# ties the two); chosen by quality against time on held-out people (README, "Training and
# evaluating a persona").
DEFAULT_TRAINING_MINUTES = 0.5


def _default_home() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "mimical"


def _checked_rate_limit(variable: str, raw: str) -> str:
    """`raw` if it is a rate limit in `limits` notation; else one clear error naming the
    variable, at start-up rather than as a 500 on the first request it limits."""
    from limits import parse_many

    from mimical.errors import InputError

    try:
        parse_many(raw)
    except ValueError:
        raise InputError(
            f"{variable}={raw!r} is not a rate limit; write it like '10 per hour' or '5/minute'"
        ) from None
    return raw


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
    # Training pods: their ServiceAccount (the cloud identity, e.g. an IRSA role or a GKE
    # workload identity, hangs on it; empty: the namespace's default), their image pull
    # policy (empty: the cluster's default) and the registry Secrets every pod the operator
    # makes pulls with (JSON list of names, e.g. ["regcred"]).
    training_service_account: str = ""
    training_image_pull_policy: str = ""
    image_pull_secrets: str = ""
    # Images a Chatbot's spec.training.image may name besides `training_image` (JSON list):
    # anyone who may edit a Chatbot would otherwise run any image with the S3 credentials.
    training_allowed_images: str = ""
    s3_secret: str = ""
    # Operator: kopf's liveness endpoint, e.g. http://0.0.0.0:8080/healthz (the chart's
    # livenessProbe asks it); empty: none.
    operator_liveness: str = ""
    serving_configmap: str = "mimical-tfserving-models"
    # The one Secret holding every chatbot's password hash and owner-token digest (keys
    # NAME.passwordHash, NAME.ownerTokenHash; the chart creates it): the only Secret the
    # backend, the webhook and the operator may touch, so none of them can read the S3
    # keys, Messenger tokens or Helm's release Secrets beside it.
    chatbot_secrets: str = "mimical-chatbot-secrets"
    serving_endpoint: str = "mimical-tfserving:8500"
    # Seconds a trained version may take to answer on the model server (mirror copy, TF
    # Serving's config poll and load). Past it the operator warns (Event LoadTimeout) and
    # the chatbot goes back to the version that answers, or to Failed with none.
    serving_load_deadline: float = 900.0
    # Training pod defaults (JSON, set by the chart): resources; for GPU Chatbots the device
    # plugin's resource name, a node selector and tolerations.
    training_resources: str = ""
    training_gpu_resource: str = "nvidia.com/gpu"
    training_gpu_node_selector: str = ""
    training_gpu_tolerations: str = ""
    # One training Job's request, set on the Job by the operator
    # (`mimical.kube.manifests.training_job`) and read by `mimical.kube.training_job`: the
    # chatbot (MIMICAL_CHATBOT), its source (MIMICAL_SOURCE: s3:// URL of an export file or
    # zip, or of a corpus .jsonl), the Job's name (empty: CHATBOT-train), the training
    # budget (empty: the pipeline's defaults; the local orchestrator's builds honour
    # MIMICAL_TRAINING_MAX_MINUTES too) and the persona's name in the export (MIMICAL_ME).
    chatbot: str = ""
    source: str = ""
    training_job: str = ""
    training_max_minutes: float | None = None
    training_epochs: int | None = None
    me: str = ""
    # The model-mirror sidecar of the TF Serving pod (`mimical.kube.model_mirror`): the
    # operator's models.json, the directory TF Serving reads, seconds between passes.
    mirror_entries: Path = Path("/etc/mimical/serving/models.json")
    mirror_dir: Path = Path("/models")
    mirror_interval: float = 15.0
    # Messenger Platform. The Graph API version is part of the URL; each version works
    # for about two years (v26.0, July 2026, is the latest as of this writing).
    graph_api_url: str = "https://graph.facebook.com/v26.0"
    fb_app_secret: str = ""
    fb_verify_token: str = ""
    fb_page_access_token: str = ""
    # The Facebook app's id: tells our own echoes and thread-control events from other
    # apps' (ours also carry a `mimical:` tag), and lets `mimical messenger setup` read the
    # app-level webhook subscription. Empty: read from the page token (`GET /app`).
    fb_app_id: str = ""
    # How long a Page admin's own message (typed in the Page inbox) silences the persona in
    # that conversation: the person answering is not talked over. `%restart` from the
    # user, or the thread passed back to our app, ends it early.
    messenger_human_pause_seconds: int = 30 * 60
    # Meta's standard messaging window: a reply may follow the person's message for this
    # long. A message queued longer (a backlog after an outage) is not answered late,
    # and a throttled reply (Graph codes 613, 800xx) is retried until then, not after.
    messenger_reply_window_seconds: float = 24 * 3600
    # The Page inbox's app id (Meta's, the same for every Page): where the persona passes
    # a conversation (handover protocol) when the person asks for a human or a Page admin
    # answers by hand, to take it back once the silence ends. Empty: only stay silent.
    messenger_inbox_app_id: str = "263902037430900"
    # Say on the first reply of each Messenger session that the replies are automated
    # (required by law in places, and by Meta's policies there); the text is configurable.
    messenger_disclosure: bool = True
    messenger_disclosure_text: str = (
        "Replies here are automated: each persona is a computer program trained on a "
        'person\'s messages, not the person. Send "%forget" to delete what we keep about you.'
    )
    # A chatbot whose owner this Messenger Page belongs to: the Page speaks only as that
    # persona, and only in the owner's away window (`mimical.web.away`). Empty: a Page
    # where anyone picks a public persona.
    messenger_page_owner: str = ""
    # Who answers privacy questions (an e-mail address or URL), shown on the privacy page
    # (`/messenger/privacy`, the URL App Review asks for). Empty: not shown.
    privacy_contact: str = ""
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
    # Port of every interface on which /metrics and /readyz-with-the-reason answer, with
    # no authentication (keep it inside the cluster: the chart's NetworkPolicy admits only
    # the monitoring namespace); 0: none. The web port answers /metrics 404 for everyone.
    metrics_port: int = 0
    keep_uploads: bool = False
    # Rate limits (`limits` notation, moving windows; README "Passwords", "Security").
    # Wrong passwords (and owner tokens) per client (one address or Messenger user,
    # whatever channel it uses) and chatbot, and per chatbot from every client together,
    # so guessing from many addresses stops too.
    password_rate_limit: str = "5 per 15 minutes"
    password_persona_rate_limit: str = "30 per hour"
    # API: creating or retraining (each starts a training run), and upload attempts
    # (refused ones too: each is read and checked), per client.
    build_rate_limit: str = "10/hour"
    upload_rate_limit: str = "30/hour"
    # Uploads one process receives at once, in all and from one address; 429 past them.
    uploads_at_once: int = 1
    uploads_at_once_per_client: int = 1
    # Web chat messages per visitor (a person types far slower; a script looping on the
    # model is cut off) and per address (several people behind one NAT, not a script that
    # drops its cookie); new sessions per address (each is kept for a day, so this bounds
    # what one address can store).
    chat_rate_limit: str = "30 per minute"
    chat_address_rate_limit: str = "120 per minute"
    chat_session_rate_limit: str = "30 per hour"
    # Reply drafts per client and chatbot: a person asks a few a minute.
    suggestions_rate_limit: str = "60 per minute"
    # Public base URL of the web chat, used in links handed to users.
    public_url: str = "http://127.0.0.1:8080"

    @property
    def storage_root(self) -> str:
        return self.storage_url or (self.home / "storage").as_uri()

    def check_someone_answers(self) -> None:
        """Refuse a process that would store Messenger events in memory and never answer
        them: with no worker threads, only `mimical messenger respond` answers, from Redis."""
        from mimical.errors import InputError

        if self.messenger_workers < 1 and not self.redis_url:
            raise InputError(
                "MIMICAL_MESSENGER_WORKERS=0 leaves Messenger events to `mimical messenger "
                "respond`, which needs the queue in Redis: set REDIS_URL"
            )

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
            variable = next((n for n in names if env.get(n)), None)
            if variable is None:
                continue
            values[f.name] = _parsed(f.name, str(f.type), variable, env[variable])
        return cls(**values)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _parsed(name: str, kind: str, variable: str, raw: str):
    """`raw` as the field's type, or one clear error naming the variable: a typo fails at
    start-up, not as a wrong default or a crash on first use."""
    from mimical.errors import InputError

    kind = kind.removesuffix(" | None")
    if name.endswith("_rate_limit"):
        return _checked_rate_limit(variable, raw)
    if kind == "Path":
        return Path(raw).expanduser()
    if kind == "bool":
        word = raw.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise InputError(f"{variable}={raw!r} is not a yes or no; write true or false")
        return word in TRUE_WORDS
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            what = "a whole number" if kind == "int" else "a number"
            raise InputError(f"{variable}={raw!r} is not {what}") from None
    return raw
