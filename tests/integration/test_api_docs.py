"""Every grpcurl request in docs/api.md, sent with the Python stubs to a live cluster: the JSON
bodies parse into the real request messages and the calls succeed (issue 7, docs)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftsched.v1 import admin_pb2, admin_pb2_grpc, jobs_pb2, scheduler_pb2, scheduler_pb2_grpc

pytestmark = pytest.mark.integration

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
STUBS = {
    "raftsched.v1.Scheduler": (scheduler_pb2_grpc.SchedulerStub, scheduler_pb2.DESCRIPTOR),
    "raftsched.v1.Admin": (admin_pb2_grpc.AdminStub, admin_pb2.DESCRIPTOR),
    "grpc.health.v1.Health": (health_pb2_grpc.HealthStub, health_pb2.DESCRIPTOR),
}
STREAMS = {"WatchJob"}


def documented_calls() -> list[tuple[str, str, str, str]]:
    """(address, service, method, JSON body) of every `grpcurl … -d BODY ADDR SERVICE/METHOD`."""
    calls = []
    for line in API_MD.read_text().splitlines():
        if not line.startswith("grpcurl ") or " -d " not in line:
            continue
        words = shlex.split(line)
        body = words[words.index("-d") + 1]
        address, target = words[-2], words[-1]
        service, _, method = target.partition("/")
        calls.append((address, service, method, body))
    return calls


def test_docs_list_calls_to_check():
    calls = documented_calls()
    assert len(calls) >= 10
    assert {m for _, _, m, _ in calls} >= {"SubmitJob", "GetJob", "WatchJob", "CheckFence", "Status", "Check"}


def test_every_documented_grpcurl_request_works(quiet_cluster):
    c = quiet_cluster
    addresses = {f"127.0.0.1:700{i + 1}": c.addr[nid] for i, nid in enumerate(c.ids)}
    job_id = ""
    for address, service, method, body in documented_calls():
        stub_cls, file_desc = STUBS[service]
        method_desc = file_desc.services_by_name[service.rsplit(".", 1)[1]].methods_by_name[method]
        request = json_format.Parse(body.replace('"JOB"', f'"{job_id}"'),
                                    message_factory.GetMessageClass(method_desc.input_type)())
        with grpc.insecure_channel(addresses[address]) as channel:
            call = getattr(stub_cls(channel), method)
            if method in STREAMS:
                first = next(iter(call(request, timeout=5)))
                assert first.id == job_id
                continue
            response = call(request, timeout=10)
        if method == "SubmitJob" and request.spec.name == "hello":
            job_id = response.job.id
            assert response.job.spec.payload == b"hello"
        if method == "GetJob":
            assert response.id == job_id
        if method == "CheckFence":
            assert response.state == jobs_pb2.JOB_STATE_QUEUED  # no executor ran it: attempt 1 is not current
        if method == "CancelJob":
            assert response.state == jobs_pb2.JOB_STATE_CANCELLED
    assert job_id


def test_documented_error_message_for_an_unknown_handler(quiet_cluster):
    text = API_MD.read_text()
    with grpc.insecure_channel(quiet_cluster.addr["n1"]) as channel, pytest.raises(grpc.RpcError) as err:
        scheduler_pb2_grpc.SchedulerStub(channel).SubmitJob(
            scheduler_pb2.SubmitJobRequest(spec=jobs_pb2.JobSpec(handler="no-such-handler")), timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"Message: {err.value.details()}" in text, err.value.details()
    assert re.search(r"Code: InvalidArgument", text)
