"""The one Settings object: every knob is a CLOUDLET_* environment variable or a line in .env."""

from __future__ import annotations

import secrets
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from pydantic import Field, IPvAnyNetwork, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DNS_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"


class Settings(BaseSettings):
    """Process-wide configuration, read once at start-up."""

    model_config = SettingsConfigDict(env_prefix="CLOUDLET_", env_file=".env", extra="ignore")

    data_dir: Path = Path("/var/lib/cloudlet")
    # URLs may carry a password: kept out of the repr, so a logged Settings cannot show it
    database_url: str | None = Field(default=None, repr=False)  # default: SQLite file in data_dir
    redis_url: str | None = Field(default=None, repr=False)  # rate limits in Redis when set, else in memory
    redis_prefix: str = "cloudlet"  # namespace of our keys in that Redis
    secret_key: SecretStr | None = None  # JWT signing key; default: generated once into data_dir
    public_url: str = "http://127.0.0.1:8080"  # used in links inside emails
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    log_json: bool = False
    # FastAPI's own OpenTelemetry spans, metrics and logs, for an operator who collects them (exporters
    # set up by the OpenTelemetry SDK, or by FASTAPI_OTEL_AUTO_CONFIGURE=true from the OTEL_* variables).
    # Off by default: Cloudlet serves Prometheus metrics and writes structured logs itself, and FastAPI's
    # telemetry asks the OpenTelemetry providers (environment look-ups) on every request even unused.
    opentelemetry: bool = False

    allow_registration: bool = True
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    password_reset_minutes: int = 60
    invitation_days: int = 7
    mfa_challenge_minutes: int = 5
    password_min_length: int = 8

    # argon2id cost; tests lower it, production keeps the library's recommended values
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    token_rate_per_minute: int = 60
    token_rate_per_hour: int = 1000
    login_rate_per_account: str = "10/minute"
    login_rate_per_address: str = "30/minute"
    signup_rate_per_address: str = "5/hour"  # sign-ups from one client address (each costs an argon2id hash)
    invitation_rate_per_project: str = "20/hour"  # invitation emails one project may send
    invitation_rate_per_inviter: str = "30/hour"  # invitation emails one user may send, all projects together
    max_tokens_per_user: int = 100  # API tokens one account may hold, so per-token limits bound a customer
    mfa_rate: str = "5/minute"
    # inbound git webhooks (/v1/webhooks/github, /gitlab), which need no credential: every delivery from one
    # client address (GitHub's and GitLab.com's few senders carry everyone's, so generous) and to one token
    git_hook_rate_per_address: str = "600/minute"
    git_hook_rate_per_token: str = "60/minute"
    # GET requests made with a token wait until their usage-log line is committed. Off in production
    # (the line is written moments after the answer, in batches); tests turn it on to read it at once.
    usage_log_sync: bool = False
    usage_flush_seconds: float = Field(default=1.0, gt=0)  # the longest a read's usage line waits to be written
    trusted_proxies: list[str] = Field(default_factory=list)  # whose X-Forwarded-For is believed
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)  # a larger request body gets 413 before it is read

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "Cloudlet <no-reply@cloudlet.localhost>"

    # wallets and billing (money is integer minor units of the wallet's currency)
    wallet_currency: str = "USD"  # currency of new wallets
    wallet_trial_credit_cents: int = 0  # credited once to every new project wallet
    agent_trial_credit_cents: int = 0  # credited once to every new AI-agent credit pool
    wallet_low_balance_cents: int | None = None  # default low-balance threshold of new wallets
    billing_grace_hours: int = 72  # an unpaid renewal suspends the subscription after this long
    idempotency_key_hours: int = 24  # how long an Idempotency-Key and its answer are kept

    # durable workflows (DBOS): see cloudlet.worker
    # DBOS system database; default: beside the app's database
    worker_database_url: str | None = Field(default=None, repr=False)
    worker_id: str | None = None  # stable name of this host in executor ids (default: its host name)
    billing_schedule: str = "* * * * *"  # cron of the billing run; six fields when the first is seconds

    # the AI agent (cloudlet.agent): a model behind an OpenAI-compatible chat-completions API, with tool calling
    agent_base_url: str | None = None  # ends in /v1; unset: chats answer 503 (loopback: webhook_allow_private)
    agent_api_key: SecretStr | None = None
    agent_model: str = ""
    agent_timeout_seconds: float = Field(default=60.0, gt=0)  # one model call
    agent_retries: int = Field(default=3, ge=0, le=10)  # extra tries of a model call on 429, 5xx, lost connections
    agent_max_steps: int = Field(default=8, ge=1, le=50)  # model calls in one chat request
    agent_max_messages: int = Field(default=400, ge=10, le=10_000)  # messages one conversation may hold
    agent_tool_timeout_seconds: float = Field(default=30.0, gt=0, le=600)  # one tool call inside the server
    agent_output_cap_bytes: int = Field(default=16384, ge=256, le=1024 * 1024)  # a tool's output kept and shown
    # prices in cents of the agent's credit pool (fractions of a cent add up exactly; whole cents are debited)
    agent_price_input_per_1k_cents: Decimal = Field(default=Decimal("0.05"), ge=0)  # per 1,000 input tokens
    agent_price_output_per_1k_cents: Decimal = Field(default=Decimal("0.2"), ge=0)  # per 1,000 output tokens
    agent_price_tool_call_cents: Decimal = Field(default=Decimal("0.1"), ge=0)  # per tool call
    # the agent from Telegram (cloudlet.agent.telegram): a bot whose chats, once linked to a server, talk to its agent
    telegram_bot_token: SecretStr | None = None  # from @BotFather; unset: no polling, and linking answers 503
    telegram_api_url: str = "https://api.telegram.org"  # the Bot API server (loopback: webhook_allow_private)
    telegram_poll_schedule: str = "*/5 * * * * *"  # cron of the round that reads the bot's new messages
    telegram_timeout_seconds: float = Field(default=10.0, gt=0, le=120)  # one Bot API call

    # outgoing webhooks: see cloudlet.webhooks
    webhook_allow_private: bool = False  # let webhooks reach loopback, private and link-local addresses
    webhook_max_attempts: int = 6  # attempts before a delivery is given up
    webhook_backoff_seconds: float = 20.0  # wait after the first failed attempt, doubled after each (~10 min)
    webhook_timeout_seconds: float = 5.0  # connect, write and read timeout of one attempt
    webhook_sweep_schedule: str = "* * * * *"  # cron of the run that starts deliveries no process started

    # integrations (cloudlet.integrations): events told to Slack, Discord, Telegram, webhooks and inboxes. Their
    # targets obey webhook_allow_private; attempts, backoff and timeout are the webhook_* settings above.
    integration_sweep_schedule: str = "*/5 * * * * *"  # cron of the run that reads new events and queues messages
    # off: the worker sends nothing (a staging copy of a production database, say); events and queued deliveries
    # wait, and go out once it is on again
    integration_deliveries: bool = True

    # instances
    instance_ready_timeout_seconds: float = 300.0  # a new guest must report ready within this (TCG is slow)
    instance_shutdown_timeout_seconds: float = 60.0  # a guest that ignores the ACPI shutdown is powered off after this
    instance_power_wait_seconds: float = 45.0  # how long CyberPanel's start/stop/restart wait for the action to end
    instance_sweep_schedule: str = "*/10 * * * * *"  # cron of the run that starts queued actions and due deletions
    instance_reconcile_schedule: str = "*/30 * * * * *"  # cron of the comparison of every node's guests with the db
    # every task of an action has a deadline (declared with the task); past it the action fails through its clean-up
    action_deadline_scale: float = 1.0  # multiplies every task's deadline (slow nodes, big disks; tests shorten them)
    action_cleanup_call_seconds: float = 60.0  # a driver call made while an action ends gives up after this
    console_ticket_seconds: int = 300  # life of a console link (one-time token and VNC password); CyberPanel's 5 min
    console_log_poll_seconds: float = 1.0  # how often the live serial log websocket looks for new output
    # SSH certificates the CA signs: valid this long unless the request asks otherwise, and never longer than max
    ssh_certificate_hours: int = Field(default=8, ge=1)
    ssh_certificate_max_hours: int = Field(default=24, ge=1)
    # cron of the round that gives running guests the CA's current keys and revocation list through their agent
    ssh_trust_push_schedule: str = "*/15 * * * * *"
    # Shield: rules an address's firewall holds at most, and how often every node gets its table again when
    # what it should enforce changed (a push it missed, a new guest)
    shield_rules_per_ip: int = Field(default=500, ge=1)
    shield_reconcile_schedule: str = "*/10 * * * * *"
    # the nftables table (family inet) that holds the guests' firewalls on the local node; one control plane per
    # node table (tests that share one kernel among many give each theirs)
    shield_table: str = Field(default="cloudlet", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    # visibility: how often every node's counters of what reached each address are sampled, and the MMDB files
    # (MaxMind GeoLite2 or DB-IP lite, country and ASN) that name where a source address is; without one, the
    # countries and ASN views say so
    shield_visibility_schedule: str = "* * * * *"
    geoip_country_db: Path | None = None
    geoip_asn_db: Path | None = None
    # the WAF edge (edge/): Cloudlet's own nginx with ModSecurity and the CRS, run by `cloudlet serve`
    edge_serve: bool = True  # whether `cloudlet serve` runs the edge (off: another process or machine runs it)
    edge_listen: str = "0.0.0.0"  # noqa: S104 -- the edge is the public front of customers' sites
    edge_http_port: int = Field(default=80, ge=1, le=65535)
    edge_https_port: int = Field(default=443, ge=1, le=65535)
    edge_domain: str = Field(default="edge.cloudlet.test", pattern=DNS_NAME)  # apps' edge names end in it
    edge_reserved_names: list[str] = []  # hostnames (and their subdomains) no customer may put behind the edge
    edge_rate_per_second: int = Field(default=50, ge=1)  # per client address: the DDoS layer's request rate
    edge_burst: int = Field(default=100, ge=0)
    edge_connections_per_client: int = Field(default=100, ge=1)
    edge_reconcile_schedule: str = "*/30 * * * * *"
    edge_traffic_schedule: str = "*/10 * * * * *"
    edge_renewal_schedule: str = "17 3 * * *"
    waf_hostnames_per_app: int = Field(default=20, ge=1)
    waf_apps_per_project: int = Field(default=50, ge=1)
    acme_directory: str | None = None  # e.g. https://acme-v02.api.letsencrypt.org/directory; unset: no certificates
    acme_ca_bundle: Path | None = None  # a CA bundle to trust that directory with (a local ACME server's)
    acme_email: str | None = None
    # where an edge asks for an HTTP-01 key authorization it does not hold (the API, from the edge's machine);
    # unset: this machine's API, http://127.0.0.1:<port>
    edge_challenge_url: str | None = None
    # bandwidth: a server that used up its plan's monthly transfer (bandwidth_gb) is warned once at
    # transfer_warn_percent of it, then held at transfer_throttle_mbit until the month (UTC) ends; the round that
    # counts and caps (and gives every guest its plan's cap) runs on transfer_quota_schedule
    transfer_warn_percent: int = Field(default=80, ge=1, le=100)
    transfer_throttle_mbit: int = Field(default=10, ge=1, le=1_000_000)
    transfer_quota_schedule: str = "*/30 * * * * *"
    # a node's own firewall (Shardlyn's /v1/nodes/{id}/firewall/rules): the addresses the control plane reaches
    # nodes from, kept open on their SSH and libvirt ports whatever the rules say (empty: for a remote node, the
    # source address of this machine's route to it), and how often each node's table is checked and repaired
    node_firewall_control_sources: list[IPvAnyNetwork] = Field(default_factory=list)
    node_firewall_reconcile_schedule: str = "*/10 * * * * *"
    # files of a server reached through its guest agent: a download, an upload or a zip is at most files_max_bytes,
    # a file read or written as text (JSON) at most files_content_max_bytes, a listing at most files_list_max entries
    files_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    files_content_max_bytes: int = Field(default=1024 * 1024, ge=1)
    files_list_max: int = Field(default=1000, ge=1)
    files_zip_max_files: int = Field(default=10_000, ge=1)
    # the Debian archive `cloudlet images build debian-12` installs packages from (a local mirror works offline)
    image_mirror: str = "http://deb.debian.org/debian"
    # backups go to data_dir/backups unless a bucket is set: then to that S3-compatible bucket (AWS, MinIO, Ceph...)
    backup_s3_bucket: str | None = None
    backup_s3_endpoint: str | None = None  # e.g. https://s3.example.net; unset: AWS's endpoint for the region
    backup_s3_region: str = "us-east-1"
    backup_s3_access_key: str | None = None  # unset: boto3's usual credential chain (environment, profile, role)
    backup_s3_secret_key: SecretStr | None = None
    backup_s3_prefix: str = "cloudlet-backups/"  # keys are <prefix><instance uuid>/<backup uuid>.qcow2

    # metrics: see cloudlet.metrics
    metrics_sample_schedule: str = "* * * * *"  # cron of the sampler: every running guest's counters into history
    metrics_token: SecretStr | None = None  # a bearer token Prometheus may scrape /metrics with (admins always may)
    # alerts: see cloudlet.alerts; cron of the round that judges every enabled alert rule (six fields: seconds first)
    alert_evaluation_schedule: str = "*/30 * * * * *"

    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None
    github_authorize_url: str = "https://github.com/login/oauth/authorize"
    github_token_url: str = "https://github.com/login/oauth/access_token"
    github_api_url: str = "https://api.github.com"

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'cloudlet.db'}"

    @cached_property
    def jwt_secret(self) -> str:
        """The JWT signing key: configured, or generated once and kept in the data directory."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()


def reveal(secret: SecretStr | None) -> str | None:
    """The plain value of a secret setting, for the one call that needs it (None when unset or empty)."""
    if secret is None:
        return None
    return secret.get_secret_value() or None
