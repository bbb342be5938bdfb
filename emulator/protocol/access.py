"""Access settings (admin Host/Origin/token guard, optional Bedrock credential checks) and their one install call."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .admin_guard import ADMIN_GUARD, AdminGuard, guard_admin_api
from .auth import AUTH_KEYS, AuthKeys, AuthKeysError, verify_bedrock_credentials

ENV_ADMIN_TOKEN = "BEDROCK_EMULATOR_ADMIN_TOKEN"
ENV_ALLOW_HOSTS = "BEDROCK_EMULATOR_ALLOW_HOSTS"  # comma-separated
ENV_AUTH_KEYS = "BEDROCK_EMULATOR_AUTH_KEYS"


@dataclass
class AccessConfig:
    allow_hosts: list[str] = field(default_factory=list)  # names besides loopback ones the admin API answers to
    admin_token: str | None = None  # required on every admin call when set
    auth_keys_path: Path | None = None  # verify Bedrock calls' SigV4 / bearer credentials against this file

    @classmethod
    def from_env(cls, allow_hosts: list[str] | None = None, admin_token: str | None = None,
                 auth_keys_path: Path | None = None) -> "AccessConfig":
        """Command-line values, completed from the environment (the command line wins)."""
        hosts = [*(allow_hosts or []), *os.environ.get(ENV_ALLOW_HOSTS, "").split(",")]
        keys = auth_keys_path or (Path(os.environ[ENV_AUTH_KEYS]) if os.environ.get(ENV_AUTH_KEYS) else None)
        return cls([h.strip() for h in hosts if h.strip()], admin_token or os.environ.get(ENV_ADMIN_TOKEN) or None,
                   keys)


def install(app: web.Application, config: AccessConfig) -> None:
    """Add the admin guard (always) and, with an auth keys file, the Bedrock credential check.

    Both run inside the error middleware, so refusals carry a request id and never a traceback.
    """
    app[ADMIN_GUARD] = AdminGuard(frozenset(h.lower() for h in config.allow_hosts), config.admin_token)
    app.middlewares.append(guard_admin_api)
    if config.auth_keys_path is not None:
        try:
            app[AUTH_KEYS] = AuthKeys.load(config.auth_keys_path)
        except AuthKeysError as exc:  # a usage error, reported like a bad catalog
            raise SystemExit(str(exc)) from None
        app.middlewares.append(verify_bedrock_credentials)
