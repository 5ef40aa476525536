"""The file applets (cristack/containers/applets/fileutils.py) inside a container's file view: mounts, read-only
mounts, paths that must not escape, /proc/sys, and the busybox tools critest and users expect."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.support.applets import run_in, view


def test_ls_sees_a_mounted_host_path_and_a_symlinked_one(tmp_path: Path) -> None:
    host = tmp_path / "data"
    host.mkdir()
    (host / "testVolume.file").write_text("")
    (host / ".hidden").write_text("x")
    link = tmp_path / "data-symlink"
    link.symlink_to(host)
    ctx = view(tmp_path, (str(host), host, False), (str(link), link, False))
    assert run_in(ctx, "ls", "-A", str(host)) == (0, ".hidden\ntestVolume.file\n", "")
    assert run_in(ctx, "ls", str(link)) == (0, "testVolume.file\n", "")
    status, out, _ = run_in(ctx, "ls", "-l", str(host))
    assert status == 0 and out.startswith("total ") and "-rw-" in out and out.rstrip().endswith("testVolume.file")
    # The mountpoint's parents exist in the container, the rest of the host does not.
    assert str(host).split("/")[1] in run_in(ctx, "ls", "/")[1].split()
    assert run_in(ctx, "ls", "/etc/passwd") == (1, "", "ls: /etc/passwd: No such file or directory\n")


def test_paths_cannot_escape_a_mount(tmp_path: Path) -> None:
    host = tmp_path / "vol"
    host.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    (host / "up").symlink_to("../secret")
    (host / "abs").symlink_to(str(secret))
    ctx = view(tmp_path, ("/vol", host, False))
    for path in ("/vol/../secret", "/vol/up", "/vol/abs", "/../../secret", "vol/../../secret"):
        status, out, err = run_in(ctx, "cat", path)
        assert (status, out) == (1, ""), path
        assert "No such file or directory" in err
    # Writes land in the scratch root, never next to the mount on the host.
    assert run_in(ctx, "touch", "/vol/../escaped")[0] == 0
    assert not (tmp_path / "escaped").exists() and (tmp_path / "root" / "escaped").exists()


def test_readonly_mount_refuses_writes(tmp_path: Path) -> None:
    host = tmp_path / "ro"
    host.mkdir()
    (host / "keep").write_text("k")
    ctx = view(tmp_path, ("/ro", host, True))
    assert run_in(ctx, "touch", "/ro/new") == (1, "", "touch: /ro/new: Read-only file system\n")
    assert run_in(ctx, "rm", "/ro/keep")[2] == "rm: can't remove '/ro/keep': Read-only file system\n"
    assert run_in(ctx, "mkdir", "/ro/d")[2] == "mkdir: can't create directory '/ro/d': Read-only file system\n"
    assert (host / "keep").exists() and not (host / "new").exists()
    assert run_in(ctx, "cat", "/ro/keep") == (0, "k", "")


def test_cat_proc_sys_shows_the_sandbox_sysctls(tmp_path: Path) -> None:
    ctx = view(tmp_path, sysctls={"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"})
    assert run_in(ctx, "cat", "/proc/sys/kernel/shm_rmid_forced") == (0, "1\n", "")
    assert run_in(ctx, "cat", "/proc/sys/fs/mqueue/msg_max") == (0, "100\n", "")
    assert run_in(ctx, "ls", "/proc/sys/fs") == (0, "mqueue\n", "")
    assert run_in(ctx, "cat", "/proc/sys/kernel/hostname")[0] == 1  # nothing of the host's /proc


def test_file_applets_in_a_scratch_root(tmp_path: Path) -> None:
    ctx = view(tmp_path)
    assert run_in(ctx, "mkdir", "-p", "/a/b/c") == (0, "", "")
    assert run_in(ctx, "mkdir", "/a") == (1, "", "mkdir: can't create directory '/a': File exists\n")
    assert run_in(ctx, "touch", "/a/b/f") == (0, "", "")
    assert run_in(ctx, "ls", "/a/b") == (0, "c\nf\n", "")
    assert run_in(ctx, "rm", "/a/b") == (1, "", "rm: '/a/b' is a directory\n")
    assert run_in(ctx, "rm", "/nope") == (1, "", "rm: can't remove '/nope': No such file or directory\n")
    assert run_in(ctx, "rm", "-f", "/nope") == (0, "", "")
    assert run_in(ctx, "rm", "-r", "/a") == (0, "", "")
    assert run_in(ctx, "ls", "-A", "/") == (0, "proc\n", "")


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["-d", "/"], 0), (["-f", "/"], 1), (["-e", "/nope"], 1), (["!", "-e", "/nope"], 0),
        (["a", "=", "a"], 0), (["a", "!=", "a"], 1), (["3", "-gt", "2"], 0), (["-z", ""], 0), (["-n", ""], 1),
        (["x"], 0), ([""], 1), ([], 1), (["1", "-eq", "1", "-a", "-d", "/proc"], 0), (["1", "-eq", "2", "-o", "x"], 0),
        (["a", "-lt", "b"], 2),
    ],
)
def test_test_and_bracket(tmp_path: Path, args: list[str], status: int) -> None:
    ctx = view(tmp_path)
    assert run_in(ctx, "test", *args)[0] == status
    assert run_in(ctx, "[", *args, "]")[0] == status
    assert run_in(ctx, "[", *args) == (2, "", "[: missing ]\n")


def test_wc_head_tail_grep(tmp_path: Path) -> None:
    ctx = view(tmp_path)
    (tmp_path / "root" / "f").write_text("one two\nthree\nfour five six\n")
    assert run_in(ctx, "wc", "-l", "/f") == (0, "      3 /f\n", "")
    assert run_in(ctx.derive(stdin=io.BytesIO(b"a b\nc\n")), "wc", "-l")[1] == "2\n"
    assert run_in(ctx, "wc", "/f")[1] == "      3       6      28 /f\n"
    assert run_in(ctx, "head", "-n", "1", "/f") == (0, "one two\n", "")
    assert run_in(ctx, "head", "-2", "/f")[1] == "one two\nthree\n"
    assert run_in(ctx, "tail", "-n", "1", "/f")[1] == "four five six\n"
    assert run_in(ctx, "tail", "-n", "+2", "/f")[1] == "three\nfour five six\n"
    assert run_in(ctx, "grep", "t[wh]", "/f") == (0, "one two\nthree\n", "")
    assert run_in(ctx, "grep", "-c", "-v", "o", "/f")[1] == "1\n"
    assert run_in(ctx, "grep", "-E", "^(one|four)", "-n", "/f")[1] == "1:one two\n3:four five six\n"
    assert run_in(ctx, "grep", "-q", "zzz", "/f") == (1, "", "")
    assert run_in(ctx, "grep", "x", "/missing")[0] == 2
