"""`bedrock-emulator` / `python -m emulator`: serve, or fetch the default models into the cache ahead of time."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path

from .app import Settings, build_app
from .catalog import Catalog
from .engine.pool import ModelPool
from .engine.sources import default_cache_dir
from .lifecycle import DEFAULT_MAX_QUEUE
from .protocol.access import AccessConfig
from .recording.mode import RecordingConfig
from .server import DEFAULT_GRACE_S, graceful_stop, run, start_site
from .testing import TestKitConfig

log = logging.getLogger("emulator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bedrock-emulator", description="A local Amazon Bedrock Runtime emulator.")
    parser.add_argument("command", nargs="?", choices=["serve", "fetch", "tls-ca"], default="serve",
                        help="serve (default); fetch: download and prepare the catalog's models, then exit; "
                             "tls-ca: print the local CA certificate's path (creating it) for clients to trust")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8599, help="port to listen on (default 8599)")
    parser.add_argument("--models", type=Path, default=None, help="model catalog file (default: models/catalog.yaml)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="where models run (default cpu)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="model cache (default $BEDROCK_EMULATOR_CACHE or ~/.cache/bedrock-emulator)")
    parser.add_argument("--guardrails", type=Path, default=None,
                        help="guardrail definitions (default: models/guardrails.yaml)")
    tls = parser.add_argument_group("TLS (HTTPS; HTTP/2 and HTTP/1.1 by ALPN on the same port; see the README)")
    tls.add_argument("--tls", action="store_true",
                     help="serve HTTPS; without --tls-cert/--tls-key the certificate comes from a local CA in the cache")
    tls.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="server certificate chain (PEM)")
    tls.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key (PEM)")
    tls.add_argument("--tls-host", action="append", default=[], metavar="NAME",
                     help="another name or IP the local certificate covers (repeatable; localhost, 127.0.0.1, ::1 always)")
    testing = parser.add_argument_group("testing (see the README: scripted responses, faults, invocation log)")
    testing.add_argument("--fixtures", type=Path, default=None, metavar="DIR",
                         help="load scripted-response rules from the *.yaml / *.yml / *.json files in DIR")
    testing.add_argument("--require-fixture-match", action="store_true",
                         help="answer requests no rule matches with an error instead of the model")
    testing.add_argument("--invocation-log", type=Path, default=None, metavar="FILE",
                         help="append every invocation to FILE as JSON lines (Bedrock's model-invocation log shape)")
    testing.add_argument("--rate-limits", type=Path, default=None, metavar="FILE",
                         help="per-model requests/tokens-per-minute quotas (YAML `limits:` list)")
    rec = parser.add_argument_group("record and replay real Bedrock traffic (see the README)")
    rec.add_argument("--record", type=Path, default=None, metavar="DIR",
                     help="forward every call upstream, re-signed with this process's AWS credentials, and save cassettes in DIR")
    rec.add_argument("--replay", type=Path, default=None, metavar="DIR", help="answer calls from the cassettes in DIR")
    rec.add_argument("--record-missing", action="store_true",
                     help="with --replay: forward and record the calls no cassette matches")
    rec.add_argument("--upstream", default=None, metavar="URL",
                     help="where --record forwards (default: https://bedrock-runtime.<region>.amazonaws.com, the "
                          "region of each request's SigV4 scope)")
    rec.add_argument("--replay-speed", type=float, default=0.0, metavar="X",
                     help="replay pacing: 0 at once (default), 1 as recorded, 2 twice as fast")
    rec.add_argument("--match-ignore", action="append", default=[], metavar="KEY",
                     help="a body key ignored when matching cassettes, besides ids and timestamps (repeatable)")
    rec.add_argument("--redact", action="append", default=[], metavar="KEY",
                     help="a body key whose value is never written to cassettes (repeatable)")
    parser.add_argument("--async-output-dir", type=Path, default=None,
                        help="local folder standing in for S3 output of async invocations (default: <cache>/async-invoke)")
    access = parser.add_argument_group("access (see the README's Security section)")
    access.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a Host name the admin API answers to besides loopback ones (repeatable; also "
                             "BEDROCK_EMULATOR_ALLOW_HOSTS, comma-separated); '*' allows any")
    access.add_argument("--admin-token", default=None, metavar="TOKEN",
                        help="require 'Authorization: Bearer TOKEN' on every admin call "
                             "(default $BEDROCK_EMULATOR_ADMIN_TOKEN)")
    access.add_argument("--auth-keys", type=Path, default=None, metavar="FILE",
                        help="verify Bedrock calls' SigV4 signatures and bearer tokens against this AWS "
                             "credentials-style file (default $BEDROCK_EMULATOR_AUTH_KEYS; unset: not checked)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="keep async invocation records here so they survive a restart "
                             "(default: --async-output-dir when given, else not kept)")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
                        help=f"generations that may wait for a batch row, per model; beyond them ThrottlingException "
                             f"(429) (default {DEFAULT_MAX_QUEUE})")
    parser.add_argument("--shutdown-grace", type=float, default=DEFAULT_GRACE_S, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, how long requests in flight may finish before their streams are ended "
                             f"with an exception (default {DEFAULT_GRACE_S:g})")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _serve(settings: Settings, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                 grace: float = DEFAULT_GRACE_S) -> None:
    app = build_app(settings)
    runner, bound = await start_site(app, host, port, ssl_context)
    scheme = "https" if ssl_context else "http"
    log.info("Bedrock Runtime emulator listening on %s://%s:%d (HTTP/1.1 and HTTP/2; health: /_emulator/health; "
             "models loading)", scheme, host, bound)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.access.admin_token:
        log.warning("listening on %s without --admin-token: anyone who can reach this port can script answers and "
                    "read the invocation log", host)
    loop = asyncio.get_running_loop()
    stop, now = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:  # the first signal starts a graceful stop; a second ends the grace period
        (now if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    log.info("stopping: requests in flight have %gs to finish", grace)
    await graceful_stop(runner, grace, now)


def _recording(args: argparse.Namespace) -> RecordingConfig:
    if args.record and args.replay:
        sys.exit("--record and --replay exclude each other (--replay DIR --record-missing records what is missing)")
    if args.record_missing and not args.replay:
        sys.exit("--record-missing goes with --replay DIR")
    mode = "record" if args.record else "record-missing" if args.record_missing else "replay" if args.replay else "off"
    return RecordingConfig(mode=mode, directory=args.record or args.replay, upstream=args.upstream,
                           speed=args.replay_speed, ignore=args.match_ignore, redact=args.redact)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_queue < 0:
        sys.exit("--max-queue must be 0 or more")
    settings = Settings(catalog_path=args.models, cache_dir=args.cache_dir or default_cache_dir(), device=args.device,
                        guardrails_path=args.guardrails, async_output_dir=args.async_output_dir,
                        state_dir=args.state_dir, max_queue=args.max_queue,
                        testing=TestKitConfig(fixtures_dir=args.fixtures, require_fixture_match=args.require_fixture_match,
                                              invocation_log_path=args.invocation_log, rate_limits_path=args.rate_limits),
                        access=AccessConfig.from_env(args.allow_host, args.admin_token, args.auth_keys))
    settings.recording = _recording(args)
    if args.command == "tls-ca" or args.tls or args.tls_cert or args.tls_key:
        from .edge import tls  # cryptography: a fifth of a second of every start, so only when TLS is asked for
    if args.command == "tls-ca":
        print(tls.ensure_ca(settings.cache_dir))
        return
    ssl_context = None
    if args.tls or args.tls_cert or args.tls_key:
        try:
            ssl_context = tls.context_for(settings.cache_dir, args.tls_cert, args.tls_key, args.tls_host)
        except (ValueError, OSError, ssl.SSLError) as exc:
            sys.exit(f"--tls: {exc}")
        if args.tls_cert is None:
            log.info("TLS: clients trust the local CA %s (see `python -m emulator tls-ca`)", tls.tls_dir(settings.cache_dir) / "ca.pem")
    if args.command == "fetch":
        pool = ModelPool(Catalog.load(settings.catalog_path), settings.cache_dir, settings.device)
        pool.load_all()
        if not pool.ready:
            sys.exit(f"fetch failed: {pool.error}")
        log.info("models ready in %s", settings.cache_dir)
        return
    try:
        run(_serve(settings, args.host, args.port, ssl_context, args.shutdown_grace))
    except KeyboardInterrupt:
        pass
