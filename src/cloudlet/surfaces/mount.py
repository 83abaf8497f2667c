"""The five surfaces on one FastAPI app: their routers, error formats, tags and the request middleware.

app.create_app imports this module when it builds an app, so that a process serving no API (the CLI's
commands, `cloudlet worker`) does not load the surfaces.
"""

from __future__ import annotations

from fastapi import FastAPI

from cloudlet.surfaces import acme_challenge, docs, errors, route_index
from cloudlet.surfaces import prometheus as operator_metrics
from cloudlet.surfaces.cyberpanel import account as cp_account
from cloudlet.surfaces.cyberpanel import billing as cp_billing
from cloudlet.surfaces.cyberpanel import catalog as cp_catalog
from cloudlet.surfaces.cyberpanel import errors as cyberpanel_errors
from cloudlet.surfaces.cyberpanel import general as cp_general
from cloudlet.surfaces.cyberpanel import vps as cp_vps
from cloudlet.surfaces.cyberpanel import vps_console as cp_vps_console
from cloudlet.surfaces.cyberpanel import vps_power as cp_vps_power
from cloudlet.surfaces.cyberpanel import vps_rebuild as cp_vps_rebuild
from cloudlet.surfaces.cyberpanel import vps_snapshots as cp_vps_snapshots
from cloudlet.surfaces.cyberpanel import vps_status as cp_vps_status
from cloudlet.surfaces.deps import Runtime
from cloudlet.surfaces.elxega import errors as elxega_errors
from cloudlet.surfaces.elxega import workloads as ex_workloads
from cloudlet.surfaces.limits import BodySizeLimit
from cloudlet.surfaces.middleware import RequestBookkeeping
from cloudlet.surfaces.primary import admin_actions as primary_admin_actions
from cloudlet.surfaces.primary import agent as primary_agent
from cloudlet.surfaces.primary import agent_telegram as primary_agent_telegram
from cloudlet.surfaces.primary import billing as primary_billing
from cloudlet.surfaces.primary import catalog as primary_catalog
from cloudlet.surfaces.primary import console as primary_console
from cloudlet.surfaces.primary import copies as primary_copies
from cloudlet.surfaces.primary import errors as primary_errors
from cloudlet.surfaces.primary import instances as primary_instances
from cloudlet.surfaces.primary import me as primary_me
from cloudlet.surfaces.primary import metrics as primary_metrics
from cloudlet.surfaces.primary import power as primary_power
from cloudlet.surfaces.primary import rebuild as primary_rebuild
from cloudlet.surfaces.primary import shield as primary_shield
from cloudlet.surfaces.primary import shield_bandwidth as primary_shield_bandwidth
from cloudlet.surfaces.primary import shield_visibility as primary_shield_visibility
from cloudlet.surfaces.primary import team as primary_team
from cloudlet.surfaces.primary import tokens as primary_tokens
from cloudlet.surfaces.primary import waf as primary_waf
from cloudlet.surfaces.primary import wallet as primary_wallet
from cloudlet.surfaces.security_headers import SecurityHeaders
from cloudlet.surfaces.shardlyn import admin as sh_admin
from cloudlet.surfaces.shardlyn import admin_catalog as sh_admin_catalog
from cloudlet.surfaces.shardlyn import alerts as sh_alerts
from cloudlet.surfaces.shardlyn import auth as sh_auth
from cloudlet.surfaces.shardlyn import billing as sh_billing
from cloudlet.surfaces.shardlyn import errors as shardlyn_errors
from cloudlet.surfaces.shardlyn import git_webhooks as sh_git_webhooks
from cloudlet.surfaces.shardlyn import health as sh_health
from cloudlet.surfaces.shardlyn import images as sh_images
from cloudlet.surfaces.shardlyn import instance_backups as sh_instance_backups
from cloudlet.surfaces.shardlyn import instance_console as sh_instance_console
from cloudlet.surfaces.shardlyn import instance_files as sh_instance_files
from cloudlet.surfaces.shardlyn import instance_logs as sh_instance_logs
from cloudlet.surfaces.shardlyn import instance_metrics as sh_instance_metrics
from cloudlet.surfaces.shardlyn import instance_power as sh_instance_power
from cloudlet.surfaces.shardlyn import instances as sh_instances
from cloudlet.surfaces.shardlyn import integrations as sh_integrations
from cloudlet.surfaces.shardlyn import node_firewall as sh_node_firewall
from cloudlet.surfaces.shardlyn import nodes as sh_nodes
from cloudlet.surfaces.shardlyn import organizations as sh_organizations
from cloudlet.surfaces.shardlyn import settings as sh_settings
from cloudlet.surfaces.shardlyn import ssh as sh_ssh
from cloudlet.surfaces.shardlyn import tokens as sh_tokens
from cloudlet.surfaces.shardlyn import users as sh_users
from cloudlet.surfaces.shardlyn import webhook_tokens as sh_webhook_tokens
from cloudlet.surfaces.wayscloud import catalog as wc_catalog
from cloudlet.surfaces.wayscloud import errors as wayscloud_errors
from cloudlet.surfaces.wayscloud import vps as wc_vps
from cloudlet.surfaces.wayscloud import vps_power as wc_vps_power
from cloudlet.surfaces.wayscloud import vps_status as wc_vps_status

ELXEGA_PREFIXES = ("/v1/workloads", "/v1/deployments", "/v1/resources")

TAGS = [
    {"name": "primary", "description": "The primary surface at /api (Evorxa reference)."},
    {"name": "cyberpanel", "description": "CyberPanel-compatible surface at /api/v1."},
    {"name": "shardlyn", "description": "Shardlyn-compatible surface at /v1, /health and /ready."},
    {"name": "wayscloud", "description": "WaysCloud-compatible surface at /v1/vps."},
    {"name": "elxega", "description": "Elxega-compatible surface at /v1/workloads, /v1/deployments, /v1/resources."},
]


def error_renderer(path: str) -> errors.Renderer:
    """The error format of the surface that owns a path."""
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return cyberpanel_errors.render
    if path.startswith("/api/"):
        return primary_errors.render
    if path == "/v1/vps" or path.startswith("/v1/vps/"):
        return wayscloud_errors.render
    if path.startswith(ELXEGA_PREFIXES):
        return elxega_errors.render
    return shardlyn_errors.render


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount every surface on the app: error formats, documentation, routers and the request middleware."""
    errors.install(app, error_renderer)
    docs.install(app)
    # No two routers' paths overlap; route_index has FastAPI try only the routers a path can belong to.
    for module in (primary_me, sh_health, sh_auth, sh_users, sh_tokens, sh_organizations, sh_admin, sh_billing,
                   sh_images, sh_admin_catalog, sh_ssh, sh_alerts, primary_tokens, primary_team, primary_catalog,
                   primary_wallet,
                   sh_settings, sh_webhook_tokens, sh_git_webhooks, sh_integrations,
                   primary_billing, primary_agent, primary_agent_telegram, primary_shield, cp_general, cp_account,
                   cp_catalog, cp_billing,
                   wc_catalog, primary_shield_bandwidth, primary_shield_visibility, primary_waf,
                   sh_nodes, sh_node_firewall,
                   primary_instances, cp_vps, wc_vps, sh_instances, sh_instance_logs, ex_workloads,
                   primary_power, cp_vps_power, wc_vps_power, sh_instance_power,
                   primary_metrics, cp_vps_status, wc_vps_status, sh_instance_metrics, operator_metrics,
                   primary_console, cp_vps_console, sh_instance_console, cp_vps_snapshots, sh_instance_backups,
                   sh_instance_files,
                   primary_rebuild, primary_copies, cp_vps_rebuild, primary_admin_actions, acme_challenge):
        app.include_router(module.router)
    route_index.install(app)
    uploads = (sh_instance_files.UPLOAD_PATHS, sh_instance_files.upload_cap(runtime.settings))
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes, render=error_renderer, larger=uploads)
    app.add_middleware(SecurityHeaders, settings=runtime.settings)
    app.add_middleware(RequestBookkeeping, runtime=runtime)
