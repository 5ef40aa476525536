"""One assertion file for any backend: run it against the embedded sink, a real Jaeger or a Collector's
file export, unchanged:

    pytest examples/pytest/test_pod_start_trace.py                          # the embedded sink
    pytest examples/pytest/test_pod_start_trace.py --trace-backend jaeger   # a Jaeger (started, or
                                                                            # $CRISTACK_JAEGER_QUERY_URL)
    pytest examples/pytest/test_pod_start_trace.py --trace-backend file     # a file export

The pod runs once per module (``run_pod`` is module-scoped); ``wait_for_trace`` returns as soon as
the trace holds every span a pod start has, so no test sleeps.
"""

import pytest

from cristack.harness.assertions import expect, pod_start, pod_uid


@pytest.fixture(scope="module")
def trace(run_pod, trace_backend):
    # examples/pods/hello.yaml through fake-kubelet -> fake-crio -> fake-conmon (these assertions are CRI-O's, so
    # the runtime is named: --cristack-runtime does not move this file; test_both_runtimes.py runs on each)
    uid = run_pod(runtime="crio")
    return trace_backend.wait_for_trace(pod_start("pod"), match=pod_uid(uid), timeout=60)


def test_one_sync_pod_for_the_pod(trace):
    root = expect(trace, 'span[service="kubelet" name="syncPod"]').one()
    assert root.parent_span_id == "" or root.parent_span_id.strip("0") == ""
    expect(trace, 'span[name="syncPod"]').where('k8s.pod.name="hello"', 'k8s.namespace.name="default"')


def test_every_cri_call_succeeds_and_reaches_crio(trace):
    calls = expect(trace, 'span[service="kubelet" kind=client] child of span[name="syncPod"]')
    calls.count(at_least=5).where('rpc.response.status_code="OK"', 'rpc.method=~"^runtime\\.v1\\."')
    expect(trace, 'span[service="crio" kind=server] child of span[service="kubelet" kind=client]') \
        .count(len(calls.matched))


def test_containers_are_created_through_conmon_rs(trace):
    expect(trace, 'span[service="conmonrs" name="create_container"] '
                  'child of span[service="crio" name="conmonrs-client: CreateContainer"]').count(2)
    # hello-tty has a terminal: conmon-rs reads it in one read_loop; hello's pipes get stdout spans.
    expect(trace, 'span[name="syncPod"] span[service="conmonrs" name="read_loop"]').count(1)


def test_crio_logs_its_steps_as_events(trace):
    expect(trace, 'span[service="crio" name="/runtime.v1.RuntimeService/CreateContainer"]') \
        .count(2).has_event("log", 'log.message contains "Creating container"')


def test_durations_are_bounded(trace):
    expect(trace, 'span[name="syncPod"]').where("duration<30s")
    expect(trace, 'span[service="crio" duration>60s]').none()
