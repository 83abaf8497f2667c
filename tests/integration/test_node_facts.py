"""One place for a node's facts, and "no node" said as such (issue 9, finding 4.11).

`cloudlet node prepare` used to write node.json beside the libvirt pool while `serve` looked in the
data directory, so a second installation on a host (whose pool is the first one's) never
registered its node, and creating a server then answered "no room" instead of "no node".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudlet import catalogue_file
from cloudlet.billing import service as billing
from cloudlet.billing.schemas import CreditCreate
from cloudlet.catalog import service as catalog
from cloudlet.catalog.schemas import TemplateUpdate
from cloudlet.drivers.libvirt import host
from cloudlet.images import service as images
from cloudlet.images.models import ImageSource
from cloudlet.images.schemas import ImageRegister
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.nodes.service import NoCapacity, NoNode
from cloudlet.surfaces.deps import Runtime
from tests.cloud import REGION, TEMPLATE
from tests.conftest import Api
from tests.helpers import make_user

FACTS = host.NodeFacts("qemu", 2.5)


def test_the_facts_prepare_records_are_the_ones_serve_finds(runtime: Runtime, tmp_path: Path) -> None:
    settings = runtime.settings
    assert nodes.libvirt_prepared(settings) is False
    # the pool of another installation on this host, with that installation's facts beside it
    other = tmp_path / "first-installation"
    host.write_facts(other, FACTS)
    (other / "pool").mkdir()
    assert nodes.libvirt_prepared(settings) is False  # another installation's facts are not this one's
    host.write_facts(nodes.facts_dir(settings.data_dir), FACTS)  # what `cloudlet node prepare` writes
    assert nodes.libvirt_prepared(settings) is True
    assert host.read_facts(nodes.facts_dir(settings.data_dir)) == FACTS
    assert nodes.facts_dir(settings.data_dir) == settings.data_dir


def test_prepare_writes_its_facts_where_serve_looks() -> None:
    # prepare_node needs libvirtd; what it must agree on with serve is the one function both call.
    from cloudlet.nodes import prepare

    assert prepare.facts_dir is nodes.facts_dir


def test_scheduling_with_no_node_at_all_says_no_node_is_registered(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
    with runtime.db.session() as session, pytest.raises(NoNode) as refused:
        nodes.schedule(session, REGION, Resources(vcpu=1, memory_mib=512, disk_gib=10))
    assert refused.value.status == 503 and refused.value.code == "NO_NODE"
    assert "No hypervisor node is registered" in refused.value.message
    assert "cloudlet node prepare" in refused.value.message
    # with a node that is merely full, the answer is "no room", as before
    with runtime.db.session() as session:
        nodes.create_node(session, NodeCreate(name="hv1", uri="qemu+ssh://hv1.example.net/system", region=REGION,
                                              capacity=Resources(vcpu=1, memory_mib=512, disk_gib=10)))
    with runtime.db.session() as session, pytest.raises(NoCapacity) as full:
        nodes.schedule(session, REGION, Resources(vcpu=1, memory_mib=512, disk_gib=10))
    assert full.value.code == "NO_CAPACITY" and "has room" in full.value.message


def test_creating_a_server_with_no_node_answers_503_no_node(api: Api, runtime: Runtime) -> None:
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        image = images.register_image(session, ImageRegister(name="tiny", source=ImageSource.BUILT, volume="tiny",
                                                             virtual_size_bytes=1 << 30))
        template = catalog.get_template(session, TEMPLATE)
        catalog.update_template(session, template.id, TemplateUpdate(image_id=image.id))
        plan_id = catalog.get_plan(session, "scout-1").id
    customer = make_user(runtime, "customer@example.com")
    with runtime.db.session() as session:
        billing.credit_user(session, runtime.settings, customer.user, CreditCreate(amount_cents=10_000))
    body = {"name": "web-1", "hostname": "web-1.example.com", "package_id": plan_id, "category": "standard",
            "os_template_id": template.id, "os_name": "Debian 12", "billing_cycle": "monthly", "ssh_key_ids": [],
            "project_id": customer.project_id}
    reply = api.as_(customer.token).post("/api/instances", json=body)
    assert reply.status_code == 503, reply.text
    assert reply.json()["code"] == "NO_NODE"
    assert reply.json()["message"].startswith("No hypervisor node is registered")
    assert api.as_(customer.token).get("/api/wallet/balance").json()["balance_cents"] == 10_000  # nothing charged
