"""Where a run directory lives: a local path (pathlib.Path) or an object-store URI (`ObjectPath`).

`location("s3://bucket/runs/x")` gives an ObjectPath over pyarrow's filesystem for that URI (S3, GCS, or
any other pyarrow knows); anything else gives a Path. ObjectPath has the few Path methods the run
directory uses, so the engine handles both alike. Credentials and endpoints come from the filesystem
library's usual environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), or the URI's own query
(`?endpoint_override=127.0.0.1:9000&scheme=http`), never from curate's config files.

Whole-file writes (`write_whole`) never show a reader half a file: locally a temporary name renamed into
place, on an object store one PUT (an object appears whole or not at all), so nothing relies on rename.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from curate.errors import ConfigError

SECRET_OPTIONS = {"access_key", "secret_key", "session_token"}
SEAL = "seal"
TMP_PREFIX, TMP_SUFFIX = ".", ".tmp"   # local temporary names: `.<name>.<random>.tmp`, removed by the next run


class _Stat:
    def __init__(self, info: pafs.FileInfo):
        self.st_size = info.size
        self.st_mtime = (info.mtime_ns or 0) / 1e9


class ObjectPath:
    """A path in a pyarrow filesystem, shown as its URI."""

    def __init__(self, fs: pafs.FileSystem, path: str, scheme: str, query: str = ""):
        self.fs, self.path, self.scheme, self.query = fs, path.rstrip("/"), scheme, query

    @classmethod
    def from_uri(cls, uri: str) -> ObjectPath:
        parts = urllib.parse.urlsplit(uri)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        # the URI's options (endpoint_override, scheme, region, ...) stay in its text, its secrets do not
        secrets = {k: v for k, v in query if k in SECRET_OPTIONS}
        shown = urllib.parse.urlencode([(k, v) for k, v in query if k not in SECRET_OPTIONS])
        safe = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, shown, ""))
        try:
            fs, path = pafs.FileSystem.from_uri(_with_secrets(parts, secrets, shown, safe) if secrets else uri)
        except (pa.ArrowInvalid, ValueError) as e:  # (never the URI's text in the message: it may hold a secret)
            raise ConfigError(f"{safe}: not a usable storage URI ({_redacted(str(e), secrets)}); S3 takes "
                              f"`?region=...&endpoint_override=host:port&scheme=http` and credentials from "
                              f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or `?access_key=...&secret_key=...`)") from None
        except OSError as e:  # (resolving a bucket's region asks the network)
            named(e, safe)
            raise
        return cls(fs, path, parts.scheme, shown)

    def _at(self, path: str) -> ObjectPath:
        return ObjectPath(self.fs, path, self.scheme, self.query)

    # --- the path ---------------------------------------------------------------------------------
    def __truediv__(self, part: str | os.PathLike) -> ObjectPath:
        return self._at(f"{self.path}/{os.fspath(part).strip('/')}")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        return self._at(self.path.rsplit("/", 1)[0])

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> ObjectPath:
        return self.with_name(self.stem + suffix)

    def relative_to(self, other: ObjectPath) -> PurePosixPath:
        if not (self.path + "/").startswith(other.path + "/"):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(self.path[len(other.path):].lstrip("/"))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" + (f"?{self.query}" if self.query else "")

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and (self.scheme, self.path) == (other.scheme, other.path)

    def __hash__(self) -> int:
        return hash((self.scheme, self.path))

    def __lt__(self, other: ObjectPath) -> bool:
        return self.path < other.path

    # --- the object -------------------------------------------------------------------------------
    @contextmanager
    def _named(self) -> Iterator[None]:
        """An OSError from the store (unreachable endpoint, no credentials, no region) names this URI: pyarrow's
        says only what failed, and the front door prints the place beside the reason."""
        try:
            yield
        except OSError as e:
            named(e, str(self))
            raise

    def _info(self) -> pafs.FileInfo:
        with self._named():
            return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def stat(self) -> _Stat:
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        return _Stat(info)

    def read_bytes(self) -> bytes:
        try:
            with self._named(), self.fs.open_input_stream(self.path) as f:
                return f.read()
        except OSError as e:  # some stores say "not found" as a plain OSError: callers expect FileNotFoundError
            if not isinstance(e, FileNotFoundError) and not self.exists():
                raise FileNotFoundError(str(self)) from e
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes | memoryview | pa.Buffer) -> None:
        with self._named(), self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no folders to make: an object's key holds its whole path."""

    def iterdir(self) -> Iterator[ObjectPath]:
        with self._named():
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        for info in infos:
            yield self._at(info.path)

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def rglob(self, pattern: str) -> Iterator[ObjectPath]:
        with self._named():
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        for info in infos:
            p = self._at(info.path)
            if fnmatch.fnmatchcase(p.name, pattern):
                yield p


AnyPath = Path | ObjectPath


def named(e: OSError, place: str) -> None:
    """Record where an OSError happened (`e.place`), for the message the front door prints; its own text is kept
    (setting `filename` would turn pyarrow's reason into "[Errno None] None")."""
    if not getattr(e, "place", None) and e.filename is None:
        e.place = place


def place_of(e: OSError) -> str | None:
    """Where an OSError happened: its file, else the URI `named` recorded."""
    return e.filename or getattr(e, "place", None)


def _with_secrets(parts: urllib.parse.SplitResult, secrets: dict[str, str], shown: str, safe: str) -> str:
    """An S3 URI's `?access_key=...&secret_key=...` as the user part pyarrow reads them from (its URI parser
    refuses them in the query): `s3://KEY:SECRET@bucket/path?...`."""
    if parts.scheme != "s3" or set(secrets) != {"access_key", "secret_key"}:
        raise ConfigError(f"{safe}: credentials in a URI's query are read for s3:// as access_key and secret_key "
                          f"together (a session token: AWS_SESSION_TOKEN); got {', '.join(sorted(secrets))}")
    user = ":".join(urllib.parse.quote(secrets[k], safe="") for k in ("access_key", "secret_key"))
    return urllib.parse.urlunsplit((parts.scheme, f"{user}@{parts.netloc.rpartition('@')[2]}", parts.path, shown, ""))


def _redacted(text: str, secrets: dict[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text


def location(where: str | os.PathLike | ObjectPath) -> AnyPath:
    """A Path for local places (and file:// URIs), an ObjectPath for any other URI."""
    if isinstance(where, (Path, ObjectPath)):
        return where
    text = os.fspath(where)
    if "://" not in text:
        return Path(text)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return ObjectPath.from_uri(text)


def is_local(path: AnyPath) -> bool:
    return isinstance(path, Path)


def write_whole(path: AnyPath, data: bytes | memoryview | pa.Buffer) -> None:
    """Write `data` under `path` so that no reader ever sees part of it (raises OSError)."""
    if isinstance(path, ObjectPath):
        path.write_bytes(data)  # one PUT
        return
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(memoryview(data))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_new(path: AnyPath, data: bytes) -> bool:
    """Write `data` under `path` only if nothing is there (raises FileExistsError). Returns whether the create
    was atomic: locally the file is written aside and hard-linked into place, so no reader ever sees it half
    written and no second writer can create it too. On an object store (and a local filesystem without hard
    links) the check and the write are two steps: callers read the object back to see who won (engine/lease.py)."""
    if isinstance(path, ObjectPath):
        if path.exists():
            raise FileExistsError(str(path))
        path.write_bytes(data)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = local_scratch(path)  # (a dead writer's is removed by the next run, as every temporary is)
    aside.write_bytes(data)
    try:
        os.link(aside, path)  # FileExistsError when taken
        return True
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FUSE filesystems): an exclusive open
        with open(path, "xb") as f:
            f.write(data)
        return False
    finally:
        aside.unlink(missing_ok=True)


def upload(local: Path, path: AnyPath) -> None:
    """Put a finished local file under `path` whole (a rename locally, one upload on an object store)."""
    if isinstance(path, ObjectPath):
        with open(local, "rb") as src, path.fs.open_output_stream(path.path) as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(local, path)


def local_scratch(path: AnyPath) -> Path:
    """A temporary local file to build what will go under `path` (beside it when local, so the final
    rename stays on one filesystem); the caller removes it."""
    folder = path.parent if isinstance(path, Path) else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"


def rmtree(path: AnyPath) -> None:
    if isinstance(path, ObjectPath):
        path.fs.delete_dir_contents(path.path, missing_dir_ok=True)
        if path.exists():  # an object store may keep a folder marker; most have nothing left to delete
            path.fs.delete_dir(path.path)
        return
    shutil.rmtree(path, ignore_errors=True)


# --- content hashes: each file's record (size, xxh3), and sealed JSON ----------------------------
def content_hash(data: bytes | memoryview | pa.Buffer) -> str:
    return xxhash.xxh3_64_hexdigest(memoryview(data))


def _body_hash(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != SEAL}
    return content_hash(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def seal(meta: dict) -> dict:
    """`meta` with a hash of its own content: any later edit of the file is detected (`sealed`)."""
    body = json.loads(json.dumps({k: v for k, v in meta.items() if k != SEAL}, default=str))
    return {**body, SEAL: _body_hash(body)}


def sealed(meta: dict) -> bool:
    return isinstance(meta, dict) and meta.get(SEAL) == _body_hash(meta)


def read_buffer(path: AnyPath) -> pa.Buffer:
    """A whole file in one read (the bytes that are hashed, then decoded: nothing is read twice)."""
    if isinstance(path, ObjectPath):
        return pa.py_buffer(path.read_bytes())
    with open(path, "rb") as f:
        return pa.py_buffer(f.read())


def read_range(path: AnyPath, start: int, end: int) -> bytes:
    """Bytes [start, end) of a file (fewer when the file is shorter)."""
    if isinstance(path, ObjectPath):
        with path.fs.open_input_file(path.path) as f:
            return f.read_at(end - start, start)
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


# --- Parquet on either ----------------------------------------------------------------------------
def read_table(path: AnyPath, columns: list[str] | None = None) -> pa.Table:
    if isinstance(path, ObjectPath):
        return pq.read_table(path.path, columns=columns, filesystem=path.fs)
    return pq.read_table(path, columns=columns)


def read_schema(path: AnyPath) -> pa.Schema:
    if isinstance(path, ObjectPath):
        return pq.read_schema(path.path, filesystem=path.fs)
    return pq.read_schema(path)


def parquet_file(path: AnyPath) -> pq.ParquetFile:
    if isinstance(path, ObjectPath):
        return pq.ParquetFile(path.fs.open_input_file(path.path))
    return pq.ParquetFile(path)
