"""A Kubernetes API server for tests: kmock's emulator plus what a real one adds.

kmock (the kopf author's mock server) stores objects, serves list/watch/patch and
honours finalizers. A real API server also stamps metadata (uid, namespace, generateName,
generation bumped on spec changes, resourceVersion moved only by a real change),
fills in and validates custom resources against their CRD's OpenAPI schema (defaults
on create), keeps `status` apart from the main resource, and filters lists by label
selector (equality, existence and set terms); `ApiServer` adds those few behaviours so
the operator meets the same contract it meets in a cluster, and
`tests/cluster/test_apiserver_parity.py` holds it to that against a real kube-apiserver.
It keeps no request log, so it stays fast under the operator benchmark's thousands of
requests.

`ApiServerThread` runs it on 127.0.0.1 in a thread of its own (the operator runs in
another one, and tests talk to it over HTTP, like kubectl).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import re
import threading
import uuid
from pathlib import Path

import attrs
import jsonpatch
import jsonschema
import kmock
import yaml

CRD_PATH = Path(__file__).parents[2] / "charts" / "mimical" / "crds" / "chatbots.mimical.dev.yaml"

BUILTIN_RESOURCES = {
    "v1/namespaces": ("Namespace", set()),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/secrets": ("Secret", set()),
    "v1/events": ("Event", set()),
    "events.k8s.io/v1/events": ("Event", set()),
    "batch/v1/jobs": ("Job", {"status"}),
    "v1/pods": ("Pod", {"status"}),
}
VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}
# One label selector term: `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
# `key notin (a,b)`, followed by a comma or the end.
SELECTOR_TERM = re.compile(
    r"\s*(?P<absent>!)?\s*(?P<key>[\w./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?"
    r"\s*(?:,|$)"
)


def load_crd(path: Path = CRD_PATH) -> dict:
    return yaml.safe_load(path.read_text())


def apply_defaults(schema: dict, value) -> None:
    """Fill in the schema's `default`s that `value` lacks, depth first, as on create."""
    if isinstance(value, dict):
        for key, field in (schema.get("properties") or {}).items():
            if key not in value and "default" in field:
                value[key] = copy.deepcopy(field["default"])
            if key in value:
                apply_defaults(field, value[key])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)


def label_selector(selector: str):
    """A predicate on a labels dict for a Kubernetes label selector string."""
    terms, position = [], 0
    while position < len(selector):
        term = SELECTOR_TERM.match(selector, position)
        if term is None or term.end() == position:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message=f"unable to parse selector {selector!r}"
            )
        terms.append(term)
        position = term.end()

    def holds(term, labels: dict) -> bool:
        key = term["key"]
        if term["absent"]:
            return key not in labels
        if term["op"] in ("=", "=="):
            return labels.get(key) == term["value"]
        if term["op"] == "!=":
            return labels.get(key) != term["value"]
        if term["set"]:
            listed = labels.get(key) in {v.strip() for v in term["values"].split(",")}
            return listed if term["set"] == "in" else not listed
        return key in labels

    return lambda labels: all(holds(term, labels) for term in terms)


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with API-server metadata, CRD validation and selectors."""

    # plural → the OpenAPI schema of the served version, for CRDs given to `add_crd`.
    schemas: dict = attrs.field(factory=dict)
    _versions: itertools.count = attrs.field(factory=lambda: itertools.count(1))
    _in_flight: set = attrs.field(factory=set)

    def add_builtin_resources(self) -> None:
        for key, (kind, subresources) in BUILTIN_RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=kind != "Namespace", verbs=VERBS, subresources=subresources
            )

    def add_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            self.resources[f"{spec['group']}/{version['name']}/{spec['names']['plural']}"] = (
                kmock.ResourceInfo(
                    kind=spec["names"]["kind"],
                    singular=spec["names"]["singular"],
                    namespaced=spec["scope"] == "Namespaced",
                    shortnames=set(spec["names"].get("shortNames", [])),
                    verbs=VERBS,
                    subresources=set(version.get("subresources", {})),
                )
            )
            self.schemas[spec["names"]["plural"]] = version["schema"]["openAPIV3Schema"]

    def _validate(self, request, obj: dict) -> None:
        schema = self.schemas.get(request.resource.plural)
        if schema is None:
            return
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=str)
        if errors:
            where = ".".join(str(p) for p in errors[0].absolute_path) or "(root)"
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message=f"{where}: {errors[0].message}"
            )

    def _stamp(self) -> str:
        return str(next(self._versions))

    async def _handle(self, request):
        # kmock logs every request for assertions, and routing scans that log: keep only the
        # requests still being served, so the server stays fast at thousands of requests.
        self._in_flight.add(request)
        self._requests[:] = [r for r in self._requests if r in self._in_flight]
        try:
            return await self._handle_in_flight(request)
        finally:
            self._in_flight.discard(request)

    async def _handle_in_flight(self, request):
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            if request.action == kmock.action.CREATE:
                if "status" in self.resources[request.resource].subresources:
                    data.pop("status", None)  # written through its subresource only
                if (schema := self.schemas.get(request.resource.plural)) is not None:
                    apply_defaults(schema, data)
                self._validate(request, data)
                meta = data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("namespace", request.namespace)
                meta["uid"] = str(uuid.uuid4())
                meta["generation"] = 1
                meta["resourceVersion"] = self._stamp()
                meta["creationTimestamp"] = (
                    datetime.datetime.now(datetime.UTC)
                    .isoformat(timespec="seconds")
                    .replace("+00:00", "Z")
                )
            elif request.action == kmock.action.UPDATE:
                self._update_metadata(request, data)
        try:
            response = await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as error:
            # kopf guards its JSON patches with a resourceVersion "test"; a real API server
            # refuses a stale one with 422, which kopf takes as "newer changes are coming".
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(error)) from None
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)  # what a real API server answers (clients check it)
        return response

    def _update_metadata(self, request, data: dict) -> None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return
        current = self.objects[key].raw
        expected = (data.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"].get("resourceVersion"):
            # Optimistic locking: a write based on a stale read is refused, as a real API
            # server does.
            raise kmock.KubernetesError(
                status=409, reason="Conflict", message="the object has been modified"
            )
        has_status = "status" in self.resources[request.resource].subresources
        if request.subresource == "status":
            for field in [f for f in data if f != "status"]:  # only status changes there
                del data[field]
        elif has_status:
            data.pop("status", None)  # ...and never through the main resource
        # kmock's own merge-patch semantics (None deletes a key), on a copy of the object.
        patched = kmock.Object(current)
        patched.patch(copy.deepcopy(data))
        merged = patched.raw
        self._validate(request, merged)
        meta = data.setdefault("metadata", {})
        if merged.get("spec") != current.get("spec"):
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        if merged != current:  # a write that changes nothing keeps the resourceVersion
            meta["resourceVersion"] = self._stamp()

    async def _serve_list(self, request):
        listing = await super()._serve_list(request)
        if selector := request.params.get("labelSelector"):
            selected = label_selector(selector)
            listing["items"] = [
                item for item in listing["items"] if selected(item["metadata"].get("labels", {}))
            ]
        return listing


class ApiServerThread:
    """Run an `ApiServer` on 127.0.0.1 in a background thread; `url` is its address."""

    def __init__(self, crds: list[dict]):
        self.crds = crds
        self.url = ""
        self.server: ApiServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-api", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> ApiServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the test thread by __enter__
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with ApiServer() as server, kmock.Server(server, host="127.0.0.1") as http:
            server.add_builtin_resources()
            for crd in self.crds:
                server.add_crd(crd)
            self.server = server
            self.url = str(http.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()
