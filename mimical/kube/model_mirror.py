"""Copy the served model versions from object storage into TF Serving's pod.

Why: the stock `tensorflow/serving` image cannot read `s3://` since 2.7
(tensorflow/serving#1963), so in the cluster this runs as a sidecar of the shared
TF Serving Deployment. Each pass it reads the operator's name → versions entries
(`models.json` from the model ConfigMap: the version that answers and, while it loads,
the new one), copies exactly those versions from `ROOT/models/NAME/VERSION/` to
`DIR/models/NAME/VERSION/` (downloaded into a staging folder, then renamed: TF Serving
never sees half a model) and only then rewrites `DIR/models.config` with the versions
that are complete. TF Serving re-reads that file and loads a new version beside the old
one; the operator drops the old one from the list once the new one answers. Versions
that left the config are deleted one pass later, once TF Serving has let go of them.

Run (the chart's TF Serving pod does; storage settings come from the usual env):

    python -m mimical.kube.model_mirror --entries /etc/mimical/serving/models.json --dir /models
    python -m mimical.kube.model_mirror --once ...   # one pass, e.g. as an init container

Each flag defaults to its `Settings` field (`mirror_entries`, `mirror_dir`,
`mirror_interval`: env `MIMICAL_MIRROR_ENTRIES` / `_DIR` / `_INTERVAL`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from mimical.atomic import atomic_directory, atomic_write
from mimical.config import Settings
from mimical.errors import MimicalError, NotFoundError
from mimical.storage import Storage, model_prefix, open_storage

log = logging.getLogger(__name__)

CONFIG_FILE = "models.config"
STAGING_DIR = ".staging"


def read_entries(path: Path) -> dict[str, list[int]]:
    """The operator's served name → versions; a missing or empty file means none."""
    from mimical.kube.manifests import MODEL_ENTRIES_KEY, serving_entries

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return serving_entries({MODEL_ENTRIES_KEY: text})


def fetch_version(storage: Storage, name: str, version: int, directory: Path) -> bool:
    """Download one version into `directory/models/NAME/VERSION` atomically; False if absent."""
    target = directory / model_prefix(name, version)
    if target.is_dir():
        return True
    staging_root = directory / STAGING_DIR
    staging_root.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_directory(target, private=True, staging_parent=staging_root) as staging:
            if storage.get_tree(model_prefix(name, version), staging) == 0:
                raise NotFoundError(f"model {name} version {version} is not in storage (yet)")
    except NotFoundError as absent:
        log.warning("%s", absent)
        return False
    log.info("mirrored model %s version %s", name, version)
    return True


def write_config(directory: Path, served: dict[str, list[int]]) -> bool:
    """Write TF Serving's model config for `served` (local base paths); True if it changed."""
    from mimical.kube.manifests import model_config_text

    path = directory / CONFIG_FILE
    text = model_config_text(served, str(directory))
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write(path, text)
    return True


def remove_stale(directory: Path, keep: set[tuple[str, int]]) -> list[str]:
    """Delete local versions not in `keep`; return what went, as NAME/VERSION."""
    removed = []
    for version_dir in sorted((directory / "models").glob("*/*")):
        name, version = version_dir.parent.name, version_dir.name
        if version.isdigit() and (name, int(version)) in keep:
            continue
        shutil.rmtree(version_dir, ignore_errors=True)
        removed.append(f"{name}/{version}")
    for name_dir in (directory / "models").glob("*"):
        if name_dir.is_dir() and not any(name_dir.iterdir()):
            name_dir.rmdir()
    return removed


def mirror_once(
    storage: Storage,
    entries: dict[str, list[int]],
    directory: Path,
    previous: dict[str, list[int]],
) -> dict[str, list[int]]:
    """One pass: fetch wanted versions, publish the complete ones, drop what nobody needs.

    `previous` is what the last pass published: those versions stay on disk this pass so
    TF Serving can keep serving them until it has loaded their successors, and a model
    none of whose wanted versions is down yet keeps serving what it had.
    """
    served = {}
    for name, versions in sorted(entries.items()):
        fetched = []
        for version in versions:
            try:
                if fetch_version(storage, name, version, directory):
                    fetched.append(version)
            except MimicalError as error:
                log.warning("cannot mirror model %s version %s: %s", name, version, error)
        if fetched or name in previous:
            served[name] = fetched or previous[name]
    if write_config(directory, served):
        log.info("serving %s", served or "no models")
    keep = {
        (name, version)
        for listing in (served, previous)
        for name, versions in listing.items()
        for version in versions
    }
    for gone in remove_stale(directory, keep):
        log.info("removed model %s", gone)
    return served


def run(settings: Settings, once: bool) -> None:
    storage = open_storage(settings=settings)
    directory = settings.mirror_dir
    directory.mkdir(parents=True, exist_ok=True)
    served: dict[str, list[int]] = {}
    while True:
        served = mirror_once(storage, read_entries(settings.mirror_entries), directory, served)
        if once:
            return
        time.sleep(settings.mirror_interval)


def main(argv: list[str] | None = None) -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m mimical.kube.model_mirror", description=__doc__
    )
    parser.add_argument(
        "--entries",
        type=Path,
        help="the operator's models.json, name -> version (default MIMICAL_MIRROR_ENTRIES,"
        f" else {defaults.mirror_entries})",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="local model directory TF Serving reads (default MIMICAL_MIRROR_DIR, else"
        f" {defaults.mirror_dir})",
    )
    parser.add_argument(
        "--interval",
        type=float,
        help="seconds between passes (default MIMICAL_MIRROR_INTERVAL, else"
        f" {defaults.mirror_interval:g})",
    )
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        flags = {
            "mirror_entries": args.entries,
            "mirror_dir": args.dir,
            "mirror_interval": args.interval,
        }
        settings = Settings.from_env().with_overrides(
            **{name: value for name, value in flags.items() if value is not None}
        )
        run(settings, args.once)
    except MimicalError as error:
        print(f"model-mirror: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
