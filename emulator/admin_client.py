"""A small client for the emulator's admin API (`/_emulator/`), for any test runner. Standard library only.

    from emulator.admin_client import EmulatorAdmin

    admin = EmulatorAdmin("http://127.0.0.1:8599")
    admin.script("It is sunny in Paris.", contains="weather")           # a scripted response
    admin.fail("ThrottlingException", count=1)                          # the next call is throttled
    admin.fail("modelStreamErrorException", after_events=3)             # a stream breaks after 3 deltas
    admin.slow(first_byte_ms=200, token_ms=20)                          # added latency
    admin.set_rate_limits([{"model": "anthropic.*", "rpm": 10}])
    calls = admin.invocations()                                         # what your code sent, and got back
    admin.reset()                                                       # back to the start-up state

Every method returns the server's JSON; a rejected request raises `AdminError` with the server's message.
A server started with `--admin-token` needs `EmulatorAdmin(url, token=...)` or BEDROCK_EMULATOR_ADMIN_TOKEN set.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _given(**fields: Any) -> dict:
    return {key: value for key, value in fields.items() if value is not None}


class EmulatorAdmin:
    """`token`: the server's `--admin-token` (default: the BEDROCK_EMULATOR_ADMIN_TOKEN environment variable)."""

    def __init__(self, url: str, timeout: float = 30.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token or os.environ.get("BEDROCK_EMULATOR_ADMIN_TOKEN") or None

    def _call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + "/_emulator" + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("message", raw.decode())
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise AdminError(exc.code, message) from None

    # --- scripted responses -------------------------------------------------------------------------------

    def add_rules(self, rules: list[dict]) -> list[dict]:
        """Add rules (the schema of a rule file's `rules:` list); they are tried before file rules."""
        return self._call("POST", "/rules", {"rules": rules})["rules"]

    def script(self, text: str | None = None, *, tool_calls: list[dict] | None = None, stop_reason: str | None = None,
               stop_sequence: str | None = None, usage: dict | None = None, error: str | dict | None = None,
               pace_ms: float | None = None, operation: str | list[str] | None = None, model: str | None = None,
               contains: str | None = None, regex: str | None = None, turn: int | None = None,
               times: int | None = None, name: str | None = None) -> dict:
        """Add one rule from keywords: what to match (operation, model, contains, regex, turn), what to answer."""
        if isinstance(error, str):
            error = {"code": error}
        rule = _given(
            name=name, times=times,
            match=_given(operation=operation, model=model, contains=contains, regex=regex, turn=turn),
            respond=_given(text=text, tool_calls=tool_calls, stop_reason=stop_reason, stop_sequence=stop_sequence,
                           usage=usage, error=error, pace_ms=pace_ms),
        )
        return self.add_rules([rule])[0]

    def rules(self) -> list[dict]:
        return self._call("GET", "/rules")["rules"]

    def remove_rule(self, rule_id: str) -> None:
        self._call("DELETE", f"/rules/{rule_id}")

    def clear_rules(self) -> None:
        """Forget the rules added at run time (rules loaded from files stay)."""
        self._call("DELETE", "/rules")

    # --- faults -------------------------------------------------------------------------------------------

    def add_fault(self, fault: dict) -> dict:
        return self._call("POST", "/faults", fault)

    def fail(self, error: str, *, count: int | None = None, rate: float | None = None, seed: int | None = None,
             operation: str | list[str] | None = None, model: str | None = None, message: str | None = None,
             extra: dict | None = None, after_events: int | None = None) -> dict:
        """Answer matching calls with a modeled exception (every one until cleared, the next `count`, or a `rate`);
        with `after_events`, break streams after that many content deltas with the in-stream exception."""
        return self.add_fault(_given(error=error, count=count, rate=rate, seed=seed, operation=operation, model=model,
                                     message=message, extra=extra, after_events=after_events))

    def slow(self, first_byte_ms: float = 0, token_ms: float = 0, *, count: int | None = None,
             operation: str | list[str] | None = None, model: str | None = None) -> dict:
        """Add latency before the first byte and between content deltas."""
        return self.add_fault(_given(first_byte_latency_ms=first_byte_ms, token_latency_ms=token_ms, count=count,
                                     operation=operation, model=model))

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["faults"]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # --- rate limits --------------------------------------------------------------------------------------

    def set_rate_limits(self, limits: list[dict]) -> list[dict]:
        """Replace the per-model quotas: [{"model": glob, "rpm": n, "tpm": n, "window_seconds": s}]."""
        return self._call("PUT", "/rate-limits", {"limits": limits})["limits"]

    def rate_limits(self) -> list[dict]:
        return self._call("GET", "/rate-limits")["limits"]

    def clear_rate_limits(self) -> None:
        self._call("DELETE", "/rate-limits")

    # --- invocation log -----------------------------------------------------------------------------------

    def invocations(self, limit: int | None = None, *, bedrock_format: bool = False) -> list[dict]:
        """Logged calls, oldest first (the last `limit`); `bedrock_format` gives Bedrock's invocation-log records."""
        query = "&".join(part for part in (f"limit={limit}" if limit else "", "format=bedrock" if bedrock_format else "")
                         if part)
        return self._call("GET", "/invocations" + (f"?{query}" if query else ""))["invocations"]

    def clear_invocations(self) -> None:
        self._call("DELETE", "/invocations")

    # --- the rest -----------------------------------------------------------------------------------------

    def settings(self) -> dict:
        return self._call("GET", "/settings")

    def update_settings(self, *, require_fixture_match: bool | None = None) -> dict:
        return self._call("PATCH", "/settings", _given(require_fixture_match=require_fixture_match))

    def reset(self) -> None:
        """Run-time rules, faults and the log cleared; file rules, limits and settings as at start-up."""
        self._call("POST", "/reset")

    def health(self) -> dict:
        return self._call("GET", "/health")

    def wait_ready(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except (AdminError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the emulator at {self.url} was not ready within {timeout}s") from None
                time.sleep(0.1)

    def boto3_client(self, region: str = "us-east-1", **config: Any):
        """A boto3 `bedrock-runtime` client for this emulator with dummy credentials; `config` goes to botocore's
        Config (e.g. `retries={"total_max_attempts": 1}`; default: boto3's standard retries, as in production)."""
        import boto3
        from botocore.config import Config

        return boto3.client("bedrock-runtime", endpoint_url=self.url, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing", config=Config(**config))

    # --- record and replay (emulator.recording) ----------------------------------------------------------

    def recording(self) -> dict:
        """The recording mode, its cassette directory and options, and how many cassettes answer."""
        return self._call("GET", "/recording")

    def set_recording(self, mode: str, directory: str | Path | None = None, *, upstream: str | None = None,
                      speed: float = 0, ignore: list[str] | None = None, redact: list[str] | None = None) -> dict:
        """Switch to `off`, `record`, `replay` or `record-missing` (cassettes in `directory`, on the server's disk)."""
        return self._call("PUT", "/recording", _given(mode=mode, directory=None if directory is None else str(directory),
                                                       upstream=upstream, speed=speed, ignore=ignore, redact=redact))
