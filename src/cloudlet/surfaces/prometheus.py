"""GET /metrics: the operators' Prometheus endpoint, control-plane and per-instance series.

Access: an administrator's credential, or `Authorization: Bearer <CLOUDLET_METRICS_TOKEN>` when the
operator set that token for the scraper (it grants nothing else). It is never public: it names every
customer's instances. Anything else is refused as the admin endpoints refuse (401 without a
credential, 403 for a non-admin), in Shardlyn's error format since the path is Shardlyn's by the
owner rule (the Shardlyn reference points to "Prometheus metrics endpoints" for its operators).

Series (all gauges unless `_total`):
- cloudlet_build_info{version}; cloudlet_instances{status} (deleted ones left out);
  cloudlet_actions_running; cloudlet_metrics_last_sample_timestamp_seconds;
- per node{node, region}: cloudlet_node_up (1 ready or cordoned, 0 unreachable), cloudlet_node_cordoned,
  cloudlet_node_vcpus / _memory_bytes / _disk_bytes {kind: capacity, allocatable, used};
- per instance{instance_id (uuid), name, project_id, node}, for every instance the sampler read in the
  last ten minutes: cloudlet_instance_up, counters cloudlet_instance_cpu_seconds_total,
  _disk_read_bytes_total, _disk_written_bytes_total, _network_receive_bytes_total,
  _network_transmit_bytes_total (since the guest started: Prometheus' rate() handles their resets),
  and from the newest sample cloudlet_instance_cpu_percent, _vcpus, _memory_bytes, _memory_used_bytes
  (when the guest reports it), _disk_used_bytes, _disk_size_bytes;
- the serving process's own process_* and python_* series.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as render_text
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloudlet import __version__
from cloudlet.config import reveal
from cloudlet.kit.errors import Forbidden
from cloudlet.metrics import service as metrics
from cloudlet.metrics.schemas import InstanceSeries, OperatorView
from cloudlet.nodes.models import NodeStatus
from cloudlet.surfaces.deps import DbSession, Runtime, credential_of, current_caller

router = APIRouter(tags=["shardlyn"])

MIB, GIB = 1024**2, 1024**3
INSTANCE_LABELS = ["instance_id", "name", "project_id", "node"]


def scraper(request: Request, db: DbSession) -> None:
    """Let in the configured scrape token, or an administrator (401 without a credential, 403 otherwise)."""
    runtime: Runtime = request.app.state.runtime
    expected, presented = reveal(runtime.settings.metrics_token), credential_of(request)
    if expected and presented and hmac.compare_digest(presented.encode(), expected.encode()):
        return
    if not current_caller(request, db).is_admin:
        raise Forbidden("Administrator access or the metrics token is required.", code="ADMIN_REQUIRED")


scraper.required_ability = "admin"  # type: ignore[attr-defined]  # read by the scope test
Scraper = Annotated[None, Depends(scraper)]


def _labels(series: InstanceSeries) -> list[str]:
    return [series.uuid, series.name, str(series.project_id), series.node]


class _ViewCollector(Collector):
    """Turns one OperatorView into metric families."""

    def __init__(self, view: OperatorView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        yield from self._control_plane()
        yield from self._nodes()
        yield from self._instances()

    def _control_plane(self) -> Iterator[Metric]:
        view = self.view
        info = GaugeMetricFamily("cloudlet_build_info", "The Cloudlet version serving this endpoint.",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        counts = GaugeMetricFamily("cloudlet_instances", "Instances in each status (deleted ones left out).",
                                   labels=["status"])
        for status, total in view.instances:
            counts.add_metric([status], total)
        yield counts
        yield GaugeMetricFamily("cloudlet_actions_running", "Actions being carried out now.",
                                value=view.running_actions)
        last = GaugeMetricFamily("cloudlet_metrics_last_sample_timestamp_seconds",
                                 "When the metrics sampler last read a guest (Unix time).")
        if view.last_sample_at is not None:
            last.add_metric([], view.last_sample_at.timestamp())
        yield last

    def _nodes(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("cloudlet_node_up", "1 when the node answered its last heartbeat.",
                               labels=["node", "region"])
        cordoned = GaugeMetricFamily("cloudlet_node_cordoned", "1 when the node takes no new guests.",
                                     labels=["node", "region"])
        sizes = {"vcpu": (GaugeMetricFamily("cloudlet_node_vcpus", "vCPUs of the node.",
                                            labels=["node", "region", "kind"]), 1),
                 "memory_mib": (GaugeMetricFamily("cloudlet_node_memory_bytes", "Memory of the node.",
                                                  labels=["node", "region", "kind"]), MIB),
                 "disk_gib": (GaugeMetricFamily("cloudlet_node_disk_bytes", "Disk of the node.",
                                                labels=["node", "region", "kind"]), GIB)}
        for node in self.view.nodes:
            where = [node.name, node.region]
            up.add_metric(where, 0 if node.health is NodeStatus.UNREACHABLE else 1)
            cordoned.add_metric(where, 1 if node.cordoned else 0)
            for kind, amounts in (("capacity", node.capacity), ("allocatable", node.allocatable), ("used", node.used)):
                for field, (family, unit) in sizes.items():
                    family.add_metric([*where, kind], getattr(amounts, field) * unit)
        yield up
        yield cordoned
        yield from (family for family, _unit in sizes.values())

    def _instances(self) -> Iterator[Metric]:
        series = self.view.series
        up = GaugeMetricFamily("cloudlet_instance_up", "1 when the guest ran at its last reading.",
                               labels=INSTANCE_LABELS)
        counters: list[tuple[CounterMetricFamily, Callable[[InstanceSeries], float]]] = [
            (CounterMetricFamily("cloudlet_instance_cpu_seconds", "CPU time the guest used since it started.",
                                 labels=INSTANCE_LABELS), lambda s: s.cpu_time_ns / 1e9),
            (CounterMetricFamily("cloudlet_instance_disk_read_bytes", "Bytes the guest read from its disk.",
                                 labels=INSTANCE_LABELS), lambda s: s.disk_read_bytes),
            (CounterMetricFamily("cloudlet_instance_disk_written_bytes", "Bytes the guest wrote to its disk.",
                                 labels=INSTANCE_LABELS), lambda s: s.disk_write_bytes),
            (CounterMetricFamily("cloudlet_instance_network_receive_bytes", "Bytes the guest received.",
                                 labels=INSTANCE_LABELS), lambda s: s.net_rx_bytes),
            (CounterMetricFamily("cloudlet_instance_network_transmit_bytes", "Bytes the guest sent.",
                                 labels=INSTANCE_LABELS), lambda s: s.net_tx_bytes),
        ]
        gauges = {name: GaugeMetricFamily(f"cloudlet_instance_{name}", text, labels=INSTANCE_LABELS)
                  for name, text in (("cpu_percent", "CPU use over the last sample, % of the guest's vCPUs."),
                                     ("vcpus", "vCPUs of the guest."),
                                     ("memory_bytes", "Memory the guest was given."),
                                     ("memory_used_bytes", "Memory the guest uses (balloon driver's report)."),
                                     ("disk_used_bytes", "What the guest's disk takes on its node."),
                                     ("disk_size_bytes", "The size of the guest's disk."))}
        for one in series:
            labels = _labels(one)
            up.add_metric(labels, 1 if one.running else 0)
            for family, value in counters:
                family.add_metric(labels, value(one))
            point = one.latest
            if point is None:
                continue
            gauges["cpu_percent"].add_metric(labels, point.cpu_percent)
            gauges["vcpus"].add_metric(labels, point.vcpus)
            gauges["memory_bytes"].add_metric(labels, point.memory_mib * MIB)
            if point.memory_used_mib is not None:
                gauges["memory_used_bytes"].add_metric(labels, point.memory_used_mib * MIB)
            gauges["disk_used_bytes"].add_metric(labels, point.disk_used_bytes)
            gauges["disk_size_bytes"].add_metric(labels, point.disk_total_bytes)
        yield up
        yield from (family for family, _value in counters)
        yield from gauges.values()


def exposition(view: OperatorView) -> bytes:
    """The Prometheus text format of the view, with this process's own series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return render_text(registry)


@router.get("/metrics", summary="Prometheus metrics for operators (admin or the metrics token)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def prometheus_metrics(_access: Scraper, db: DbSession) -> Response:
    """Control-plane and per-instance series in Prometheus' text format."""
    return Response(exposition(metrics.operator_view(db)), media_type=CONTENT_TYPE_LATEST)
