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
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

from .. import families
from ..catalog import base_model_id
from ..families.base import TextFamily
from ..protocol.errors import BedrockError, validation
from ..protocol.identity import ACCOUNT_ID, request_region
from ..protocol.shapes import validate_input
from ..service import SERVICE
from ..protocol.reply import JsonReply
from .common import Stopwatch, json_response, validated_json
from .invoke import invoke_native, text_call

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
    s3_uri: str
    tags: list[dict]
    submit_time: datetime = field(default_factory=_now)
    last_modified: datetime = field(default_factory=_now)
    end_time: datetime | None = None
    status: str = "InProgress"
    failure: str | None = None
    task: asyncio.Task | None = None

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


class AsyncJobs:
    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.jobs: dict[str, Job] = {}  # by ARN, in submission order
        self.by_token: dict[str, Job] = {}

    def output_folder(self, job: Job) -> Path:
        """`s3://bucket/a/b` -> `<output dir>/bucket/a/b/<invocation id>`; `..` segments are never followed."""
        parts = [p for p in job.s3_uri.removeprefix("s3://").split("/") if p not in ("", ".", "..")]
        return self.output_dir.joinpath(*parts, job.invocation_id)


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


async def start_async_invoke(request: web.Request, labels: dict) -> JsonReply:
    params = await validated_json(request, "StartAsyncInvoke", labels)
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
        s3_uri=params["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
        tags=params.get("tags", []),
    )
    store.jobs[job.arn] = job
    if token:
        store.by_token[token] = job
    job.task = asyncio.create_task(_run(store, job, service, model_id, entry, family, body, request["request_id"]))
    return json_response({"invocationArn": job.arn})


async def _run(store: AsyncJobs, job: Job, service, model_id, entry, family, body, request_id) -> None:
    try:
        reply, _ = await invoke_native(service, model_id, entry, family, body, request_id, Stopwatch())
        folder = store.output_folder(job)

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / "output.json.partial"
            partial.write_text(json.dumps(reply))
            partial.replace(folder / "output.json")  # never a half-written output

        await asyncio.to_thread(write)
        job.finish()
    except BedrockError as error:
        job.finish(error.message)
    except Exception as exc:  # a job failure is reported through its status, never lost
        log.exception("async invocation %s failed", job.arn)
        job.finish(f"Internal error: {exc}")


async def get_async_invoke(request: web.Request, labels: dict) -> JsonReply:
    validate_input("GetAsyncInvoke", labels)
    job = request.app[JOBS].jobs.get(labels["invocationArn"])
    if job is None:
        raise validation(f"Could not find an async invocation with ARN {labels['invocationArn']}.")
    return json_response(job.summary())


def _timestamp(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation(f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: "
                         "Member must be a timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


async def list_async_invokes(request: web.Request, labels: dict) -> JsonReply:
    query = dict(request.query)
    params: dict = dict(query)
    if "maxResults" in query:
        params["maxResults"] = int(query["maxResults"]) if query["maxResults"].lstrip("-").isdigit() else query["maxResults"]
    validate_input("ListAsyncInvokes", params)
    jobs = list(request.app[JOBS].jobs.values())
    if "submitTimeAfter" in query:
        after = _timestamp(query["submitTimeAfter"], "submitTimeAfter")
        jobs = [j for j in jobs if j.submit_time > after]
    if "submitTimeBefore" in query:
        before = _timestamp(query["submitTimeBefore"], "submitTimeBefore")
        jobs = [j for j in jobs if j.submit_time < before]
    if "statusEquals" in query:
        jobs = [j for j in jobs if j.status == query["statusEquals"]]
    jobs.sort(key=lambda j: j.submit_time, reverse=query.get("sortOrder", "Descending") == "Descending")
    start = 0
    if "nextToken" in query:
        try:
            start = int(base64.urlsafe_b64decode(query["nextToken"].encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise validation("The provided nextToken is invalid.") from None
    size = params.get("maxResults", 1000)
    page = jobs[start : start + size]
    reply: dict = {"asyncInvokeSummaries": [job.summary() for job in page]}
    if start + size < len(jobs):
        reply["nextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return json_response(reply)


def install(app: web.Application, output_dir: Path) -> None:
    app[JOBS] = AsyncJobs(output_dir)

    async def cancel_jobs(app: web.Application) -> None:
        for job in app[JOBS].jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()

    app.on_cleanup.append(cancel_jobs)
