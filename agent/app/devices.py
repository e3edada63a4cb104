"""The inventory as the runner and the guard use it: roles by name, and connector targets with credentials.

Credentials are looked up by name when a device is used: first in `$CREDENTIALS_DIRECTORY` (what
systemd's `LoadCredential=` provides to the service), then in `[runner] credentials_dir`, whose
files must be readable by their owner only. Every secret read is registered with the log scrubber
before anything can log it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from watchstander.connectors.errors import DeviceError
from watchstander.connectors.snmp import SnmpTarget, SnmpV3Credentials
from watchstander.connectors.ssh import FIPS_ALGORITHMS, SshTarget
from watchstander.connectors.webhook import WebhookTarget

from ..config.devices import Device
from ..config.load import register_secret
from ..config.model import AgentConfig

MAX_SECRET_BYTES = 64 * 1024


class CredentialError(DeviceError):
    """A device's credential is missing, unreadable or readable by others."""


class UnknownDevice(DeviceError):
    """A name that is not in the inventory, or a device without the transport asked for."""


class DeviceDirectory:
    """Devices by name from the configuration: roles for the guard, targets for the executors."""

    def __init__(self, config: AgentConfig, env: Mapping[str, str] | None = None) -> None:
        self._devices: dict[str, Device] = {d.name: d for d in config.devices}
        self._webhooks = config.notify.webhooks
        self._credentials_dir = config.runner.credentials_dir
        self._env = os.environ if env is None else env

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def __len__(self) -> int:
        return len(self._devices)

    def get(self, name: str) -> Device:
        """The device called `name`; raises UnknownDevice."""
        try:
            return self._devices[name]
        except KeyError:
            raise UnknownDevice(name, "no device of this name in the inventory ([[devices]])") from None

    def roles_of(self, device: str) -> frozenset[str] | None:
        """The roles of an inventory device, or None when there is no such device (playbooks.Inventory)."""
        d = self._devices.get(device)
        return frozenset(d.roles) if d is not None else None

    def with_role(self, role: str) -> list[str]:
        """The names of every device that has `role`."""
        return sorted(d.name for d in self._devices.values() if role in d.roles)

    def ssh(self, name: str) -> SshTarget:
        """The SSH target of a device, its private key read now."""
        d = self.get(name)
        if d.ssh is None:
            raise UnknownDevice(name, "has no [devices.ssh] section: the runner cannot log in to it")
        key_bytes: bytes | None = None
        if d.ssh.key_credential:
            key_bytes = self.secret(name, d.ssh.key_credential, None).encode("utf-8")
        elif d.ssh.key_file is not None:
            key_bytes = self.secret(name, None, d.ssh.key_file).encode("utf-8")
        enable = self.secret(name, d.ssh.enable_credential, None) if d.ssh.enable_credential else None
        return SshTarget(name=name, address=d.address, port=d.port, user=d.ssh.user, known_hosts=d.ssh.known_hosts,
                         client_key=key_bytes, platform=d.platform, enable_secret=enable,
                         algorithms=FIPS_ALGORITHMS if d.ssh.algorithms == "fips" else None,
                         connect_timeout_s=d.ssh.connect_timeout_s)

    def snmp(self, name: str) -> SnmpTarget:
        """The SNMP target of a device, its keys (or v2c community) read now."""
        d = self.get(name)
        s = d.snmp
        if s is None:
            raise UnknownDevice(name, "has no [devices.snmp] section")
        if s.version == "2c":
            community = self.secret(name, s.community_credential, s.community_file)
            return SnmpTarget(name=name, address=d.address, port=s.port, community=community, retries=s.retries)
        assert s.user is not None  # the config model requires it for version 3
        try:
            creds = SnmpV3Credentials(
                user=s.user, auth_protocol=s.auth_protocol, priv_protocol=s.priv_protocol,
                auth_key=self.secret(name, s.auth_key_credential, s.auth_key_file),
                priv_key=self.secret(name, s.priv_key_credential, s.priv_key_file))
            return SnmpTarget(name=name, address=d.address, port=s.port, v3=creds, retries=s.retries)
        except ValueError as exc:  # e.g. a key shorter than SNMPv3's 8 characters
            raise CredentialError(name, f"SNMPv3 credentials unusable: {exc}") from None

    def webhook(self, name: str) -> WebhookTarget:
        """The webhook configured under `name` in [notify.webhooks], its token read now."""
        w = self._webhooks.get(name)
        if w is None:
            raise UnknownDevice(f"webhook {name}", "not configured in [notify.webhooks]")
        token = None
        if w.token_credential or w.token_file:
            token = self.secret(f"webhook {name}", w.token_credential, w.token_file)
        return WebhookTarget(name=name, url=w.url, token=token, timeout_s=w.timeout_s)

    def secret(self, device: str, credential: str | None, file: Path | None) -> str:
        """A secret by credential name ($CREDENTIALS_DIRECTORY, then credentials_dir) or by file path."""
        if credential:
            creds = self._env.get("CREDENTIALS_DIRECTORY")
            if creds and (Path(creds) / credential).is_file():
                # systemd already restricts its credentials to the service; no mode check needed.
                return _read(device, Path(creds) / credential, check_mode=False)
            path = self._credentials_dir / credential
            if not path.is_file():
                where = f"$CREDENTIALS_DIRECTORY ({creds})" if creds else "$CREDENTIALS_DIRECTORY (unset)"
                raise CredentialError(device, f"credential {credential!r} is in neither {where} nor "
                                              f"{self._credentials_dir}")
            return _read(device, path, check_mode=True)
        assert file is not None
        return _read(device, file, check_mode=True)


def _read(device: str, path: Path, *, check_mode: bool) -> str:
    try:
        info = path.stat()
        if check_mode and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialError(device, f"{path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}); "
                                          "use 0600 or 0400")
        if check_mode and hasattr(os, "geteuid") and info.st_uid not in (0, os.geteuid()):
            raise CredentialError(device, f"{path} belongs to uid {info.st_uid}, not to this service or root")
        if info.st_size > MAX_SECRET_BYTES:
            raise CredentialError(device, f"{path} is over 64 KiB: not a credential")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CredentialError(device, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise CredentialError(device, f"{path} is not UTF-8 text") from None
    # A private key keeps its trailing newline (some parsers need it); other secrets are one line.
    secret = text if "PRIVATE KEY" in text else text.strip()
    if not secret.strip():
        raise CredentialError(device, f"{path} is empty")
    if "PRIVATE KEY" not in text:
        register_secret(secret)
    return secret
