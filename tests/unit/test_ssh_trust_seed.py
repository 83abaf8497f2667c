"""What a guest's seed carries for the SSH CA: the files cloud-init writes, and the principals command that lets a
certificate in only for its own project."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from cloudlet.drivers.base import GuestSpec, GuestSshTrust
from cloudlet.drivers.seed import CA_KEYS_PATH, PRINCIPALS_PATH, REVOKED_KEYS_PATH, seed_for

TRUST = GuestSshTrust(ca_keys="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB cloudlet-ca\n", revoked_keys=b"SSHKRL\n\0\1",
                      key_ids=("cloudlet:*:project-7:instance-all",))
SPEC = GuestSpec(name="web-1", image="debian-12", vcpus=1, memory_mib=512, disk_gib=10, hostname="web-1.example.com",
                 ssh_authorized_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me@laptop",), ssh_trust=TRUST)


def written_files() -> dict[str, tuple[str, bytes]]:
    config = yaml.safe_load(seed_for(SPEC).user_data)
    assert config["ssh_authorized_keys"] == list(SPEC.ssh_authorized_keys)  # the keys are still there
    return {f["path"]: (f["permissions"], base64.b64decode(f["content"])) for f in config["write_files"]}


def test_cloud_init_writes_the_trusted_keys_the_revocation_list_the_command_and_sshds_settings() -> None:
    files = written_files()
    assert files[CA_KEYS_PATH] == ("0644", TRUST.ca_keys.encode())
    assert files[REVOKED_KEYS_PATH] == ("0644", TRUST.revoked_keys)
    assert files[PRINCIPALS_PATH][0] == "0755"
    settings = files["/etc/ssh/sshd_config.d/70-cloudlet-ca.conf"][1].decode()
    assert f"TrustedUserCAKeys {CA_KEYS_PATH}" in settings and f"RevokedKeys {REVOKED_KEYS_PATH}" in settings
    assert f"AuthorizedPrincipalsCommand {PRINCIPALS_PATH} %u %i" in settings
    assert "AuthorizedPrincipalsCommandUser nobody" in settings
    assert "write_files" not in seed_for(GuestSpec(**{**SPEC.__dict__, "ssh_trust": None})).user_data


@pytest.mark.parametrize(("user", "key_id", "allowed"), [
    ("root", "cloudlet:0b1e4c2a-5d6f-4a7b-8c9d-0e1f2a3b4c5d:project-7:instance-all", "root\n"),
    ("deploy", "cloudlet:0b1e4c2a-5d6f-4a7b-8c9d-0e1f2a3b4c5d:project-7:instance-all", "deploy\n"),
    ("root", "cloudlet:0b1e4c2a-5d6f-4a7b-8c9d-0e1f2a3b4c5d:project-8:instance-all", ""),  # another customer's
    ("root", "cloudlet:0b1e4c2a:project-77:instance-all", ""),
    ("root", "someone-else:project-7:instance-all", ""),
    ("root", "", ""),
])
def test_the_principals_command_names_the_login_only_for_a_certificate_of_its_project(
        tmp_path: Path, user: str, key_id: str, allowed: str) -> None:
    script = tmp_path / "principals"
    script.write_bytes(written_files()[PRINCIPALS_PATH][1])
    script.chmod(0o755)
    ran = subprocess.run([str(script), user, key_id], capture_output=True, text=True, timeout=10, check=True)
    assert ran.stdout == allowed


def test_a_key_id_pattern_that_could_break_out_of_the_script_is_refused() -> None:
    with pytest.raises(ValueError, match="key id pattern"):
        GuestSshTrust(ca_keys="", revoked_keys=b"", key_ids=("x) rm -rf / ;; *",))
