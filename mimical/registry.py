"""The chatbot registry: who exists, who may see them, and how far their build got.

`Registry` is the interface every part uses. In embedded mode it is
`SqliteRegistry`, one SQLite file (`<home>/registry.sqlite3`),
shared safely by the web threads and the training worker processes: each call
is one transaction on a pooled connection, the database runs in WAL mode (readers
never wait for writers) with a busy timeout. In Kubernetes mode the `Chatbot`
custom resources play this role (`mimical.kube.registry`).
`mimical.orchestration.open_registry(settings)` picks the one `Settings.orchestrator`
names, so a process that only chats (a webhook pod) gets its registry without building
an orchestrator. The chatbot's own words (`Chatbot`, `Phase`, the name rule) are in
`mimical.chatbot`.

Secrets never stay in clear: passwords are argon2id hashes (slow on purpose:
people choose guessable passwords); owner tokens are 256 random bits handed out
once, so a SHA-256 digest is enough to make a stolen database useless.

Usage:

    registry = open_registry(settings)
    chatbot, owner_token = registry.create("alice", public=False, password="s3cret")
    registry.verify_password("alice", "s3cret")  # True
    registry.update_status("alice", phase=Phase.TRAINING, progress=0.4)
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import queue
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from contextlib import closing, contextmanager
from pathlib import Path

import orjson

from mimical.chatbot import (
    DISPLAY_NAME_MAX,
    PASSWORD_MAX,
    Chatbot,
    Phase,
    access_stamp,
    validate_name,
)
from mimical.config import Settings
from mimical.errors import ConflictError, InputError, NotFoundError, RateLimitedError


def _password_hasher():
    from argon2 import PasswordHasher

    # argon2-cffi's defaults are RFC 9106's low-memory profile, type argon2id.
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _password_hasher().hash(password)


# Each argon2 check holds 64 MiB for ~50 ms: at most this many at once per process, so a
# burst of guesses queues (up to VERIFY_WAIT_SECONDS, then 429) instead of exceeding the
# pod's memory limit.
MAX_CONCURRENT_VERIFIES = 4
VERIFY_WAIT_SECONDS = 30.0
_verify_slots = threading.BoundedSemaphore(MAX_CONCURRENT_VERIFIES)


def check_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if not _verify_slots.acquire(timeout=VERIFY_WAIT_SECONDS):
        raise RateLimitedError("too many password checks at once; try again in a moment")
    try:
        return _password_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    finally:
        _verify_slots.release()


@functools.cache
def _decoy_hash() -> str:
    """A hash no password opens, for `password_opens` to check unknown names against."""
    return hash_password(secrets.token_urlsafe(32))


def password_opens(registry, name: str, password: str) -> bool:
    """Whether `password` opens `name` (a `Registry` or the dialog's `PersonaDirectory`).

    An unknown name is False after the same slow argon2 check a real one costs, so
    neither the answer nor its time tells a stranger which private names exist.
    """
    try:
        return registry.verify_password(name, password)
    except NotFoundError:
        check_password(_decoy_hash(), password)
        return False


def new_owner_token() -> tuple[str, str]:
    """A fresh owner token and the digest the registry keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, hash_owner_token(token)


def hash_owner_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS chatbots (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    public INTEGER NOT NULL,
    password_hash TEXT,
    owner_token_hash TEXT NOT NULL,
    phase TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    model_version INTEGER,
    versions TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '{}',
    me TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chatbots_public ON chatbots (public, name);
"""

_PUBLIC_COLUMNS = (
    "name, display_name, public, password_hash IS NOT NULL AS has_password, phase, progress, "
    "message, model_version, versions, metrics, me, created_at, updated_at, password_hash"
)


def _chatbot(row: sqlite3.Row) -> Chatbot:
    return Chatbot(
        name=row["name"],
        display_name=row["display_name"],
        public=bool(row["public"]),
        has_password=bool(row["has_password"]),
        phase=Phase(row["phase"]),
        progress=row["progress"],
        message=row["message"],
        model_version=row["model_version"],
        versions=orjson.loads(row["versions"]),
        metrics=orjson.loads(row["metrics"]),
        me=row["me"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        # A new argon2 hash (fresh salt) for every password set, a new time for every create.
        access_stamp=access_stamp(repr(row["created_at"]), row["password_hash"] or ""),
    )


class Registry(ABC):
    """The registry interface: the API, dialog and orchestrators only use these methods.

    Subclasses store records (`SqliteRegistry` here; the Kubernetes orchestrator keeps
    them in `Chatbot` resources and hashes in a Secret); validation and hashing live
    here so every backend enforces the same rules.
    """

    def create(
        self,
        name: str,
        *,
        public: bool,
        password: str | None = None,
        display_name: str | None = None,
        me: str | None = None,
    ) -> tuple[Chatbot, str]:
        """Register a new chatbot in phase Pending; return it with its one-time owner token.

        A private chatbot needs a password; a public one may have one too (listed,
        but only those who know it may talk to it). A taken name is a `ConflictError`.
        """
        validate_name(name)
        display_name = (display_name or name).strip() or name
        if len(display_name) > DISPLAY_NAME_MAX:
            raise InputError(f"display name longer than {DISPLAY_NAME_MAX} characters")
        if password is not None and not (0 < len(password) <= PASSWORD_MAX):
            raise InputError(f"password must be 1 to {PASSWORD_MAX} characters")
        if not public and not password:
            raise InputError(f"chatbot {name!r} is private, so it needs a password")
        token, token_hash = new_owner_token()
        now = time.time()
        chatbot = Chatbot(
            name=name,
            display_name=display_name,
            public=public,
            has_password=bool(password),
            me=me,
            created_at=now,
            updated_at=now,
        )
        self.insert(chatbot, hash_password(password) if password else None, token_hash)
        return self.get(name), token

    def get(self, name: str) -> Chatbot:
        chatbot = self.find(name)
        if chatbot is None:
            raise NotFoundError(f"no chatbot named {name!r}")
        return chatbot

    def verify_password(self, name: str, password: str | None) -> bool:
        """True if `password` opens `name`; a chatbot without a password opens for anyone."""
        password_hash, _ = self.secrets(name)
        if password_hash is None:
            return True
        return bool(password) and check_password(password_hash, password)

    def change_password(self, name: str, password: str) -> Chatbot:
        """Set a new password for `name`; every session opened with the old one ends.

        Only for a chatbot that has a password (in Kubernetes, adding one would change
        the spec and so start a build): a public one without is created again instead.
        """
        chatbot = self.get(name)
        if not isinstance(password, str) or not (0 < len(password) <= PASSWORD_MAX):
            raise InputError(f"password must be 1 to {PASSWORD_MAX} characters")
        if not chatbot.has_password:
            raise ConflictError(
                f"{name!r} was created without a password; delete it and create it with one"
            )
        self.write_password(name, hash_password(password))
        return self.get(name)

    def verify_owner_token(self, name: str, token: str | None) -> bool:
        _, token_hash = self.secrets(name)
        return bool(token) and hmac.compare_digest(token_hash, hash_owner_token(token))

    @abstractmethod
    def insert(self, chatbot: Chatbot, password_hash: str | None, owner_token_hash: str) -> None:
        """Store a new record; `ConflictError` if the name is taken."""

    @abstractmethod
    def write_password(self, name: str, password_hash: str) -> None:
        """Replace the stored hash and so `access_stamp`; `NotFoundError` if unknown."""

    @abstractmethod
    def find(self, name: str) -> Chatbot | None: ...

    @abstractmethod
    def list_public(self) -> list[Chatbot]:
        """Public chatbots by name (what `%show all` and `GET /api/chatbots` list)."""

    @abstractmethod
    def list_all(self) -> list[Chatbot]: ...

    @abstractmethod
    def secrets(self, name: str) -> tuple[str | None, str]:
        """(password hash or None, owner token hash); `NotFoundError` if unknown."""

    def update_status(
        self,
        name: str,
        *,
        phase: Phase | str | None = None,
        progress: float | None = None,
        message: str | None = None,
        model_version: int | None = None,
        metrics: dict | None = None,
        add_version: int | None = None,
    ) -> Chatbot:
        """Change the build status fields given (others keep their value).

        `add_version` records a newly built version in `versions`.
        """
        changes: dict[str, object] = {}
        if phase is not None:
            changes["phase"] = Phase(phase).value
        if progress is not None:
            changes["progress"] = min(1.0, max(0.0, float(progress)))
        if message is not None:
            changes["message"] = message
        if model_version is not None:
            changes["model_version"] = model_version
        if metrics is not None:
            changes["metrics"] = metrics
        return self.write_status(name, changes, add_version)

    @abstractmethod
    def write_status(self, name: str, changes: dict, add_version: int | None) -> Chatbot:
        """Store checked status `changes` (column → value) and a new version, if any."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Forget `name`; `NotFoundError` if unknown."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (shutdown, tests)."""


class SqliteRegistry(Registry):
    """Chatbots in a SQLite file; safe to share between threads and processes."""

    @classmethod
    def connect(cls, settings: Settings) -> SqliteRegistry:
        """The registry file of `settings.home` (the embedded mode's one)."""
        return cls(Path(settings.home) / "registry.sqlite3")

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets readers (web threads) run while a worker process writes.
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        # Idle connections for reuse: opening one costs more than a query, and web
        # servers often run each request on a fresh thread.
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @contextmanager
    def _connect(self, write: bool = False):
        """One transaction; writers take the write lock up front so they never deadlock."""
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = self._open()
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")
        finally:
            self._idle.put(db)

    def insert(self, chatbot: Chatbot, password_hash: str | None, owner_token_hash: str) -> None:
        try:
            with self._connect(write=True) as db:
                db.execute(
                    "INSERT INTO chatbots (name, display_name, public, password_hash, "
                    "owner_token_hash, phase, me, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        chatbot.name,
                        chatbot.display_name,
                        int(chatbot.public),
                        password_hash,
                        owner_token_hash,
                        chatbot.phase.value,
                        chatbot.me,
                        chatbot.created_at,
                        chatbot.updated_at,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"a chatbot named {chatbot.name!r} already exists") from None

    def write_password(self, name: str, password_hash: str) -> None:
        with self._connect(write=True) as db:
            changed = db.execute(
                "UPDATE chatbots SET password_hash = ?, updated_at = ? WHERE name = ?",
                (password_hash, time.time(), name),
            ).rowcount
        if not changed:
            raise NotFoundError(f"no chatbot named {name!r}")

    def find(self, name: str) -> Chatbot | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_PUBLIC_COLUMNS} FROM chatbots WHERE name = ?", (name,)
            ).fetchone()
        return _chatbot(row) if row else None

    def list_public(self) -> list[Chatbot]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_PUBLIC_COLUMNS} FROM chatbots WHERE public = 1 ORDER BY name"
            ).fetchall()
        return [_chatbot(row) for row in rows]

    def list_all(self) -> list[Chatbot]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {_PUBLIC_COLUMNS} FROM chatbots ORDER BY name").fetchall()
        return [_chatbot(row) for row in rows]

    def secrets(self, name: str) -> tuple[str | None, str]:
        with self._connect() as db:
            row = db.execute(
                "SELECT password_hash, owner_token_hash FROM chatbots WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no chatbot named {name!r}")
        return row[0], row[1]

    def write_status(self, name: str, changes: dict, add_version: int | None) -> Chatbot:
        if "metrics" in changes:
            changes["metrics"] = orjson.dumps(changes["metrics"]).decode()
        with self._connect(write=True) as db:
            row = db.execute("SELECT versions FROM chatbots WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no chatbot named {name!r}")
            if add_version is not None:
                versions = sorted(set(orjson.loads(row["versions"])) | {add_version})
                changes["versions"] = orjson.dumps(versions).decode()
            changes["updated_at"] = time.time()
            assignments = ", ".join(f"{column} = ?" for column in changes)
            db.execute(
                f"UPDATE chatbots SET {assignments} WHERE name = ?", (*changes.values(), name)
            )
        return self.get(name)

    def delete(self, name: str) -> None:
        with self._connect(write=True) as db:
            deleted = db.execute("DELETE FROM chatbots WHERE name = ?", (name,)).rowcount
        if not deleted:
            raise NotFoundError(f"no chatbot named {name!r}")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
