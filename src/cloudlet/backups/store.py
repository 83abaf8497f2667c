"""The backup store: where backup files live, away from the nodes.

The default store is a directory (CLOUDLET_DATA_DIR/backups) that the API server and the worker
share: the worker writes a backup there and the API server streams it to a download. Files are
written under a temporary name and renamed into place, so a key either holds a whole file or nothing.
With CLOUDLET_BACKUP_S3_BUCKET set, backups are objects in that S3-compatible bucket instead (through
boto3, at CLOUDLET_BACKUP_S3_ENDPOINT), which API servers and workers on several hosts can all reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cloudlet.config import Settings, reveal

CHUNK = 1024 * 1024


class StoredFile(Protocol):
    """Where backups are kept, by key ("<instance uuid>/<backup uuid>.qcow2")."""

    def put(self, key: str, source: Path) -> None:
        """Store source's bytes under key, replacing what it held. Idempotent; no partial file on failure."""
        ...

    def fetch(self, key: str, destination: Path) -> None:
        """Copy what key holds to destination. Raises FileNotFoundError when it holds nothing."""
        ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """What key holds, in chunks. Raises FileNotFoundError when it holds nothing."""
        ...

    def delete(self, key: str) -> None:
        """Remove what key holds; a missing key is fine."""
        ...


class LocalStore:
    """Backups as files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"backup key {key!r} leaves the store")
        return path

    def put(self, key: str, source: Path) -> None:
        """Copy source in under a temporary name, then rename it into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def fetch(self, key: str, destination: Path) -> None:
        """Copy the stored file out."""
        shutil.copyfile(self._path(key), destination)

    def chunks(self, key: str) -> Iterator[bytes]:
        """Read the stored file in chunks (opened at once, so a missing file raises here)."""
        handle = self._path(key).open("rb")

        def read() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return read()

    def delete(self, key: str) -> None:
        """Remove the stored file, and its instance's folder once that holds nothing more."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        if path.parent != self.root.resolve():
            with contextlib.suppress(OSError):  # not empty (or already gone): it stays as it is
                path.parent.rmdir()


class S3Store:
    """Backups as objects in an S3-compatible bucket, under a key prefix (multipart uploads for big files)."""

    def __init__(self, settings: Settings) -> None:
        import boto3  # type: ignore[import-untyped]  # only an S3 store needs it

        if settings.backup_s3_bucket is None:
            raise ValueError("an S3 store needs backup_s3_bucket")
        self.bucket = settings.backup_s3_bucket
        self.prefix = settings.backup_s3_prefix
        self.client: Any = boto3.client(
            "s3", endpoint_url=settings.backup_s3_endpoint, region_name=settings.backup_s3_region,
            aws_access_key_id=settings.backup_s3_access_key,
            aws_secret_access_key=reveal(settings.backup_s3_secret_key))

    def _missing(self, error: Exception) -> bool:
        code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    def put(self, key: str, source: Path) -> None:
        """Upload source (S3 makes an object visible only once the whole upload completes)."""
        self.client.upload_file(str(source), self.bucket, self.prefix + key)

    def fetch(self, key: str, destination: Path) -> None:
        """Download the object to destination."""
        try:
            self.client.download_file(self.bucket, self.prefix + key, str(destination))
        except Exception as error:
            if self._missing(error):
                raise FileNotFoundError(key) from error
            raise

    def chunks(self, key: str) -> Iterator[bytes]:
        """The object's body in chunks (asked for at once, so a missing object raises here)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        except Exception as error:
            if self._missing(error):
                raise FileNotFoundError(key) from error
            raise

        def read() -> Iterator[bytes]:
            try:
                while chunk := body.read(CHUNK):
                    yield chunk
            finally:
                body.close()

        return read()

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers a delete of a missing key with success)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)


def store_for(settings: Settings) -> StoredFile:
    """The operator's backup store: the S3-compatible bucket when one is set, else the local directory."""
    if settings.backup_s3_bucket:
        return S3Store(settings)
    return LocalStore(settings.data_dir / "backups")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
