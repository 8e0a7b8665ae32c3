"""The codec against the session's real Temporal dev server: a codec client and worker run a
real hvlab workflow, and a client WITHOUT the codec sees only ciphertext in the history."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToJson
from temporalio import activity, workflow
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from activities.registry import build_activities
from hvlab.codec import ENCODING, KEY_ID_KEY, EncryptionCodec, new_key_line
from hvlab.settings import Settings
from hvlab.temporal import data_converter
from tests.conftest import running_worker
from tests.security.scan import codec_covered, leaks, payloads
from workflows.doctor import DoctorInput, DoctorResult, DoctorWorkflow
from workflows.registry import ALL_WORKFLOWS

KEYS = f"{new_key_line('old')},{new_key_line('cur')}"


def _codec_client(plain: Client) -> Client:
    """Same connection and namespace as ``plain``, with hvlab's converter + codec."""
    settings = Settings(codec_enabled=True, codec_keys=KEYS)
    return Client(plain.service_client, namespace=plain.namespace,
                  data_converter=data_converter(settings))


def _check_ciphertext(history: History, secrets: dict[str, str]) -> int:
    """Every codec-covered payload is binary/encrypted with the active key, and no secret
    appears in the history as `temporal workflow show --output json` would print it."""
    found = list(payloads(history))
    covered = [(path, p) for path, p in found if codec_covered(path)]
    plain = [path for path, p in covered if p.metadata.get("encoding") != ENCODING]
    assert plain == [], plain
    assert {p.metadata[KEY_ID_KEY] for _, p in covered} == {b"cur"}
    as_json = MessageToJson(history)
    assert leaks(as_json, secrets) == []
    assert leaks(history.SerializeToString(), secrets) == []
    return len(covered)


async def test_doctor_workflow_history_is_ciphertext(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """DoctorWorkflow through a codec client and worker: input, activity input/result and
    workflow result are binary/encrypted in the stored history (read without the codec), the
    nonce appears nowhere, the codec client reads the typed result, and the history replays
    through the codec."""
    nonce = "doctor-nonce-" + os.urandom(8).hex()
    coded = _codec_client(client)
    workflow_id = f"doctor-codec-{uuid.uuid4().hex}"
    settings = Settings(home=tmp_path, temporal_address="unused:1", task_queue=task_queue)
    async with running_worker(coded, task_queue, workflows=ALL_WORKFLOWS,
                              activities=build_activities(settings)):
        result = await coded.execute_workflow(
            DoctorWorkflow.run, DoctorInput(nonce=nonce), id=workflow_id, task_queue=task_queue,
            execution_timeout=timedelta(seconds=30),
        )
    assert isinstance(result, DoctorResult) and result.probe.nonce == nonce
    raw = await client.get_workflow_handle(workflow_id).fetch_history()
    covered = _check_ciphertext(History(events=raw.events), {"doctor nonce": nonce})
    assert covered >= 4  # workflow input, activity input, activity result, workflow result
    again = await coded.get_workflow_handle(workflow_id, result_type=DoctorResult).result()
    assert again.probe.nonce == nonce
    replayer = Replayer(workflows=[DoctorWorkflow], data_converter=coded.data_converter)
    await replayer.replay_workflow(raw)


@activity.defn(name="security.heartbeat_then_stall")
async def heartbeat_then_stall(secret: str) -> str:
    """Heartbeat ``secret`` once, then stop heartbeating until the heartbeat timeout hits."""
    activity.heartbeat({"resume_from": secret})
    await asyncio.sleep(4)
    return "late"


@workflow.defn(name="SecurityHeartbeatWorkflow")
class HeartbeatWorkflow:
    """Returns the last heartbeat details the worker decoded from the timeout failure."""

    @workflow.run
    async def run(self, secret: str) -> list[Any]:
        try:
            await workflow.execute_activity(
                heartbeat_then_stall, secret, start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            if isinstance(err.cause, TimeoutError):
                return list(err.cause.last_heartbeat_details)
            raise
        return []


async def test_heartbeat_details_are_ciphertext(client: Client, task_queue: str) -> None:
    """Heartbeat details: encrypted in the pending activity (describe) and in the timeout
    failure stored in history; the worker decodes them (the workflow returns them)."""
    secret = "hb-secret-" + os.urandom(8).hex()
    coded = _codec_client(client)
    workflow_id = f"heartbeat-codec-{uuid.uuid4().hex}"
    async with running_worker(coded, task_queue, workflows=[HeartbeatWorkflow],
                              activities=[heartbeat_then_stall],
                              workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await coded.start_workflow(HeartbeatWorkflow.run, secret, id=workflow_id,
                                            task_queue=task_queue,
                                            execution_timeout=timedelta(seconds=30))
        pending = None
        for _ in range(100):
            described = await client.get_workflow_handle(workflow_id).describe()
            acts = described.raw_description.pending_activities
            if acts and acts[0].HasField("heartbeat_details"):
                pending = acts[0].heartbeat_details
                break
            await asyncio.sleep(0.05)
        assert pending is not None, "no heartbeat recorded"
        assert [p.metadata["encoding"] for p in pending.payloads] == [ENCODING]
        assert leaks(pending.SerializeToString(), {"heartbeat": secret}) == []
        codec = coded.data_converter.payload_codec
        assert isinstance(codec, EncryptionCodec)
        assert secret.encode() in (await codec.decode(pending.payloads))[0].data
        result = await handle.result()
    assert result == [{"resume_from": secret}]
    history = History(events=(await client.get_workflow_handle(workflow_id).fetch_history()).events)
    stored = [p for path, p in payloads(history) if "last_heartbeat_details" in path]
    assert [p.metadata["encoding"] for p in stored] == [ENCODING]
    _check_ciphertext(history, {"heartbeat": secret})


async def test_plain_history_shows_the_secret_so_the_scan_can_see(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Control: without the codec the same workflow's nonce IS found by the scanner (in the
    base64 of the JSON payloads), so an empty scan above means ciphertext, not a blind scan."""
    nonce = "doctor-nonce-" + os.urandom(8).hex()
    workflow_id = f"doctor-plain-{uuid.uuid4().hex}"
    settings = Settings(home=tmp_path, temporal_address="unused:1", task_queue=task_queue)
    async with running_worker(client, task_queue, workflows=ALL_WORKFLOWS,
                              activities=build_activities(settings)):
        await client.execute_workflow(DoctorWorkflow.run, DoctorInput(nonce=nonce),
                                      id=workflow_id, task_queue=task_queue,
                                      execution_timeout=timedelta(seconds=30))
    history = History(events=(await client.get_workflow_handle(workflow_id).fetch_history()).events)
    assert leaks(MessageToJson(history), {"nonce": nonce})
    assert any(p.metadata.get("encoding") == b"json/plain" for _, p in payloads(history))
