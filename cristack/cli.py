"""``cristack``: the user-facing command (``cristack demo`` ...)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import grpc

from cristack.crilog import read_log
from cristack.endpoints import parse_endpoint
from cristack.pb.runtime.v1 import api_pb2 as pb
from cristack.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.procs import start


def demo(args: argparse.Namespace) -> int:
    """Starts fake-crio on a private socket and runs busybox `echo hi` through the CRI."""
    with tempfile.TemporaryDirectory(prefix="cristack-demo-") as tmp:
        base = Path(tmp)
        sock = base / "run" / "crio.sock"
        crio = start("fake-crio", ["--listen", f"unix://{sock}", "--root", str(base / "root"), "--runroot",
                                   str(base / "runroot"), "--pod-logs-root", str(base / "pods")],
                     base / "crio.log", endpoint=parse_endpoint(str(sock)))
        try:
            with grpc.insecure_channel(f"unix://{sock}") as ch:
                rt, img = pbgrpc.RuntimeServiceStub(ch), pbgrpc.ImageServiceStub(ch)
                v = rt.Version(pb.VersionRequest())
                print(f"fake-crio up: {v.runtime_name} {v.runtime_version} (CRI {v.runtime_api_version})")
                img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
                pod = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="hello", uid="demo-uid",
                                                                         namespace="default"),
                                          log_directory="default_hello_demo-uid")
                sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod)).pod_sandbox_id
                cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=pod,
                    config=pb.ContainerConfig(metadata=pb.ContainerMetadata(name="hello"),
                                              image=pb.ImageSpec(image="busybox"), command=["echo", "hi"],
                                              log_path="hello/0.log"))).container_id
                rt.StartContainer(pb.StartContainerRequest(container_id=cid))
                deadline = time.monotonic() + 10
                while True:
                    st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
                    if st.state == pb.CONTAINER_EXITED or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                for _, line in read_log(st.log_path):
                    print(line)
                print(f"container exited with {st.exit_code} ({st.reason})")
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
                return 0 if st.exit_code == 0 else 1
        finally:
            crio.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cristack", description="A mock Kubernetes node for tracing demos.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a pod through the stack and show what happened").set_defaults(func=demo)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
