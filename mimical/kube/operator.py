"""Run the mimical operator: the kopf handlers of `mimical.kube.handlers`, one namespace.

    python operator/main.py        # in the operator image; settings from MIMICAL_* env

It watches Chatbots and training Jobs in `MIMICAL_NAMESPACE` (so a namespaced Role
is enough, see `mimical.kube.rbac`), stores models under `MIMICAL_STORAGE_URL`
(s3://bucket/prefix), edits the shared TF Serving ConfigMap and asks the model server
(`MIMICAL_SERVING_ENDPOINT`, gRPC) whether a trained version answers yet. Tests run the same
`run_operator` in a thread against a mock API server.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading

from mimical.config import Settings
from mimical.errors import InputError

# The KopfPeering object the chart creates (charts/mimical/templates/operator-peering.yaml).
PEERING_NAME = "mimical"


def _configure_kopf(kopf_settings) -> None:
    """Where kopf keeps its own bookkeeping on Chatbots, and how it behaves."""
    import kopf

    from mimical.kube.handlers import FINALIZER

    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="mimical.dev", key="last-handled-configuration"
    )
    # Handler chatter ("Handler 'train' succeeded") stays in the log; Events are what users
    # act on: warnings, and the Normal ones the handlers post explicitly.
    kopf_settings.posting.level = logging.WARNING
    # Watch exactly our namespace: no cluster-wide namespace or CRD scanning (and no RBAC for it).
    kopf_settings.scanning.disabled = True
    kopf_settings.watching.server_timeout = 300
    kopf_settings.networking.request_timeout = 60
    kopf_settings.execution.max_workers = 8
    # Replicas coordinate through the chart's KopfPeering object: the highest priority works,
    # the others pause. Random priorities, since equal ones would pause everyone. Without the
    # peering object (a bare API server, the tests' mock) the operator runs standalone.
    kopf_settings.peering.name = PEERING_NAME
    kopf_settings.peering.mandatory = False
    kopf_settings.peering.priority = random.randint(1, 2**31 - 1)


def build_registry(mimical_settings: Settings, progress_interval: float | None = None):
    """A fresh kopf registry with our handlers, login and startup configuration."""
    import kopf

    from mimical.kube.handlers import PROGRESS_INTERVAL_SECONDS, register

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        if mimical_settings.kube_api_url:
            return kopf.ConnectionInfo(
                server=mimical_settings.kube_api_url, default_namespace=mimical_settings.namespace
            )
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_) -> None:
        _configure_kopf(settings)

    return register(registry, progress_interval or PROGRESS_INTERVAL_SECONDS)


def build_memo(settings: Settings):
    """What every handler gets as `memo`: settings, the cluster client, the model storage
    and a gRPC client of the model server (it says when a trained version answers)."""
    import kopf

    from mimical.kube.cluster import Cluster
    from mimical.serving.client import ModelClient
    from mimical.storage import open_storage

    if not settings.storage_url.startswith("s3://"):
        raise InputError(
            f"MIMICAL_STORAGE_URL={settings.storage_url!r}: the operator needs s3://bucket/prefix "
            "(TF Serving and the training Jobs read models from S3)"
        )
    return kopf.Memo(
        settings=settings,
        cluster=Cluster(settings),
        storage=open_storage(settings.storage_url, settings),
        model_server=ModelClient(settings.serving_endpoint),
    )


def run_operator(
    settings: Settings,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    progress_interval: float | None = None,
) -> None:
    """Run until `stop_flag` is set (or SIGINT/SIGTERM when it is None).

    `progress_interval`: seconds between refreshes of a training chatbot's progress.
    """
    import kopf

    memo = build_memo(settings)
    registry = build_registry(settings, progress_interval)
    try:
        asyncio.run(
            kopf.operator(
                registry=registry,
                memo=memo,
                namespaces=[settings.namespace],
                clusterwide=False,
                liveness_endpoint=settings.operator_liveness or None,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        )
    finally:
        memo.model_server.close()
