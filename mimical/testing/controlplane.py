"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager.

The binaries come from `scripts/install-control-plane` (built from Go modules, cached by
version). Like controller-runtime's envtest, there are no nodes: pods are created and
admitted, then stay Pending; the tests play the kubelet where they need a pod to run.

The API server authorises with RBAC, issues ServiceAccount tokens signed with a key made
here, and runs the default admission chain (Pod Security included) plus OpenShift's
owner-reference check. The controller
manager runs the controllers that turn workloads into pods and clean up after them.
Everything lives in one temporary directory, TLS included (a CA made for the session).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import time
from pathlib import Path

import requests
import yaml

from mimical.testing.servers import free_port, stop_server

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "scripts" / "install-control-plane"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
SERVICE_CIDR = "10.0.0.0/24"
CONTROLLERS = (
    "job-controller",
    "replicaset-controller",
    "deployment-controller",
    "statefulset-controller",
    # Frees the volume claims a StatefulSet made (Redis's) once no pod uses them, as in any
    # cluster: without it their `kubernetes.io/pvc-protection` finalizer keeps a deleted
    # namespace Terminating.
    "persistentvolumeclaim-protection-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "ttl-after-finished-controller",
)


def binary_dir() -> Path:
    """Where scripts/install-control-plane caches this version's binaries."""
    result = subprocess.run(
        [str(INSTALLER), "--print-dir"], capture_output=True, text=True, check=True
    )
    return Path(result.stdout.strip())


def missing_binaries(directory: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


# TLS and signing keys ---------------------------------------------------------------


def _key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key, path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _certificate(subject_key, common_name, issuer=None, *, organization=None, ca=False, sans=()):
    """A certificate for `subject_key`, self-signed when `issuer` is None ((cert, key))."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    issuer_cert, issuer_key = issuer or (None, subject_key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH if sans else ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        names = [
            x509.IPAddress(ipaddress.ip_address(name)) if name[0].isdigit() else x509.DNSName(name)
            for name in sans
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> dict[str, Path]:
    """CA, API server serving cert, admin client cert, ServiceAccount signing key pair."""
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    files = {
        name: directory / name
        for name in (
            "ca.crt",
            "server.crt",
            "server.key",
            "admin.crt",
            "admin.key",
            "sa.key",
            "sa.pub",
        )
    }
    ca_key = _key()
    ca_cert = _certificate(ca_key, "mimical-test-ca", ca=True)
    files["ca.crt"].write_bytes(_pem(ca_cert))
    server_key = _key()
    sans = (
        "127.0.0.1",
        "10.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    server = _certificate(server_key, "kube-apiserver", (ca_cert, ca_key), sans=sans)
    files["server.crt"].write_bytes(_pem(server))
    _write_key(server_key, files["server.key"])
    admin_key = _key()
    admin = _certificate(admin_key, "admin", (ca_cert, ca_key), organization="system:masters")
    files["admin.crt"].write_bytes(_pem(admin))
    _write_key(admin_key, files["admin.key"])
    sa_key = _key()
    _write_key(sa_key, files["sa.key"])
    files["sa.pub"].write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return files


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict, namespace: str = "default"):
    """A kubeconfig with one cluster, one user (client cert or token) and one context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "user", "namespace": namespace}}
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# The control plane ------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager as child processes in `workdir`."""

    def __init__(self, binaries: Path, workdir: Path):
        self.binaries = binaries
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.pki: dict[str, Path] = {}
        self.admin_kubeconfig = workdir / "admin.kubeconfig"

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(self.binaries / name), *args], stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def _wait(self, what: str, process: subprocess.Popen, ready, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = (self.workdir / f"{Path(process.args[0]).name}.log").read_text()[-3000:]
                raise RuntimeError(f"{what} exited with {process.returncode}:\n{log}")
            try:
                if ready():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{what} was not ready within {timeout}s")

    def start(self) -> ControlPlane:
        self.pki = make_pki(self.workdir / "pki")
        pki = self.pki
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        etcd = self._start(
            "etcd",
            [
                "--name=test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", etcd, lambda: requests.get(f"{etcd_url}/health", timeout=2).ok)

        apiserver = self._start(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # No endpoints for the kubernetes Service: it would need a non-loopback address.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={pki['server.crt']}",
                f"--tls-private-key-file={pki['server.key']}",
                f"--client-ca-file={pki['ca.crt']}",
                "--authorization-mode=RBAC",
                # OwnerReferencesPermissionEnforcement as on OpenShift: an owner reference
                # that blocks its owner's deletion needs `update` on the owner's finalizers.
                "--enable-admission-plugins=PodSecurity,ServiceAccount,NamespaceLifecycle,"
                "OwnerReferencesPermissionEnforcement",
                "--allow-privileged=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki['sa.pub']}",
                f"--service-account-signing-key-file={pki['sa.key']}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        admin = requests.Session()
        # Else REQUESTS_CA_BUNDLE from the environment overrides the session's own CA.
        admin.trust_env = False
        admin.verify = str(pki["ca.crt"])
        admin.cert = (str(pki["admin.crt"]), str(pki["admin.key"]))
        self._wait(
            "kube-apiserver", apiserver, lambda: admin.get(f"{self.url}/readyz", timeout=5).ok
        )
        write_kubeconfig(
            self.admin_kubeconfig,
            self.url,
            pki["ca.crt"],
            {"client-certificate": str(pki["admin.crt"]), "client-key": str(pki["admin.key"])},
        )

        self._start(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.admin_kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki['sa.key']}",
                f"--root-ca-file={pki['ca.crt']}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )
        # The serviceaccount controller makes each namespace's `default` ServiceAccount.
        self.wait_for(
            "the controller manager (default ServiceAccount)",
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        )
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_server(process)
        self.processes.clear()

    def wait_for(self, what: str, check, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} died (logs in {self.workdir})")
            if value := check():
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    # Clients ------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the matching kubectl (admin unless `kubeconfig` is given)."""
        result = subprocess.run(
            [
                str(self.binaries / "kubectl"),
                f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig holding a fresh token of ServiceAccount `namespace/name` (no admin)."""
        token = self.kubectl(
            "create", "token", name, f"--namespace={namespace}", "--duration=2h"
        ).stdout.strip()
        path = self.workdir / f"{namespace}-{name}.kubeconfig"
        return write_kubeconfig(path, self.url, self.pki["ca.crt"], {"token": token}, namespace)
