"""The IP pool a new installation starts with, beside the default catalogue (catalog/defaults.py).

A documentation range (RFC 5737) that routes nowhere, to be replaced with the operator's own:
`cloudlet catalog load my-catalogue.yaml` upserts pools by CIDR.
"""

from __future__ import annotations

from cloudlet.catalog.defaults import REGION
from cloudlet.networking.schemas import PoolEntry

DEFAULT_POOLS = [PoolEntry(region=REGION, cidr="203.0.113.0/24", name="documentation range (replace me)",
                           gateway="203.0.113.1")]
