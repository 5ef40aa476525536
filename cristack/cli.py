"""``cristack``: the user-facing command."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cristack.crilog import read_log
from cristack.stack import Stack, StackOptions, example


def container_output(pod_logs: Path) -> list[tuple[str, str, str]]:
    """(pod dir, container, line) for every container log under the pod logs root, in order."""
    out = []
    for log in sorted(pod_logs.glob("*/*/*.log")):
        for _, line in read_log(log):
            out.append((log.parent.parent.name, log.parent.name, line))
    return out


def demo(args: argparse.Namespace) -> int:
    """Runs pods through fake-kubelet → fake-crio → fake-conmon with --runonce and shows the result."""
    pods = [Path(p) for p in args.pod] or [example("pods", "hello.yaml")]
    for p in pods:
        if not p.is_file():
            print(f"cristack demo: {p}: no such pod manifest", file=sys.stderr)
            return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cristack-demo-") as tmp:
        stack = Stack(Path(tmp), StackOptions(runtime_type=args.runtime_type, relist_period="0.2s",
                                              backoff_base="1s"))
        for p in pods:
            stack.add_manifest(p)
        say = (lambda *_: None) if args.quiet else print
        say(f"cristack demo: starting fake-conmon, fake-crio and fake-kubelet (runtime type {args.runtime_type})")
        try:
            stack.start_runtime()
            kubelet = stack.start_kubelet(runonce=True)
            say(f"cristack demo: running {', '.join(p.name for p in pods)} with fake-kubelet --runonce")
            rc = kubelet.popen.wait(timeout=120)
        except Exception as err:  # noqa: BLE001 - report any failure to start, with the logs
            print(f"cristack demo: {err}", file=sys.stderr)
            for name, text in stack.logs().items():
                print(f"--- {name} log ---\n{text[-3000:]}", file=sys.stderr)
            stack.stop()
            return 1
        for pod_dir, ctr, line in container_output(stack.pod_logs):
            pod_name = pod_dir.split("_")[1] if "_" in pod_dir else pod_dir
            print(f"[{pod_name}/{ctr}] {line}")
        stack.stop()
        if rc != 0:
            print("cristack demo: a pod failed:", file=sys.stderr)
            for line in stack.logs().get("kubelet", "").splitlines():
                if "failed" in line or "ERROR" in line:
                    print(f"  {line}", file=sys.stderr)
            return 1
        say(f"cristack demo: done in {time.monotonic() - started:.1f}s")
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cristack", description="A mock Kubernetes node for tracing demos.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run pods through the whole stack and show what happened")
    d.add_argument("--pod", action="append", default=[], metavar="FILE",
                   help="pod manifest to run (repeatable; default examples/pods/hello.yaml)")
    d.add_argument("--runtime-type", choices=("pod", "oci"), default="pod")
    d.add_argument("--quiet", "-q", action="store_true", help="print only the containers' output and errors")
    d.set_defaults(func=demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
