"""Object storage for uploads, corpora and models: `file://` (embedded) or `s3://`.

Everything mimical stores lives under one root URL (`Settings.storage_root`), in
this layout, so a bucket can be inspected, backed up or wiped by prefix:

    uploads/NAME/ID/FILE        raw exports as uploaded (deleted after import unless
                                `keep_uploads`)
    corpora/NAME/VERSION.jsonl  the imported corpus each model version was trained on
    models/NAME/VERSION/...     SavedModels in TF Serving's layout; TF Serving's
                                model base path is `ROOT/models`; a version counts
                                once its `saved_model.pb` exists
    training/NAME/JOB.json      a Kubernetes training Job's progress (see
                                `mimical.kube.training_job`)

Version numbers only grow and storage decides them: a new build of NAME gets one
more than the highest version stored under `models/NAME/` (`next_version`).

Keys are relative, `/`-separated paths; `..`, empty and absolute parts are refused
so a key built from user input can never escape the root. Writes are atomic: a
reader sees the whole object or nothing (a temporary file renamed into place, or a
single S3 PUT / completed multipart upload, which S3 aborts on failure).

Usage:

    storage = open_storage(settings.storage_root, settings)
    storage.put_file("uploads/alice/1/export.zip", Path("export.zip"))
    storage.list("models/alice/")
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from mimical.atomic import atomic_directory, atomic_file
from mimical.config import Settings
from mimical.errors import InputError, NotFoundError, TooLargeError, UnavailableError

# Uploads above this size go to S3 in parts of this size: bounded memory, resumable parts.
MULTIPART_CHUNK_BYTES = 16 * 1024 * 1024
COPY_BUFFER_BYTES = 1024 * 1024
# A model version counts as stored once this file exists (TF Serving's marker).
SAVED_MODEL_FILE = "saved_model.pb"


MODELS_PREFIX = "models/"


def upload_prefix(name: str) -> str:
    return f"uploads/{name}/"


def upload_key(name: str, upload_id: str, filename: str) -> str:
    return f"{upload_prefix(name)}{upload_id}/{filename}"


def corpus_prefix(name: str) -> str:
    return f"corpora/{name}/"


def corpus_key(name: str, version: int) -> str:
    return f"{corpus_prefix(name)}{version}.jsonl"


def model_prefix(name: str, version: int | None = None) -> str:
    return f"{MODELS_PREFIX}{name}/" if version is None else f"{MODELS_PREFIX}{name}/{version}/"


def training_prefix(name: str) -> str:
    return f"training/{name}/"


def progress_key(name: str, job_name: str) -> str:
    """Where the training Job `job_name` of `name` records its progress."""
    return f"{training_prefix(name)}{job_name}.json"


def failure_key(name: str) -> str:
    """Why `name`'s last build failed, in full: read by the API for the owner token only."""
    return f"{training_prefix(name)}failure.txt"


def chatbot_prefixes(name: str) -> list[str]:
    """Every prefix of the layout above holding `name`'s data (deleted with the chatbot)."""
    return [upload_prefix(name), corpus_prefix(name), model_prefix(name), training_prefix(name)]


def stored_model_files(
    storage: Storage, name: str = "", base: str = MODELS_PREFIX
) -> Iterator[tuple[str, int, str]]:
    """(model name, version, path inside the version) of every object under `base`.

    `name` narrows the listing to one model. `base` is the models folder's prefix:
    `models/` under the storage root, or "" for a storage rooted at a model base path.
    """
    for key in storage.list(f"{base}{name}/" if name else base):
        model, _, rest = key[len(base) :].partition("/")
        version, _, path = rest.partition("/")
        if version.isdigit() and path:
            yield model, int(version), path


def complete_model_versions(storage: Storage, base: str = MODELS_PREFIX) -> dict[str, list[int]]:
    """Complete versions (those with a `saved_model.pb`) of every model, ascending."""
    found: dict[str, set[int]] = {}
    for model, version, path in stored_model_files(storage, base=base):
        if path == SAVED_MODEL_FILE:
            found.setdefault(model, set()).add(version)
    return {model: sorted(versions) for model, versions in found.items()}


def model_versions(storage: Storage, name: str) -> list[int]:
    """Complete versions of `name`'s model, ascending."""
    return sorted(
        {
            version
            for _, version, path in stored_model_files(storage, name)
            if path == SAVED_MODEL_FILE
        }
    )


def next_version(storage: Storage, name: str) -> int:
    """The version a new build of `name` gets: one more than the highest stored, complete or not."""
    return max((version for _, version, _ in stored_model_files(storage, name)), default=0) + 1


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://BUCKET/KEY`; `InputError` if `url` is not one."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InputError(f"{url!r}: expected an s3://BUCKET/... URL")
    return parsed.netloc, parsed.path.lstrip("/")


def object_location(url: str) -> tuple[str, str]:
    """(bucket URL, key) of the single object `s3://BUCKET/KEY`; `InputError` otherwise."""
    bucket, key = parse_s3_url(url)
    if not key or key.endswith("/"):
        raise InputError(f"{url!r}: expected s3://BUCKET/KEY of one object")
    return f"s3://{bucket}", check_key(key)


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise `InputError`."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or "\0" in key:
        raise InputError(f"invalid storage key {key!r}")
    # A trailing slash (a prefix) leaves one empty last part; any other empty part is wrong.
    if any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise InputError(f"invalid storage key {key!r}")
    return key


class _CappedReader:
    """Wraps a binary stream and raises `TooLargeError` once more than `max_bytes` pass."""

    def __init__(self, stream: BinaryIO, max_bytes: int | None, what: str):
        self._stream = stream
        self._max_bytes = max_bytes
        self._what = what
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.count += len(chunk)
        if self._max_bytes is not None and self.count > self._max_bytes:
            raise TooLargeError(f"{self._what}: larger than the {self._max_bytes} byte limit")
        return chunk


class Storage(ABC):
    """A tree of objects under one root URL; see the module docstring for the layout."""

    root: str

    def url(self, key: str) -> str:
        """The full URL of `key` (what the API hands out as a model location)."""
        return f"{self.root.rstrip('/')}/{check_key(key)}"

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Store everything read from `stream`; return its size.

        Past `max_bytes` raise `TooLargeError` and store nothing.
        """

    def put_file(self, key: str, path: Path) -> int:
        with Path(path).open("rb") as stream:
            return self.put_stream(key, stream)

    def put_bytes(self, key: str, data: bytes) -> int:
        import io

        return self.put_stream(key, io.BytesIO(data))

    @abstractmethod
    def get_file(self, key: str, path: Path) -> Path:
        """Copy the object to `path` (parents created); `NotFoundError` if it is missing."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; return how many."""

    def put_tree(self, prefix: str, directory: Path) -> int:
        """Upload every file under `directory` to `prefix` + its relative path.

        `saved_model.pb` goes last: a model server polling the base path only loads
        a version once its graph file exists, so it never loads a partial upload.
        """
        directory = Path(directory)
        files = sorted(
            (p for p in directory.rglob("*") if p.is_file()),
            key=lambda p: (p.name == SAVED_MODEL_FILE, p.as_posix()),
        )
        for path in files:
            self.put_file(prefix + path.relative_to(directory).as_posix(), path)
        return len(files)

    def get_tree(self, prefix: str, directory: Path) -> int:
        """Download every object under `prefix` into `directory`, keeping relative paths."""
        keys = self.list(prefix)
        for key in keys:
            self.get_file(key, Path(directory) / key[len(prefix) :])
        return len(keys)

    def local_path(self, key: str = "") -> Path | None:
        """The on-disk path of `key` when storage is local files, else None."""
        return None


class FileStorage(Storage):
    """Objects as files under a directory: the embedded default."""

    def __init__(self, directory: Path):
        self.directory = Path(directory).resolve()
        self.root = self.directory.as_uri()

    def _path(self, key: str) -> Path:
        return self.directory.joinpath(*PurePosixPath(check_key(key)).parts)

    def local_path(self, key: str = "") -> Path:
        return self._path(key) if key else self.directory

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        reader = _CappedReader(stream, max_bytes, key)
        with atomic_file(target, private=True) as out:
            shutil.copyfileobj(reader, out, COPY_BUFFER_BYTES)
        return reader.count

    def put_tree(self, prefix: str, directory: Path) -> int:
        """Copy `directory` next to its target, then rename it into place in one step."""
        target = self._path(check_key(prefix.rstrip("/") + "/"))
        # A dot name is not a version number, so model servers ignore the partial copy.
        with atomic_directory(target, private=True) as partial:
            shutil.copytree(directory, partial, dirs_exist_ok=True)
        return sum(1 for p in target.rglob("*") if p.is_file())

    def get_file(self, key: str, path: Path) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"{self.url(key)}: no such object")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return Path(path)

    def _walk(self, prefix: str) -> Iterator[str]:
        # Only walk the deepest directory the prefix names, not the whole tree.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._path(base + "/") if base else self.directory
        if not start.is_dir():
            return
        for path in start.rglob("*"):
            key = path.relative_to(self.directory).as_posix()
            # Dot names are partial writes in progress, not objects.
            hidden = any(part.startswith(".") for part in key.split("/"))
            if path.is_file() and not hidden and key.startswith(prefix):
                yield key

    def list(self, prefix: str = "") -> list[str]:
        if prefix:
            check_key(prefix)
        return sorted(self._walk(prefix))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        check_key(prefix)
        keys = self.list(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        # A prefix naming a directory takes the (now empty) directory with it.
        if prefix.endswith("/"):
            shutil.rmtree(self._path(prefix), ignore_errors=True)
        return len(keys)


class S3Storage(Storage):
    """Objects in an S3 bucket under a key prefix (AWS, MinIO, moto)."""

    def __init__(self, bucket: str, prefix: str, settings: Settings):
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.root = f"s3://{bucket}/{self.prefix}"
        # Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, profiles, IRSA).
        self.client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region
        )
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_CHUNK_BYTES,
            multipart_chunksize=MULTIPART_CHUNK_BYTES,
            max_concurrency=4,
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, function, *args, **kwargs):
        """Run a boto3 call, turning connection failures into `UnavailableError`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(*args, **kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(f"{what}: no such object") from None
            raise UnavailableError(f"{what}: S3 error: {error}") from None
        except BotoCoreError as error:
            raise UnavailableError(f"{what}: S3 unreachable: {error}") from None

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> int:
        reader = _CappedReader(stream, max_bytes, key)
        # upload_fileobj streams in parts and aborts the multipart upload if reading fails,
        # so a refused or broken stream leaves no object behind.
        self._call(
            self.url(key),
            self.client.upload_fileobj,
            reader,
            self.bucket,
            self._key(key),
            Config=self.transfer,
        )
        return reader.count

    def get_file(self, key: str, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as out:
            self._call(
                self.url(key),
                self.client.download_fileobj,
                self.bucket,
                self._key(key),
                out,
                Config=self.transfer,
            )
        return path

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        for page in self._call(self.url(prefix) if prefix else self.root, list, pages):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def list(self, prefix: str = "") -> list[str]:
        if prefix:
            check_key(prefix)
        return sorted(self._iter_keys(prefix))

    def exists(self, key: str) -> bool:
        try:
            self._call(
                self.url(key), self.client.head_object, Bucket=self.bucket, Key=self._key(key)
            )
        except NotFoundError:
            return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        check_key(prefix)
        keys = self.list(prefix)
        # DeleteObjects takes at most 1,000 keys per call.
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + key} for key in keys[start : start + 1000]]
            answer = self._call(
                self.url(prefix),
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            # DeleteObjects answers 200 even when keys were refused (AccessDenied, a busy
            # key): each refusal is an entry of `Errors`, and the objects are still there.
            if errors := answer.get("Errors"):
                first = errors[0]
                raise UnavailableError(
                    f"{self.url(prefix)}: {len(errors)} of {len(batch)} objects not deleted "
                    f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})"
                )
        return len(keys)


def open_storage(url: str | None = None, settings: Settings | None = None) -> Storage:
    """Storage for `url` (default: `settings.storage_root`): `file:///dir`, a local path or
    `s3://bucket/prefix`."""
    settings = settings or Settings.from_env()
    url = url or settings.storage_root
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        bucket, prefix = parse_s3_url(url)
        return S3Storage(bucket, prefix, settings)
    if not parsed.scheme:
        return FileStorage(Path(url).expanduser())
    raise InputError(f"storage URL {url!r}: use file:///path or s3://bucket/prefix")
