"""The Helm chart: lint, render, validate against Kubernetes' schemas, and check that
every pod is locked down the way the restricted Pod Security Standard asks.

Run: .venv/bin/pytest tests/deploy -q
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import fields

import kubernetes_validate
import pytest
import yaml

from mimical.config import Settings
from tests.deploy.conftest import CHART, VARIANTS, pod_specs, render


def kubernetes_version() -> str:
    return kubernetes_validate.latest_version()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict(helm, variant):
    args = [helm, "lint", str(CHART), "--strict"]
    for values_file in VARIANTS[variant]:
        args += ["--values", str(CHART / values_file)]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_object_matches_the_kubernetes_schema(rendered):
    variant, objects = rendered
    version = kubernetes_version()
    # Objects of the chart's own CRDs (the KopfPeering) meet their CRD on a real API server
    # in tests/cluster; kubernetes-validate only knows built-in kinds.
    own_kinds = {
        o["spec"]["names"]["kind"] for o in objects if o["kind"] == "CustomResourceDefinition"
    }
    for obj in objects:
        if obj["kind"] in own_kinds:
            continue
        # CustomResourceDefinition is itself a built-in kind, so the CRD is checked too.
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{variant}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_every_pod_runs_restricted(rendered):
    variant, objects = rendered
    specs = dict(pod_specs(objects))
    assert specs, "no workloads rendered"
    for name, spec in specs.items():
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("runAsUser", 0) > 0, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{variant}: {name}/{container['name']}"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("runAsNonRoot") is True, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert not security.get("privileged"), where
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"
            # A read-only root needs a writable /tmp.
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, where


def test_objects_carry_the_standard_labels(rendered):
    variant, objects = rendered
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"].get("labels", {})
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, f"{variant}: {obj['kind']}/{obj['metadata']['name']} lacks {key}"
        assert len(obj["metadata"]["name"]) <= 63


def test_services_and_budgets_select_existing_pods(rendered):
    variant, objects = rendered
    from mimical.kube.manifests import training_job

    pod_labels = [
        spec_owner["spec"]["template"]["metadata"]["labels"]
        for spec_owner in objects
        if spec_owner["kind"] in ("Deployment", "StatefulSet")
    ]
    # The operator's training pods are selected too (their NetworkPolicy).
    job = training_job("alice", 1, {"source": "s3://b/uploads/alice/1/x.zip"}, Settings())
    pod_labels.append(job["spec"]["template"]["metadata"]["labels"])
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            selector = obj["spec"]["podSelector" if obj["kind"] == "NetworkPolicy" else "selector"]
            selector = selector["matchLabels"]
        else:
            continue
        assert any(selector.items() <= labels.items() for labels in pod_labels), (
            f"{variant}: {obj['kind']}/{obj['metadata']['name']} selects no pod"
        )


def test_replicated_workloads_have_disruption_budgets(rendered):
    variant, objects = rendered
    budgets = [obj for obj in objects if obj["kind"] == "PodDisruptionBudget"]
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["spec"]["replicas"] > 1:
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert any(
                budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
                for budget in budgets
            ), f"{variant}: Deployment/{obj['metadata']['name']} has no PodDisruptionBudget"


def test_env_names_match_settings(rendered):
    """A misspelt MIMICAL_* variable would be silently ignored by Settings.from_env."""
    variant, objects = rendered
    known = {f"MIMICAL_{field.name.upper()}" for field in fields(Settings)}
    for name, spec in pod_specs(objects):
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                if env["name"].startswith("MIMICAL_"):
                    assert env["name"] in known, f"{variant}: {name}: unknown {env['name']}"


def component_env(objects: list[dict], component: str) -> dict[str, str]:
    """The plain `value` variables of a component's first container."""
    return next(
        {e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e}
        for name, spec in pod_specs(objects)
        if name.endswith(f"-{component}")
    )


@pytest.mark.parametrize("component", ["operator", "backend", "webhook"])
def test_rbac_mirrors_the_rules_the_code_lists(rendered, component):
    from mimical.kube.rbac import RULES

    variant, objects = rendered
    env = component_env(objects, component)
    settings = Settings.from_env(env)
    role = next(
        obj
        for obj in objects
        if obj["kind"] == "Role" and obj["metadata"]["name"].endswith(f"-{component}")
    )

    def normal(rules):
        return sorted(
            json.dumps({k: sorted(v) for k, v in rule.items()}, sort_keys=True) for rule in rules
        )

    if component == "operator":
        assert settings.serving_configmap == env["MIMICAL_SERVING_CONFIGMAP"]
    assert normal(role["rules"]) == normal(RULES[component](settings)), variant
    # The one Secret they may touch exists, made by the chart.
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert env["MIMICAL_CHATBOT_SECRETS"] in secrets


def test_no_role_reaches_a_secret_by_type_alone(rendered):
    """Secrets are named (resourceNames) in every rule: no component reads them all."""
    variant, objects = rendered
    for role in (o for o in objects if o["kind"] == "Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames"), f"{variant}: {role['metadata']['name']}"


def test_workloads_wire_to_each_other(rendered):
    """The operator, web services and TF Serving agree on names, ports and the ConfigMap."""
    variant, objects = rendered
    by_kind = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    envs = {}
    for name, spec in pod_specs(objects):
        for container in spec["containers"]:
            envs[f"{name}/{container['name']}"] = {
                e["name"]: e.get("value") for e in container.get("env", [])
            }
    operator_env = next(v for k, v in envs.items() if k.endswith("-operator/operator"))
    service, port = operator_env["MIMICAL_SERVING_ENDPOINT"].split(":")
    assert ("Service", service) in by_kind and port == "8500"
    # The operator makes the model ConfigMap; TF Serving's pods mount it (optional until then).
    tfserving = next(spec for name, spec in pod_specs(objects) if name.endswith("-tfserving"))
    (entries,) = [v["configMap"] for v in tfserving["volumes"] if v["name"] == "entries"]
    assert entries == {"name": operator_env["MIMICAL_SERVING_CONFIGMAP"], "optional": True}
    assert ("ConfigMap", entries["name"]) not in by_kind  # no data of the chart's to restore
    for key, env in envs.items():
        if key.endswith(("-backend/backend", "-webhook/webhook")):
            assert env["MIMICAL_MODEL_SERVER"] == operator_env["MIMICAL_SERVING_ENDPOINT"]
            assert env["MIMICAL_ORCHESTRATOR"] == "kubernetes"
            assert "REDIS_URL" in env
            redis_host = re.match(
                r"rediss?://(?:[^@/]*@)?([^:/]+)", env["REDIS_URL"] or "redis://x"
            )
            if variant != "external":
                assert ("Service", redis_host.group(1)) in by_kind


def test_gpu_variant_schedules_tfserving_on_gpus(helm):
    objects = render(helm, VARIANTS["gpu"])
    tfserving = next(
        obj
        for obj in objects
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].endswith("-tfserving")
    )
    spec = tfserving["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"].endswith("-gpu")
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    operator = next(
        obj
        for obj in objects
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].endswith("-operator")
    )
    container = operator["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["MIMICAL_TRAINING_GPU_TOLERATIONS"])[0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "redis.enabled=false"], "externalUrl"),
        (["--set", "backend.replicaCount=0"], "replicaCount"),
        (["--set", "backend.image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "storage.bucket=Not_A_Bucket"], "bucket"),
        (["--set", "surprise=1"], "surprise"),
        (["--set", "metrics.port=8080"], "port"),
        (["--set", "metrics.responderPort=80"], "responderPort"),
        (["--set", "metrics.port=9091"], "give them different ports"),
        (["--set", "metrics.serviceMonitor.interval=often"], "interval"),
        (["--set-string", "messenger.inboxAppId=page-inbox"], "inboxAppId"),
    ],
)
def test_schema_refuses_bad_values(helm, override, complaint):
    result = subprocess.run(
        [helm, "template", "mimical", str(CHART), *override], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert complaint in result.stderr


def test_every_value_is_documented():
    """Every key in values.yaml has a comment on the line above it or above an ancestor."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    ancestors: list[tuple[int, bool]] = []  # (indent, has its own comment), outermost first
    for number, line in enumerate(lines):
        match = re.match(r"^( *(?:- )?)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        commented = number > 0 and lines[number - 1].strip().startswith("#")
        documented = commented or any(doc for _, doc in ancestors)
        assert documented, f"values.yaml:{number + 1}: {match.group(2)} has no comment"
        ancestors.append((indent, commented))
    # The schema covers exactly the keys values.yaml has.
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(schema["properties"]) == set(values)
    assert schema["additionalProperties"] is False


def test_training_jobs_from_the_rendered_operator_settings_are_valid(rendered):
    """The operator, configured exactly as the chart configures it, builds valid Jobs."""
    from mimical.kube.manifests import training_job

    variant, objects = rendered
    operator = next(
        obj
        for obj in objects
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].endswith("-operator")
    )
    env = {
        e["name"]: e["value"]
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
        if "value" in e
    }
    settings = Settings.from_env({**env, "MIMICAL_NAMESPACE": "chat"})
    assert settings.storage_url.startswith("s3://")
    spec = {"source": f"{settings.storage_url}/uploads/alice/1/export.zip", "training": {"gpu": 1}}
    job = training_job("alice", 1, spec, settings)
    kubernetes_validate.validate(job, kubernetes_version(), strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == env["MIMICAL_TRAINING_IMAGE"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Its ServiceAccount is the chart's, which mounts no API token.
    (account,) = [
        o
        for o in objects
        if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == pod["serviceAccountName"]
    ]
    assert account["automountServiceAccountToken"] is False
    for ref in (
        e["valueFrom"]["secretKeyRef"] for e in pod["containers"][0]["env"] if "valueFrom" in e
    ):
        assert ref["name"], f"{variant}: a training Job reads a Secret with no name"


def test_tfserving_starts_from_a_config_it_can_parse(rendered):
    """What the operator writes for no chatbot yet is a valid (empty) ModelServerConfig."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from mimical.kube.manifests import serving_config_data

    variant, objects = rendered
    settings = Settings.from_env(component_env(objects, "operator"))
    data = serving_config_data({}, settings.storage_url)
    config = text_format.Parse(data["models.config"], model_server_config_pb2.ModelServerConfig())
    assert len(config.model_config_list.config) == 0
    assert json.loads(data["models.json"]) == {}


def test_web_pods_trust_the_ingress_and_redis_never_evicts(helm):
    """Behind the ingress each client counts as itself; a full Redis refuses, never evicts."""
    objects = render(helm, VARIANTS["default"])
    checked = set()
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if container["name"] in ("backend", "webhook"):
                assert env["MIMICAL_TRUSTED_PROXY_HOPS"] == "1"
                checked.add(container["name"])
            if container["name"] == "redis":
                checked.add("redis")
                args = container["args"]
                assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
                assert args[args.index("--maxmemory") + 1] == "200mb"
    assert checked == {"backend", "webhook", "redis"}


def test_metrics_have_their_own_ports_reached_only_from_monitoring(helm):
    """/metrics on ports named `metrics`, in the Services, admitted by the NetworkPolicy
    only from `networkPolicy.metricsFrom`; the probes stay on the web port."""
    objects = render(helm, VARIANTS["default"], "--set", "metrics.serviceMonitor.enabled=true")
    monitoring = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    expected_ports = {
        "backend": {"metrics": 9090},
        "webhook": {"metrics": 9090, "metrics-respond": 9091},
    }
    for component, ports in expected_ports.items():
        name = f"mimical-{component}"
        spec = by_kind["Deployment"][name]["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in spec["containers"]}
        web = containers[component]
        env = {e["name"]: e.get("value") for e in web["env"]}
        assert env["MIMICAL_METRICS_PORT"] == "9090"
        named = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c["ports"]}
        assert named == {"http": 8080, **ports}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert web[probe]["httpGet"]["port"] == "http", f"{component} {probe}"
        if component == "webhook":
            assert "--metrics-port=9091" in containers["responder"]["command"]
        service_ports = {p["name"]: p for p in by_kind["Service"][name]["spec"]["ports"]}
        for port_name, number in ports.items():
            assert service_ports[port_name]["targetPort"] == port_name
            assert service_ports[port_name]["port"] == number
        endpoints = by_kind["ServiceMonitor"][name]["spec"]["endpoints"]
        assert {e["port"] for e in endpoints} == set(ports)
        assert all(e["path"] == "/metrics" for e in endpoints)
        rules = by_kind["NetworkPolicy"][name]["spec"]["ingress"]
        web_rule, metrics_rule = rules
        assert [p["port"] for p in web_rule["ports"]] == [8080]
        assert sorted(p["port"] for p in metrics_rule["ports"]) == sorted(ports.values())
        assert metrics_rule["from"] == monitoring
    # No metricsFrom: nobody outside the pod reaches the metrics ports.
    closed = render(helm, VARIANTS["default"], "--set-json", "networkPolicy.metricsFrom=[]")
    for obj in closed:
        if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"] == "mimical-backend":
            assert [[p["port"] for p in rule["ports"]] for rule in obj["spec"]["ingress"]] == [
                [8080]
            ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [([], "263902037430900"), (["--set-string", "messenger.inboxAppId="], "")],
)
def test_the_handover_app_reaches_the_webhook_and_its_responder(helm, override, expected):
    """Conversations handed to a human go to the Page inbox unless the values say
    otherwise; "" turns the handover off (the persona only stays silent)."""
    objects = render(helm, VARIANTS["default"], *override)
    containers = [
        container
        for _, spec in pod_specs(objects)
        for container in spec["containers"]
        if container["name"] in ("webhook", "responder")
    ]
    assert {c["name"] for c in containers} == {"webhook", "responder"}
    for container in containers:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["MIMICAL_MESSENGER_INBOX_APP_ID"] == expected
