"""Shardlyn surface: a running server's files at /v1/instances/{id}/files, through its guest agent.

The reference lists the paths without shapes; these follow Shardlyn's other objects ({"error": message},
lists under a key). Every endpoint takes `root` (default "/"): paths are relative to it and may not leave it,
by `..` or by a symbolic link (400). Entry = {"name", "path", "type" ("file", "directory", "symlink",
"other"), "size", "mode" ("0644"), "modified_at"}.

    GET    /files?path=/&root=/                  {"path", "entries": [Entry], "total", "truncated"}
    GET    /files/content?path=                  {"path", "content", "encoding" ("utf-8" or "base64"), "size"}
    PUT    /files/content                        {"path", "content", "encoding"?} -> Entry (made or replaced)
    DELETE /files?path=&recursive=false          204; a directory with entries only with recursive=true
    GET    /files/download?path=                 the file (application/octet-stream)
    POST   /files/upload                         multipart: "path" (a directory, made if missing) and one or
                                                 more "files" -> 201 {"files": [Entry]}
    POST   /files/mkdir                          {"path"} -> 201 Entry
    POST   /files/move                           {"from", "to"} -> Entry (409 when "to" exists)
    GET    /files/download-zip?path=             the directory as a zip (links and special files left out)

Limits: a read or write as JSON 1 MiB, a download, upload or zip 64 MiB, a listing 1,000 entries (413 past
them; CLOUDLET_FILES_* settings). 409 when the server is not running or its image has no guest agent. These
act as root inside the server, so every one needs instances:write. TUS resumable uploads are not offered.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, Field

from cloudlet.auth.caller import Caller
from cloudlet.config import Settings
from cloudlet.instances import files
from cloudlet.instances.schemas import FileContent, FileEntry, FileListing
from cloudlet.kit.errors import Invalid
from cloudlet.surfaces.deps import AppRuntime, AppSettings, DbSession, requires
from cloudlet.surfaces.shardlyn.instance_schemas import instance_ident
from cloudlet.tokens.abilities import Ability

router = APIRouter(prefix="/v1/instances", tags=["shardlyn"])

UPLOAD_PATHS = re.compile(r"^/v1/instances/[^/]+/files/(upload|content)$")
Operator = Annotated[Caller, requires(Ability.INSTANCES_WRITE)]
PathParam = Annotated[str, Query(max_length=files.MAX_PATH, description="Relative to root.")]
RootParam = Annotated[str, Query(max_length=files.MAX_PATH, description="Paths may not leave it.")]


def upload_cap(settings: Settings) -> int:
    """The largest request body an upload or a content write may send (the multipart or JSON framing aside)."""
    return max(settings.files_max_bytes, settings.files_content_max_bytes * 2) + 1024 * 1024


class ShardlynFileListing(FileListing):
    """A directory's entries."""

    total: int


class ContentWrite(BaseModel):
    """PUT /files/content."""

    path: str = Field(max_length=files.MAX_PATH)
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"
    root: str = Field(default="/", max_length=files.MAX_PATH)

    def data(self) -> bytes:
        """The bytes to write."""
        if self.encoding == "utf-8":
            return self.content.encode()
        try:
            return base64.b64decode(self.content, validate=True)
        except binascii.Error:
            raise Invalid("content", "content is not valid base64.") from None


class MakeDir(BaseModel):
    """POST /files/mkdir."""

    path: str = Field(max_length=files.MAX_PATH)
    root: str = Field(default="/", max_length=files.MAX_PATH)


class Move(BaseModel):
    """POST /files/move."""

    source: str = Field(alias="from", max_length=files.MAX_PATH)
    target: str = Field(alias="to", max_length=files.MAX_PATH)
    root: str = Field(default="/", max_length=files.MAX_PATH)


class Uploaded(BaseModel):
    """What an upload wrote."""

    files: list[FileEntry]


def _attachment(download: files.Download, media_type: str) -> Response:
    safe = re.sub(r'[^A-Za-z0-9._-]', "_", download.filename) or "download"
    return Response(download.data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{safe}"'})


@router.get("/{instance_id}/files", response_model=ShardlynFileListing, summary="List files")
def list_files(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime, settings: AppSettings,
               path: PathParam = "/", root: RootParam = "/") -> ShardlynFileListing:
    """A directory's entries, by name."""
    found = files.list_files(db, runtime.drivers, settings, caller, instance_ident(instance_id), path, root)
    return ShardlynFileListing(**found.model_dump(), total=len(found.entries))


@router.get("/{instance_id}/files/content", response_model=FileContent, summary="Read file")
def read_file(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime, settings: AppSettings,
              path: PathParam, root: RootParam = "/") -> FileContent:
    """A file's content."""
    return files.read_content(db, runtime.drivers, settings, caller, instance_ident(instance_id), path, root)


@router.put("/{instance_id}/files/content", response_model=FileEntry, summary="Write file")
def write_file(instance_id: str, body: ContentWrite, caller: Operator, db: DbSession, runtime: AppRuntime,
               settings: AppSettings) -> FileEntry:
    """Make or replace a file."""
    return files.write_content(db, runtime.drivers, settings, caller, instance_ident(instance_id), body.path,
                               body.data(), body.root)


@router.delete("/{instance_id}/files", status_code=204, summary="Delete file")
def delete_file(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime, path: PathParam,
                recursive: bool = False, root: RootParam = "/") -> Response:
    """Delete a file, a link or a directory."""
    files.delete(db, runtime.drivers, caller, instance_ident(instance_id), path, recursive=recursive, root=root)
    return Response(status_code=204)


@router.get("/{instance_id}/files/download", summary="Download file",
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_file(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime, settings: AppSettings,
                  path: PathParam, root: RootParam = "/") -> Response:
    """A file's bytes."""
    found = files.download(db, runtime.drivers, settings, caller, instance_ident(instance_id), path, root)
    return _attachment(found, "application/octet-stream")


@router.post("/{instance_id}/files/upload", response_model=Uploaded, status_code=201, summary="Upload (multipart)")
def upload_files(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime,
                       settings: AppSettings, sent: Annotated[list[UploadFile], File(alias="files")],
                       path: Annotated[str, Form(max_length=files.MAX_PATH)] = "/",
                       root: Annotated[str, Form(max_length=files.MAX_PATH)] = "/") -> Uploaded:
    """Put files into a directory."""
    contents = [(upload.filename or "", upload.file.read()) for upload in sent]  # parsed and spooled by FastAPI
    return Uploaded(files=files.upload(db, runtime.drivers, settings, caller, instance_ident(instance_id), path,
                                       contents, root))


@router.post("/{instance_id}/files/mkdir", response_model=FileEntry, status_code=201, summary="Create directory")
def make_directory(instance_id: str, body: MakeDir, caller: Operator, db: DbSession,
                   runtime: AppRuntime) -> FileEntry:
    """Make a directory and its parents."""
    return files.make_dir(db, runtime.drivers, caller, instance_ident(instance_id), body.path, body.root)


@router.post("/{instance_id}/files/move", response_model=FileEntry, summary="Move/rename")
def move_file(instance_id: str, body: Move, caller: Operator, db: DbSession, runtime: AppRuntime) -> FileEntry:
    """Rename a file, link or directory."""
    return files.move(db, runtime.drivers, caller, instance_ident(instance_id), body.source, body.target, body.root)


@router.get("/{instance_id}/files/download-zip", summary="Download directory as zip",
            responses={200: {"content": {"application/zip": {}}}})
def download_zip(instance_id: str, caller: Operator, db: DbSession, runtime: AppRuntime, settings: AppSettings,
                 path: PathParam = "/", root: RootParam = "/") -> Response:
    """A directory as a zip."""
    found = files.download_zip(db, runtime.drivers, settings, caller, instance_ident(instance_id), path, root)
    return _attachment(found, "application/zip")
