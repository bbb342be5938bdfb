"""StartAsyncInvoke, GetAsyncInvoke and ListAsyncInvokes.

A job answers its `modelInput` exactly as InvokeModel would (same families, same validation, which happens up
front so bad input is a synchronous ValidationException) on a background task. S3 is not emulated: the job's
output goes to a local folder that mirrors the S3 URI, `<async output dir>/<bucket>/<prefix>/<invocation id>/output.json`,
and Get/List report `s3://<bucket>/<prefix>/<invocation id>` as Bedrock does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

from .. import families
from ..catalog import base_model_id
from ..families.base import TextFamily
from ..protocol.errors import BedrockError, validation
from ..protocol.identity import ACCOUNT_ID, request_region
from ..protocol.reply import JsonReply
from ..service import SERVICE
from .common import Stopwatch, json_response
from .invoke import invoke_native, text_call
from .registry import operation

log = logging.getLogger("emulator.async")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z" if moment else None


@dataclass
class Job:
    arn: str
    model_arn: str
    token: str | None
    fingerprint: str  # the request without its token: a reused token with another request is a conflict
    s3_uri: str  # normalised once at Start (`output_key`): what is reported is where the output goes
    tags: list[dict]
    submit_time: datetime = field(default_factory=_now)
    last_modified: datetime = field(default_factory=_now)
    end_time: datetime | None = None
    status: str = "InProgress"
    failure: str | None = None
    task: asyncio.Task | None = None

    def record(self) -> dict:
        """The job as kept in the state file."""
        return {"arn": self.arn, "modelArn": self.model_arn, "token": self.token, "fingerprint": self.fingerprint,
                "s3Uri": self.s3_uri, "tags": self.tags, "status": self.status, "failure": self.failure,
                "submitTime": self.submit_time.isoformat(), "lastModified": self.last_modified.isoformat(),
                "endTime": self.end_time.isoformat() if self.end_time else None}

    @classmethod
    def from_record(cls, data: dict) -> "Job":
        moment = datetime.fromisoformat
        return cls(arn=data["arn"], model_arn=data["modelArn"], token=data["token"], fingerprint=data["fingerprint"],
                   s3_uri=data["s3Uri"], tags=data["tags"], submit_time=moment(data["submitTime"]),
                   last_modified=moment(data["lastModified"]),
                   end_time=moment(data["endTime"]) if data["endTime"] else None,
                   status=data["status"], failure=data["failure"])

    @property
    def invocation_id(self) -> str:
        return self.arn.rsplit("/", 1)[1]

    def summary(self) -> dict:
        out = {
            "invocationArn": self.arn,
            "modelArn": self.model_arn,
            "clientRequestToken": self.token,
            "status": self.status,
            "failureMessage": self.failure,
            "submitTime": _iso(self.submit_time),
            "lastModifiedTime": _iso(self.last_modified),
            "endTime": _iso(self.end_time),
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"{self.s3_uri.rstrip('/')}/{self.invocation_id}"}},
        }
        return {key: value for key, value in out.items() if value is not None}

    def finish(self, failure: str | None = None) -> None:
        self.status = "Failed" if failure else "Completed"
        self.failure = failure
        self.end_time = self.last_modified = _now()


MAX_KEY_SEGMENT_BYTES = 255  # a key segment becomes a folder name; common file systems stop at 255 bytes
MAX_JOBS = 10_000  # jobs remembered; past it the oldest finished ones are forgotten
RESTARTED = "The emulator stopped before this invocation finished."


def output_key(s3_uri: str) -> str:
    """The S3 URI as the emulator writes it: empty, `.` and `..` segments dropped (so the folder can never leave
    the output dir and the URI reported is the one written). Unwritable keys are a ValidationException."""
    bucket, _, key = s3_uri.removeprefix("s3://").partition("/")
    parts = [p for p in key.split("/") if p not in ("", ".", "..")]
    for part in parts:
        if "\x00" in part or any(ord(c) < 32 for c in part):
            raise validation("The S3 output URI holds a control character; the emulator cannot store such a key.")
        if len(part.encode("utf-8")) > MAX_KEY_SEGMENT_BYTES:
            raise validation(f"A segment of the S3 output URI is longer than {MAX_KEY_SEGMENT_BYTES} bytes; "
                             "the emulator stores each segment as a folder name, which is limited to that.")
    return "/".join([f"s3://{bucket}", *parts])


class AsyncJobs:
    def __init__(self, output_dir: Path, state_dir: Path | None = None) -> None:
        self.output_dir = output_dir
        self.jobs: dict[str, Job] = {}  # by ARN, in submission order
        self.by_token: dict[str, Job] = {}
        self.state_file = state_dir / "async-jobs.json" if state_dir is not None else None
        self._save_lock = asyncio.Lock()
        if self.state_file is not None:
            self._load()

    def output_folder(self, job: Job) -> Path:
        """`s3://bucket/a/b` (normalised by `output_key`) -> `<output dir>/bucket/a/b/<invocation id>`."""
        return self.output_dir.joinpath(*job.s3_uri.removeprefix("s3://").split("/"), job.invocation_id)

    def add(self, job: Job) -> None:
        self.jobs[job.arn] = job
        if job.token:
            self.by_token[job.token] = job
        while len(self.jobs) > MAX_JOBS:
            oldest = next((j for j in self.jobs.values() if j.status != "InProgress"), None)
            if oldest is None:
                break
            del self.jobs[oldest.arn]
            if oldest.token:
                self.by_token.pop(oldest.token, None)

    def _load(self) -> None:
        """Jobs from the state file; one that was still running when the emulator stopped is recorded Failed."""
        try:
            records = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable async job state %s: %s", self.state_file, exc)
            return
        for record in records if isinstance(records, list) else []:
            try:
                job = Job.from_record(record)
            except (KeyError, TypeError, ValueError):
                continue
            if job.status == "InProgress":
                job.finish(RESTARTED)
            self.add(job)

    async def save(self) -> None:
        """Write the state file (atomically, owner-only), when the jobs are kept across restarts."""
        if self.state_file is None:
            return
        data = json.dumps([job.record() for job in self.jobs.values()])
        async with self._save_lock:
            await asyncio.to_thread(_write_private, self.state_file, data)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` through a partial file (never half-written), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(partial, 0o600)  # an existing partial file keeps its mode through O_CREAT
    partial.replace(path)


JOBS = web.AppKey("async_jobs", AsyncJobs)


def _fingerprint(params: dict) -> str:
    canonical = {k: v for k, v in params.items() if k != "clientRequestToken"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _check_input(service, model_id: str, entry, family, body: dict) -> None:
    """The checks InvokeModel makes before any generation, so bad input fails the Start call itself."""
    if isinstance(family, TextFamily):
        text_call(service, "InvokeModel", model_id, entry, family, body, streaming=False)
    else:
        family.validate(body)


@operation("StartAsyncInvoke")
async def start_async_invoke(request: web.Request, params: dict) -> JsonReply:
    store = request.app[JOBS]
    token = params.get("clientRequestToken")
    if token and token in store.by_token:
        existing = store.by_token[token]
        if existing.fingerprint != _fingerprint(params):
            raise BedrockError("ConflictException", "The request conflicts with an earlier request that used the same client request token.")
        return json_response({"invocationArn": existing.arn})

    service = request.app[SERVICE]
    model_id, body = params["modelId"], params["modelInput"]
    if not isinstance(body, dict):
        raise validation("The provided modelInput is invalid. Provide a JSON object and try again.")
    entry = service.catalog.lookup(model_id)
    family = families.get(entry.family)
    _check_input(service, model_id, entry, family, body)

    region = request_region(request)
    invocation_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    job = Job(
        arn=f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:async-invoke/{invocation_id}",
        model_arn=f"arn:aws:bedrock:{region}::foundation-model/{base_model_id(model_id)}",
        token=token,
        fingerprint=_fingerprint(params),
        s3_uri=output_key(params["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]),
        tags=params.get("tags", []),
    )
    store.add(job)
    job.task = asyncio.create_task(_run(store, job, service, model_id, entry, family, body, request["request_id"]))
    await store.save()
    return json_response({"invocationArn": job.arn})


async def _run(store: AsyncJobs, job: Job, service, model_id, entry, family, body, request_id) -> None:
    with service.shutdown.work():  # a graceful stop waits for jobs too, then ends them with an error event
        try:
            reply, _ = await invoke_native(service, model_id, entry, family, body, request_id, Stopwatch())
            folder = store.output_folder(job)

            def write() -> None:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                _write_private(folder / "output.json", json.dumps(reply))

            await asyncio.to_thread(write)
            job.finish()
        except BedrockError as error:
            job.finish(error.message)
        except asyncio.CancelledError:
            job.finish(RESTARTED)
            raise
        except OSError as exc:  # the message names the S3 URI, never the local path
            log.warning("async invocation %s could not write its output: %s", job.arn, exc)
            job.finish(f"The output could not be written to {job.s3_uri}/{job.invocation_id}: "
                       f"{exc.strerror or type(exc).__name__}.")
        except Exception:  # a job failure is reported through its status, never lost
            log.exception("async invocation %s failed", job.arn)
            job.finish("Internal error while running the invocation.")
        finally:
            await asyncio.shield(store.save())


@operation("GetAsyncInvoke")
async def get_async_invoke(request: web.Request, params: dict) -> JsonReply:
    job = request.app[JOBS].jobs.get(params["invocationArn"])
    if job is None:
        raise validation(f"Could not find an async invocation with ARN {params['invocationArn']}.")
    return json_response(job.summary())


def _timestamp(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation(f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: "
                         "Member must be a timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@operation("ListAsyncInvokes")
async def list_async_invokes(request: web.Request, params: dict) -> JsonReply:
    jobs = list(request.app[JOBS].jobs.values())
    if "submitTimeAfter" in params:
        after = _timestamp(params["submitTimeAfter"], "submitTimeAfter")
        jobs = [j for j in jobs if j.submit_time > after]
    if "submitTimeBefore" in params:
        before = _timestamp(params["submitTimeBefore"], "submitTimeBefore")
        jobs = [j for j in jobs if j.submit_time < before]
    if "statusEquals" in params:
        jobs = [j for j in jobs if j.status == params["statusEquals"]]
    jobs.sort(key=lambda j: j.submit_time, reverse=params.get("sortOrder", "Descending") == "Descending")
    start = 0
    if "nextToken" in params:
        try:
            start = int(base64.urlsafe_b64decode(params["nextToken"].encode()[:64]).decode())
            if start < 0:
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            raise validation("The provided nextToken is invalid.") from None
    size = params.get("maxResults", 1000)
    page = jobs[start : start + size]
    reply: dict = {"asyncInvokeSummaries": [job.summary() for job in page]}
    if start + size < len(jobs):
        reply["nextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return json_response(reply)


def install(app: web.Application, output_dir: Path, state_dir: Path | None = None) -> None:
    """`state_dir`: keep job records there (async-jobs.json) so Get/List still know them after a restart."""
    app[JOBS] = AsyncJobs(output_dir, state_dir)

    async def jobs(app: web.Application) -> AsyncIterator[None]:
        yield
        store = app[JOBS]
        running = [job.task for job in store.jobs.values() if job.task is not None and not job.task.done()]
        for task in running:
            task.cancel()  # each records itself Failed with a reason
        await asyncio.gather(*running, return_exceptions=True)
        await store.save()

    app.cleanup_ctx.append(jobs)
