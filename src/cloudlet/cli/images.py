"""`cloudlet images`: build and import guest images into this node's pool."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import typer

from cloudlet.app import build_runtime
from cloudlet.config import Settings
from cloudlet.drivers.base import DriverError, ImageInfo
from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.images import service as images
from cloudlet.images.build import build_tiny
from cloudlet.images.debian import DEBIAN_RELEASES, BuiltImage, build_debian
from cloudlet.images.models import ImageCapability, ImageSource
from cloudlet.images.schemas import OS_FAMILY
from cloudlet.kit import migrate as migrations
from cloudlet.kit.errors import CloudletError

app = typer.Typer(help="Guest images on this node.", no_args_is_help=True)


def _driver() -> LibvirtDriver:
    try:
        return LibvirtDriver()
    except DriverError as error:
        typer.echo(f"libvirt is not ready ({error}); run `cloudlet node prepare` first", err=True)
        raise typer.Exit(1) from error


def _register(info: ImageInfo, source: ImageSource, file: Path, *, os_family: str = "linux",
              capabilities: frozenset[ImageCapability] = frozenset()) -> None:
    # the registry is what OS templates point at; the driver has stored the volume already
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = build_runtime(settings).db
    migrations.upgrade(db.engine)
    try:
        with db.session() as session:
            read = images.register_from_driver(session, info, source, file, os_family=os_family,
                                               capabilities=capabilities)
            images.link_default_templates(session)
    except CloudletError as error:
        typer.echo(f"stored in the pool but not registered: {error.message}", err=True)
        raise typer.Exit(1) from None

    finally:
        db.dispose()
    typer.echo(f"registered as image {read.id} ({read.checksum}), {read.os_family}, "
               f"can: {', '.join(read.capabilities) or 'serial readiness only'}")


BUILDABLE = ("tiny", *sorted(DEBIAN_RELEASES))


def _build(name: str, settings: Settings, target: Path) -> BuiltImage:
    cache = settings.data_dir / "cache"
    try:
        if name == "tiny":
            return BuiltImage(build_tiny(cache, target), packages=[], os_family="linux", capabilities=frozenset())
        return build_debian(name, settings.image_mirror, cache, target)
    except RuntimeError as error:
        typer.echo(f"building {name} failed: {error}", err=True)
        raise typer.Exit(1) from None


@app.command("build")
def build(
    name: str = typer.Argument(..., help=f"The image to build: {', '.join(BUILDABLE)}."),
    output: Path | None = typer.Option(None, help="Write the qcow2 here instead of importing it into the pool."),
    replace: bool = typer.Option(False, "--replace", help="Replace an image of that name already in the pool."),
) -> None:
    """Build an image offline from Debian packages (tiny: kernel + busybox; debian-12: a cloud image made with
    mmdebstrap from CLOUDLET_IMAGE_MIRROR) and import it into the pool as a base volume."""
    if name not in BUILDABLE:
        typer.echo(f"unknown image {name!r}; these can be built: {', '.join(BUILDABLE)} "
                   "(use `cloudlet images import` for others)", err=True)
        raise typer.Exit(2)
    settings = Settings()
    if output is not None:
        built = _build(name, settings, output)
        typer.echo(f"built {built.path} ({len(built.packages)} packages)" if built.packages else f"built {built.path}")
        return
    driver = _driver()
    with tempfile.TemporaryDirectory(prefix="cloudlet-image-", dir=settings.data_dir) as tmp:
        built = _build(name, settings, Path(tmp) / f"{name}.qcow2")
        if replace:
            driver.delete_image(name)
        info = driver.import_image(name, built.path)
        typer.echo(f"image {info.name}: {info.virtual_size_bytes // 2**20} MiB virtual, "
                   f"{info.allocation_bytes / 2**20:.1f} MiB on disk, in the pool")
        _register(info, ImageSource.BUILT, built.path, os_family=built.os_family, capabilities=built.capabilities)


@app.command("import")
def import_image(
    name: str = typer.Argument(..., help="Name of the image in the pool."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="A cloud image: qcow2 or raw (e.g. Debian's or Ubuntu's genericcloud image)."),
    sha256: str | None = typer.Option(None, "--sha256", help="The file's published SHA-256; refused if it differs."),
    os_family: str = typer.Option("linux", "--os-family", help="debian, ubuntu, ... (what the image is)."),
    capability: list[ImageCapability] = typer.Option(  # typer reads options from defaults
        [], "--can", help="What the image can do, once per capability: cloud_init, guest_agent, ssh."),
) -> None:
    """Copy a qcow2 or raw cloud image (with cloud-init, or the tiny image) into the pool as base image NAME."""
    if not re.match(OS_FAMILY, os_family):
        typer.echo(f"--os-family {os_family!r}: lower-case letters, digits and hyphens, e.g. debian", err=True)
        raise typer.Exit(2)
    if sha256 is not None:
        wanted = sha256.strip().lower().removeprefix("sha256:")
        found = images.file_checksum(file).removeprefix("sha256:")
        if wanted != found:
            typer.echo(f"refused: {file} has SHA-256 {found}, not {wanted}", err=True)
            raise typer.Exit(1)
    try:
        info = _driver().import_image(name, file)
    except DriverError as error:
        typer.echo(f"cannot import {file}: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"image {info.name}: {info.virtual_size_bytes // 2**20} MiB virtual, in the pool")
    _register(info, ImageSource.IMPORTED, file, os_family=os_family, capabilities=frozenset(capability))


@app.command("list")
def list_images() -> None:
    """The base images in the pool."""
    for info in _driver().list_images():
        typer.echo(f"{info.name}\t{info.virtual_size_bytes // 2**20} MiB\t{info.allocation_bytes / 2**20:.1f} MiB used")
