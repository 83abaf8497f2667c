"""The key revocation list (KRL) guests read through sshd's RevokedKeys, written by OpenSSH's own ssh-keygen.

sshd refuses every public key when RevokedKeys names a file it cannot read, so a list is always written,
empty when nothing is revoked.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

KRL_SECONDS = 30.0


class RevocationListFailed(RuntimeError):
    """ssh-keygen could not write the list."""


def revocation_list(certificates: Iterable[str]) -> bytes:
    """An OpenSSH KRL revoking each certificate line given (by its CA and serial)."""
    with tempfile.TemporaryDirectory(prefix="cloudlet-krl-") as scratch:
        folder = Path(scratch)
        files = []
        for number, line in enumerate(certificates):
            path = folder / f"{number}-cert.pub"
            path.write_text(line + "\n")
            files.append(str(path))
        if not files:
            empty = folder / "none"
            empty.write_text("")
            files.append(str(empty))
        out = folder / "revoked.krl"
        try:
            result = subprocess.run(["ssh-keygen", "-q", "-k", "-f", str(out), *files],  # noqa: S603, S607  # OpenSSH's tool
                                    capture_output=True, text=True, timeout=KRL_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RevocationListFailed(f"ssh-keygen could not write the revocation list: {error}") from error
        if result.returncode != 0:
            raise RevocationListFailed(f"ssh-keygen could not write the revocation list: {result.stderr.strip()}")
        return out.read_bytes()
