"""Results that travel: a results folder packed into one file, and packs merged into one folder.

``pack(folder, archive)`` writes one gzipped tar: ``manifest.json`` (the protocol version, the
host, the number of records), ``sweep.json``, ``plan.json`` and the records of the plan's runs
(``runs/<key>.json``); claims, failures, tables and the report stay behind (they are local, or
rebuilt). The same folder gives the same bytes (members sorted, times zeroed).

``merge(archives, into)`` checks that every part (each archive, and ``into`` when it holds a
sweep) comes from the same sweep file (``sweep.json``, the deadline aside: it bounds a sitting,
not what runs) and the same protocol version, and that they planned the same runs; then it takes
each key once. Records of one key whose metrics differ are a conflict: reported, and kept out
(a record already in ``into`` stays; merging never deletes). It writes like the store: the
sweep first, each record atomically, the plan and the tables last; so it is idempotent, and a
merge killed halfway, run again, ends as an uninterrupted one.
"""

import gzip
import io
import json
import socket
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.catalogue.errors import InputError
from benchmark.catalogue.spec import PROTOCOL_VERSION
from benchmark.records import record as records
from benchmark.records import tidy
from benchmark.records.atomic import write_atomic
from benchmark.sweeps.store import Store

PHASES = ("tune", "final")
# sweep.json fields that may differ between parts of one sweep: neither changes a record
TRANSIENT = ("deadline", "fallback")


@dataclass
class Part:
    """What one archive (or the destination folder) brings."""

    name: str
    protocol: int | None  # None: a results folder, which does not say
    sweep: dict
    plan: dict
    records: dict[str, dict] = field(default_factory=dict)


def pack(folder: Path, archive: Path) -> int:
    """Pack ``folder``'s sweep, plan and records into ``archive``; the number of records."""
    folder = Path(folder)
    sweep, plan = _json(folder / "sweep.json"), _json(folder / "plan.json")
    store = Store(folder)
    keys = [k for phase in PHASES for k in plan.get(phase, [])]
    found = {k: r for k in keys if (r := store.record(k)) is not None}
    manifest = {"protocol_version": PROTOCOL_VERSION, "host": socket.gethostname(),
                "records": len(found)}  # fmt: skip
    members = {"manifest.json": manifest, "sweep.json": sweep, "plan.json": plan}
    members |= {f"runs/{k}.json": r for k, r in sorted(found.items())}
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for name, value in members.items():
            data = (json.dumps(value, indent=1, allow_nan=False) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    write_atomic(Path(archive), buffer.getvalue())
    return len(found)


@dataclass
class Merged:
    added: list[str]  # keys written now
    kept: int  # keys already there, equal
    conflicts: dict[str, list[str]]  # key -> the parts whose records of it disagree


def merge(archives: list[Path], into: Path) -> Merged:
    """Merge the packed ``archives`` into the results folder ``into`` (made if missing)."""
    into = Path(into)
    parts = [_read(Path(a)) for a in archives]
    if (into / "sweep.json").is_file():
        parts.insert(0, _folder(into))
    plan = _agree(parts)
    store = Store(into).create()
    write_atomic(into / "sweep.json", _dump(parts[0].sweep))
    merged = Merged([], 0, {})
    for key in [k for phase in PHASES for k in plan.get(phase, [])]:
        versions = [(p.name, p.records[key]) for p in parts if key in p.records]
        if not versions:
            continue
        metrics = [json.dumps(r["metrics"], sort_keys=True) for _, r in versions]
        if len(set(metrics)) > 1:
            merged.conflicts[key] = [name for name, _ in versions]
        elif store.done(key):
            merged.kept += 1
        else:
            store.put(versions[0][1])
            merged.added.append(key)
    write_atomic(into / "plan.json", _dump(plan))
    keys = [k for phase in PHASES for k in plan.get(phase, [])]
    tidy.write_tables(into, [r for r in map(store.record, keys) if r is not None])
    return merged


def _agree(parts: list[Part]) -> dict:
    """The plan the parts share (their union); InputError where they disagree."""
    first = parts[0]
    for part in parts[1:]:
        if None not in (first.protocol, part.protocol) and part.protocol != first.protocol:
            raise InputError(f"{part.name}: protocol version {part.protocol}, but "
                             f"{first.name} has {first.protocol}")  # fmt: skip
        if _identity(part.sweep) != _identity(first.sweep):
            raise InputError(f"{part.name}: another sweep than {first.name}'s (sweep.json "
                             "differs); merge only the parts of one sweep")  # fmt: skip
    plan: dict = {"epochs": {}}
    for part in parts:
        for phase in PHASES:
            keys = part.plan.get(phase)
            if keys is not None and plan.setdefault(phase, keys) != keys:
                raise InputError(f"{part.name}: its {phase} runs differ from another part's "
                                 "(another lr-find centre, or another selection)")  # fmt: skip
        plan["epochs"] |= part.plan.get("epochs", {})
    return plan


def _identity(sweep: dict) -> dict:
    return {k: v for k, v in sweep.items() if k not in TRANSIENT}


def _read(archive: Path) -> Part:
    """An archive's part; InputError when it is no pack."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            text = {n: tar.extractfile(m).read() for n, m in members.items()}
    except (OSError, tarfile.TarError, EOFError) as err:
        raise InputError(f"{archive}: not a results pack ({err})") from None
    try:
        manifest, sweep, plan = (json.loads(text[n]) for n in ("manifest.json", "sweep.json",
                                                               "plan.json"))  # fmt: skip
        part = Part(str(archive), manifest["protocol_version"], sweep, plan)
        for name, data in text.items():
            key = name.removeprefix("runs/").removesuffix(".json")
            if name.startswith("runs/"):
                record = json.loads(data)
                bad = records.problem(record, key, records.READABLE)
                if bad:
                    raise InputError(f"{archive}: {name}: {bad}")
                part.records[key] = record
    except (KeyError, ValueError) as err:
        raise InputError(f"{archive}: not a results pack (missing or bad {err})") from None
    return part


def _folder(folder: Path) -> Part:
    store = Store(folder)
    plan = _json(folder / "plan.json") if (folder / "plan.json").is_file() else {}
    keys = [k for phase in PHASES for k in plan.get(phase, [])]
    found = {k: r for k in keys if (r := store.record(k)) is not None}
    return Part(str(folder), None, _json(folder / "sweep.json"), plan, found)


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path.parent}: not a results folder of a sweep ({err})") from None


def _dump(value) -> bytes:
    return (json.dumps(value, indent=1) + "\n").encode()
