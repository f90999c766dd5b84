"""Run records on disk, and claims so that no run is ever run twice at once.

A results folder (``results/<sweep>/``) holds::

    runs/<key>.json      one record per finished run (DESIGN.md), written atomically
    claims/<key>.claim   held while a process runs <key>: host, pid; its mtime is a heartbeat
    failed/<key>.json    the error of a run that crashed (not a divergence: that is a record)

A record file exists if and only if its run finished: it is written to a temporary file,
flushed, fsynced and renamed into place. JSON has no NaN: a non-finite value in a record is a
bug (the engine writes ``null``), so writing refuses it. A claim is created exclusively
(``O_EXCL``); it is stale when its process is gone (same host) or its heartbeat is older than
``STALE_S``, and a stale claim is taken over by renaming it away first, which only one process
can do, and checking that what it renamed is the claim it judged stale (``_bury``). A sweep
starts by burying the stale claims a killed process left (its finished runs' too).
"""

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

from benchmark.records import record as records
from benchmark.records.atomic import HOST, write_atomic

HEARTBEAT_S = 10.0  # a running claim's mtime is refreshed this often
STALE_S = 120.0  # a claim not refreshed for this long belongs to a dead process


class Store:
    """The runs, claims and failures of one results folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.runs, self.claims, self.failed = (self.root / d for d in ("runs", "claims", "failed"))

    def create(self) -> "Store":
        """Make the folders, and remove the temporary files and claims that a killed process
        left behind."""
        for folder in (self.runs, self.claims, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.rglob(".*.tmp"):  # .<name>.<host>-<pid>.tmp (atomic.write_atomic)
            host, _, pid = tmp.name.rsplit(".", 2)[-2].rpartition("-")
            ours = host == HOST
            dead = not _alive(int(pid)) if ours and pid.isdigit() else _age(tmp) > STALE_S
            if dead:
                tmp.unlink(missing_ok=True)
        for claim in self.claims.glob("*.claim"):  # a killed group's claims of finished runs
            _bury(claim)
        return self

    def record_path(self, key: str) -> Path:
        return self.runs / f"{key}.json"

    def record(self, key: str) -> dict | None:
        """The finished record of ``key``, or None: absent, or corrupt (``corrupt`` says)."""
        try:
            record = records.read(self.record_path(key))
        except (OSError, ValueError):
            return None
        return None if records.problem(record, key, records.READABLE) else record

    def corrupt(self, key: str) -> bool:
        """A file is there but is no valid record of ``key``: truncated, empty, garbage, or
        of another schema. The next sweep runs it again."""
        return self.record_path(key).exists() and self.record(key) is None

    def done(self, key: str, since: float | None = None) -> bool:
        """Whether ``key`` has a valid record (written at ``since`` or later, when given)."""
        if since is not None and _mtime(self.record_path(key)) < since:
            return False
        return self.record(key) is not None

    def put(self, record: dict) -> None:
        records.write(self.record_path(record["key"]), record)
        (self.failed / f"{record['key']}.json").unlink(missing_ok=True)

    def fail(self, key: str, spec: dict, error: str) -> None:
        text = json.dumps({"key": key, "spec": spec, "error": error}, indent=1) + "\n"
        write_atomic(self.failed / f"{key}.json", text.encode())

    def failure(self, key: str) -> str | None:
        try:
            return json.loads((self.failed / f"{key}.json").read_text())["error"]
        except (OSError, ValueError, KeyError):
            return None

    # ------------------------------------------------------------------ claims

    def claimed(self, key: str) -> bool:
        """Whether a live process holds the claim on ``key``."""
        path = self.claims / f"{key}.claim"
        return path.exists() and not _stale(path)

    @contextlib.contextmanager
    def claim(self, key: str):
        """Hold the claim on ``key`` while the block runs; yield False if another process has it."""
        path = self.claims / f"{key}.claim"
        if not _take(path):
            yield False
            return
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join()
            path.unlink(missing_ok=True)


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _take(path: Path) -> bool:
    """Create the claim file exclusively, after taking over a stale one; False if it is live."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _bury(path):
                return False
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(_owner(), f)
        return True
    return False


def _bury(path: Path) -> bool:
    """Remove the claim at ``path`` if it is stale; True when it is gone.

    Another process may take the same stale claim over between our look and our removal and
    put its live claim there: so the claim is renamed away first (which only one process can
    do), and put back when what was renamed is not the file judged stale (another inode).
    """
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return True
    if not _stale(path):
        return False
    tomb = path.with_name(f"{path.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
    try:
        path.rename(tomb)
    except FileNotFoundError:  # another process took it over first
        return True
    live = tomb.stat().st_ino != inode
    if live:  # a claim made after our look: back where it was
        with contextlib.suppress(FileExistsError):
            os.link(tomb, path)
    tomb.unlink()
    return not live


def _stale(path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
        owner = json.loads(path.read_text())
    except FileNotFoundError:
        return False  # released meanwhile: not stale, and no longer there to take
    except ValueError:  # being written right now, or torn by a crash: only age tells
        return age > STALE_S
    if owner.get("host") == socket.gethostname() and not _alive(owner.get("pid", -1)):
        return True
    return age > STALE_S


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):  # a passing NFS hiccup must not end the heartbeat
            os.utime(path)
