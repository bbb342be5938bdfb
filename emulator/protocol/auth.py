"""Optional credential checks for the Bedrock API (`--auth-keys FILE`): SigV4 and Bedrock API keys (bearer).

The keys file is an AWS credentials-style INI file; each profile holds an access key pair, a bearer token, or both:

    [ci]
    aws_access_key_id = AKIDEMULATOR
    aws_secret_access_key = emulator-secret
    aws_session_token = ...        ; optional: then requests must carry this X-Amz-Security-Token
    region = us-east-1             ; optional: then other regions in the credential scope are refused
    bearer_token = ABSKemulator    ; optional: a Bedrock API key, sent as `Authorization: Bearer ...`

A SigV4 signature is checked by recomputing it with botocore's own signer (`SigV4Auth`: canonical request,
string to sign, signing key) over the method, raw path, query, the signed headers and the body exactly as received.
Refusals carry AWS's own codes and wording (cited in the README's Security section).

`AuthKeys.authenticate()` is the one check, independent of the web framework, so other front ends (record/replay,
the OpenAI-compatible API) reuse it; `check_request()` adapts an aiohttp request to it.
"""

from __future__ import annotations

import asyncio
import configparser
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from .errors import BedrockError

SERVICE = "bedrock"  # the credential-scope service of Bedrock Runtime (not "bedrock-runtime")
MAX_SKEW = timedelta(minutes=5)
_SIGV4_TIME = "%Y%m%dT%H%M%SZ"
_HASH_OFF_LOOP = 1 << 20  # bodies above 1 MiB are hashed on a worker thread, not on the event loop
_ECHO_LIMIT = 200  # at most this many characters of a client's value are quoted back in a message
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Payload markers a signer may put in x-amz-content-sha256 instead of the body's hash: botocore then signs the
# marker itself, and so does this check (event-stream chunk signatures inside such bodies are not checked).
_PAYLOAD_MARKERS = {"UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-EVENTS", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}

# AWS's wording (sources in the README's Security section).
SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                      "Secret Access Key and signing method. Consult the service documentation for details.")
INVALID_TOKEN = "The security token included in the request is invalid."
MISSING_AUTHORIZATION = "Authorization header is missing"
INVALID_API_KEY = "Authentication failed: Please make sure your API Key is valid."


class AuthError(BedrockError):
    """A refusal by AWS's front end. `capital` bodies are `{"Message": ...}`, as Bedrock's API-key front end sends."""

    def __init__(self, code: str, message: str, capital: bool = False) -> None:
        super().__init__(code, message)
        self.capital = capital

    def body(self) -> dict:
        return {"Message": self.message} if self.capital else {"message": self.message}


class AuthKeysError(ValueError):
    """The keys file cannot be used (the message names the file and the problem)."""


@dataclass(frozen=True)
class Profile:
    name: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    regions: frozenset[str] = frozenset()  # empty: any region
    bearer_token: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who a request authenticated as."""

    profile: str
    scheme: str  # "sigv4" or "bearer"
    access_key_id: str | None = None


def _bounded(value: str) -> str:
    return value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."


class _AsReceived(SigV4Auth):
    """botocore's SigV4 signer, told to sign exactly the headers the client listed in SignedHeaders."""

    def __init__(self, credentials: Credentials, region: str, signed: list[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                chosen[name] = value
        return chosen


class AuthKeys:
    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.profiles = list(profiles)
        self._by_key = {p.access_key_id: p for p in self.profiles if p.access_key_id}
        self._bearers = [(p.bearer_token.encode(), p) for p in self.profiles if p.bearer_token]

    @classmethod
    def load(cls, path: Path) -> "AuthKeys":
        parser = configparser.ConfigParser(interpolation=None, default_section="\x00no-defaults")
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise AuthKeysError(f"{path}: cannot read the auth keys file: {exc}") from None
        profiles, seen = [], set()
        for name in parser.sections():
            section = parser[name]
            known = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region", "bearer_token"}
            if unknown := sorted(set(section) - known):
                raise AuthKeysError(f"{path}: profile [{name}] has unknown keys: {', '.join(unknown)} "
                                    f"(allowed: {', '.join(sorted(known))})")
            key_id, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
            if bool(key_id) != bool(secret):
                raise AuthKeysError(f"{path}: profile [{name}] needs both aws_access_key_id and aws_secret_access_key")
            if not key_id and not section.get("bearer_token"):
                raise AuthKeysError(f"{path}: profile [{name}] has neither an access key pair nor a bearer_token")
            if key_id and key_id in seen:
                raise AuthKeysError(f"{path}: access key {key_id} appears in more than one profile")
            seen.add(key_id)
            regions = frozenset(r.strip() for r in section.get("region", "").split(",") if r.strip())
            profiles.append(Profile(name, key_id or None, secret or None, section.get("aws_session_token") or None,
                                    regions, section.get("bearer_token") or None))
        if not profiles:
            raise AuthKeysError(f"{path}: no profiles; add e.g. [default] with aws_access_key_id and "
                                "aws_secret_access_key")
        return cls(profiles)

    def authenticate(self, method: str, raw_path: str, headers, payload_hash: str, *, host: str | None = None,
                     now: datetime | None = None, service: str = SERVICE) -> Identity:
        """Check one request's credentials; raise `AuthError` as AWS would refuse it.

        `raw_path` is the path and query exactly as received; `headers` a case-insensitive multi-mapping (aiohttp's
        CIMultiDict, or anything with `getall`/`get` and `items()`); `payload_hash` the hex SHA-256 of the body as
        received; `host` stands in for an HTTP/2 `:authority` that the headers lack.
        """
        authorization = headers.get("Authorization", "").strip()
        if not authorization:
            raise AuthError("AccessDeniedException", MISSING_AUTHORIZATION, capital=True)
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return self._bearer(rest.strip())
        if scheme != "AWS4-HMAC-SHA256":
            raise _incomplete(authorization, {}, headers)
        return self._sigv4(method, raw_path, headers, payload_hash, rest, authorization, host,
                           now or datetime.now(timezone.utc), service)

    def _bearer(self, token: str) -> Identity:
        given = token.encode()
        for expected, profile in self._bearers:
            if hmac.compare_digest(given, expected):
                return Identity(profile.name, "bearer")
        raise AuthError("AccessDeniedException", INVALID_API_KEY, capital=True)

    def _sigv4(self, method, raw_path, headers, payload_hash, params_text, authorization, host, now, service):
        params = {}
        for part in params_text.split(","):
            key, sep, value = part.strip().partition("=")
            if sep:
                params[key.strip()] = value.strip()
        if {"Credential", "Signature", "SignedHeaders"} - set(params) or not _request_time_text(headers):
            raise _incomplete(authorization, params, headers)
        scope = params["Credential"].split("/")
        if len(scope) != 5:
            raise AuthError("IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, "
                            f"e.g. keyid/date/region/service/term, got '{_bounded(params['Credential'])}'")
        key_id, _, region, scope_service, _ = scope
        if scope_service != service:
            raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'. ")
        timestamp = _request_time(headers)
        if now - timestamp > MAX_SKEW:
            raise AuthError("InvalidSignatureException", f"Signature expired: {_fmt(timestamp)} is now earlier than "
                                                         f"{_fmt(now - MAX_SKEW)} ({_fmt(now)} - 5 min.)")
        if timestamp - now > MAX_SKEW:
            raise AuthError("InvalidSignatureException", f"Signature not yet current: {_fmt(timestamp)} is still later "
                                                         f"than {_fmt(now + MAX_SKEW)} ({_fmt(now)} + 5 min.)")
        profile = self._by_key.get(key_id)
        if profile is None or not hmac.compare_digest((headers.get("X-Amz-Security-Token") or "").encode(),
                                                      (profile.session_token or "").encode()):
            raise AuthError("UnrecognizedClientException", INVALID_TOKEN)
        if profile.regions and region not in profile.regions:
            raise AuthError("InvalidSignatureException",
                            f"Credential should be scoped to a valid region, not '{_bounded(region)}'. ")
        declared = headers.get("X-Amz-Content-SHA256")
        if declared and declared not in _PAYLOAD_MARKERS and declared != payload_hash:
            raise AuthError("InvalidSignatureException", SIGNATURE_MISMATCH)  # the body is not the one signed
        try:
            canonical, to_sign, expected = _recompute(profile, region, method, raw_path, headers, payload_hash,
                                                      params["SignedHeaders"], _fmt(timestamp), host)
        except UnicodeError:  # header bytes that are not UTF-8 cannot be what any SDK signed
            raise AuthError("InvalidSignatureException", SIGNATURE_MISMATCH) from None
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise AuthError("InvalidSignatureException", f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this "
                            f"request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n"
                            f"'{to_sign}'\n")
        return Identity(profile.name, "sigv4", key_id)


def _recompute(profile: Profile, region: str, method: str, raw_path: str, headers, payload_hash: str,
               signed_text: str, timestamp: str, host: str | None) -> tuple[str, str, str]:
    """botocore's canonical request, string to sign and signature for the request as received."""
    signed = [name.strip().lower() for name in signed_text.split(";") if name.strip()]
    copy = AWSRequest(method=method.upper(), url=f"http://{host or headers.get('Host', '')}{raw_path}")
    for name, value in headers.items():
        if name.lower() in signed:
            value.encode("utf-8")  # bytes that were not UTF-8 (surrogate-escaped) raise here, not inside botocore
        copy.headers[name.lower()] = value
    if ":authority" in signed and ":authority" not in copy.headers:  # HTTP/2: the JS SDK signs :authority
        copy.headers[":authority"] = host or headers.get("Host", "")
    if not headers.get("X-Amz-Content-SHA256"):
        copy.headers["X-Amz-Content-SHA256"] = payload_hash  # the payload line only; never a signed header here
    copy.context["timestamp"] = timestamp
    signer = _AsReceived(Credentials(profile.access_key_id, profile.secret_access_key, profile.session_token),
                         region, signed)
    canonical = signer.canonical_request(copy)
    to_sign = signer.string_to_sign(copy, canonical)
    return canonical, to_sign, signer.signature(to_sign, copy)


def _request_time_text(headers) -> str:
    return (headers.get("X-Amz-Date") or headers.get("Date") or "").strip()


def _request_time(headers) -> datetime:
    text = _request_time_text(headers)
    try:
        if headers.get("X-Amz-Date"):
            return datetime.strptime(text, _SIGV4_TIME).replace(tzinfo=timezone.utc)
        return parsedate_to_datetime(text).astimezone(timezone.utc)
    except (ValueError, TypeError):
        # Our wording: no recorded AWS message for an unparseable date.
        raise AuthError("IncompleteSignatureException", f"X-Amz-Date must be in the ISO-8601 basic format "
                        f"(yyyyMMdd'T'HHmmss'Z'), got '{_bounded(text)}'.") from None


def _fmt(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_SIGV4_TIME)


def _incomplete(authorization: str, params: dict, headers) -> AuthError:
    """IncompleteSignatureException naming every missing part, in AWS's words, then the header as received."""
    parts = [f"Authorization header requires '{name}' parameter." for name in ("Credential", "Signature", "SignedHeaders")
             if name not in params]
    if not _request_time_text(headers):
        parts.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    return AuthError("IncompleteSignatureException", " ".join([*parts, f"Authorization={_bounded(authorization)}"]))


async def payload_sha256(body: bytes) -> str:
    """The body's hex SHA-256; large bodies are hashed on a worker thread so the event loop stays free."""
    if len(body) > _HASH_OFF_LOOP:
        return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    return hashlib.sha256(body).hexdigest()


async def check_request(request: web.Request, keys: AuthKeys, service: str = SERVICE) -> Identity:
    """Authenticate an aiohttp request (reading its body, which aiohttp keeps for the handler). A bidirectional
    stream's body lasts the whole session and is never read here: its signers sign the event-stream marker."""
    declared = request.headers.get("X-Amz-Content-SHA256", "")
    if declared == "STREAMING-AWS4-HMAC-SHA256-EVENTS" or request.path.endswith("/invoke-with-bidirectional-stream"):
        payload_hash = declared
    else:
        payload_hash = await payload_sha256(await request.read())
    return keys.authenticate(request.method, request.raw_path, request.headers, payload_hash,
                             host=request.host, service=service)


AUTH_KEYS = web.AppKey("auth_keys", AuthKeys)
IDENTITY = "emulator.identity"  # request key: the Identity a checked request authenticated as

# Paths that are not Bedrock's API: the admin API has its own guard; the OpenAI-compatible API answers in
# OpenAI's error shape and calls `AuthKeys.authenticate` itself.
NOT_BEDROCK = ("/_emulator/", "/openai/")


@web.middleware
async def verify_bedrock_credentials(request: web.Request, handler) -> web.StreamResponse:
    keys = request.app.get(AUTH_KEYS)
    if keys is not None and not request.path.startswith(NOT_BEDROCK):
        request[IDENTITY] = await check_request(request, keys)
    return await handler(request)
