"""The catalogue a new installation starts with, so it can sell something at once.

Everything here is meant to be edited: `cloudlet catalog load my-catalogue.yaml` upserts by code.
The default exchange rates (billing's) and IP pool (networking's) are in cloudlet/catalogue_file.py.
"""

from __future__ import annotations

from cloudlet.catalog.schemas import (
    CatalogueFile,
    CategoryCreate,
    CycleCreate,
    PlanEntry,
    RegionCreate,
    TemplateCreate,
)

REGION = "dc1"
TEMPLATE_IMAGES = {"debian-12-tiny": "tiny"}  # default template -> the image `cloudlet images build` names
# Templates added to the catalogue once their image is registered (by `cloudlet images build`), named as it is.
IMAGE_TEMPLATES = {
    "debian-12": TemplateCreate(code="debian-12", family="debian", name="Debian 12", os="Debian 12", version="12",
                                min_ram_mb=512, min_disk_gb=3,
                                description="Debian 12 cloud image: systemd, OpenSSH, cloud-init and the QEMU guest "
                                            "agent."),
}

DEFAULT_CATALOGUE = CatalogueFile(
    regions=[RegionCreate(code=REGION, name="Datacenter 1", country="US", flag="\U0001f1fa\U0001f1f8")],
    categories=[
        CategoryCreate(code="standard", name="Standard", description="Shared vCPUs for most workloads.",
                       sort_order=1),
        CategoryCreate(code="cpu-optimized", name="CPU-optimized",
                       description="Dedicated vCPUs for compute-heavy workloads.", sort_order=2),
    ],
    plans=[
        PlanEntry(code="scout-1", name="Scout 1", category="standard", vcpu=1, ram_mb=1024, disk_gb=25,
                  bandwidth_gb=1000, monthly_price_cents=600, regions=[REGION], sort_order=1),
        PlanEntry(code="scout-2", name="Scout 2", category="standard", vcpu=2, ram_mb=4096, disk_gb=60,
                  bandwidth_gb=2000, monthly_price_cents=1200, regions=[REGION], sort_order=2),
        PlanEntry(code="scout-4", name="Scout 4", category="standard", vcpu=4, ram_mb=8192, disk_gb=120,
                  bandwidth_gb=4000, monthly_price_cents=2400, regions=[REGION], sort_order=3),
        PlanEntry(code="forge-2", name="Forge 2", category="cpu-optimized", vcpu=2, ram_mb=4096, disk_gb=50,
                  bandwidth_gb=2000, monthly_price_cents=2800, regions=[REGION], sort_order=1),
        PlanEntry(code="forge-4", name="Forge 4", category="cpu-optimized", vcpu=4, ram_mb=8192, disk_gb=100,
                  bandwidth_gb=4000, monthly_price_cents=5600, regions=[REGION], sort_order=2),
    ],
    cycles=[
        CycleCreate(code="monthly", name="Monthly", months=1, discount_bps=0, sort_order=1),
        CycleCreate(code="6months", name="6 months", months=6, discount_bps=500, sort_order=2),
        CycleCreate(code="yearly", name="Yearly", months=12, discount_bps=1000, sort_order=3),
    ],
    templates=[
        TemplateCreate(code="debian-12-tiny", family="debian", name="Debian 12 (tiny)", os="Debian 12",
                       version="12", min_ram_mb=256, min_disk_gb=1,
                       description="Small Debian 12 based image: Debian cloud kernel, busybox userland, cloud-init "
                                   "style NoCloud seed."),
    ],
)
