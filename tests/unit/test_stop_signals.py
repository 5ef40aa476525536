"""lifeline.stop_on_signals: a stop signal sets the event, and once the block is left a repeated one is ignored,
with no moment in between where the default action (which kills) applies. CI saw fake-crio die by a second
SIGTERM (exit -15) while it flushed: asyncio's remove_signal_handler put back SIG_DFL, and the per-thread mask
around it did not stop the kernel handing the signal to one of gRPC's threads.

Run in a child interpreter: the block changes the process's dispositions for good, as it should."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import asyncio, json, os, signal, threading
    from cristack.lifeline import stop_on_signals

    seen = []
    real_signal = signal.signal
    def recording(sig, handler):
        if sig == signal.SIGTERM:
            seen.append("default" if handler == signal.SIG_DFL else "ignore" if handler == signal.SIG_IGN
                        else "handled")
        return real_signal(sig, handler)
    signal.signal = recording

    # A thread that does not block anything, as gRPC's and the exporters' are: a signal may land on it.
    threading.Thread(target=threading.Event().wait, daemon=True).start()

    async def main():
        with stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 30)
            first = stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # after the block: ignored, while the loop still runs
        await asyncio.sleep(0)
        return first

    first = asyncio.run(main())
    os.kill(os.getpid(), signal.SIGTERM)  # and after the loop has closed
    print(json.dumps({"first": first, "dispositions": seen, "after": str(signal.getsignal(signal.SIGTERM))}))
""")


def run_script() -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return proc, json.loads(proc.stdout)


def test_a_stop_signal_sets_the_event_and_later_ones_are_ignored_without_a_trace() -> None:
    proc, out = run_script()
    assert out["first"] is True
    assert out["after"] == str(__import__("signal").SIG_IGN)
    assert "wakeup fd" not in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_never_passes_through_its_default_action() -> None:
    _, out = run_script()
    assert out["dispositions"] == ["handled", "ignore"], out["dispositions"]
