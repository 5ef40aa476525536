"""The kubelet deletes container logs (kuberuntime removeContainerLog -> the log manager's Clean) and the log
directories of deleted pods (kuberuntime_gc.go evictPodLogsDirectories), and nothing outside its own pod logs
directory."""

from __future__ import annotations

from pathlib import Path

from fake_kubelet.containerlogs import clean, evict_pod_log_dirs, pod_uid


def test_clean_removes_the_log_and_its_rotations_only(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    ctr = root / "ns_web_uid-1" / "main"
    ctr.mkdir(parents=True)
    for name in ("0.log", "0.log.20260101-000000", "0.log.20260101-000000.gz", "1.log", "10.log"):
        (ctr / name).write_text("x")
    removed = clean(str(ctr / "0.log"), root)
    assert sorted(p.name for p in removed) == ["0.log", "0.log.20260101-000000", "0.log.20260101-000000.gz"]
    assert sorted(p.name for p in ctr.iterdir()) == ["1.log", "10.log"]


def test_clean_stays_inside_the_pod_logs_directory(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    root.mkdir()
    outside = tmp_path / "precious.log"
    outside.write_text("keep")
    assert clean(str(outside), root) == []  # a log path the runtime answers outside our directory
    assert clean(str(tmp_path / "p"), root) == []  # 'p*' would match precious.log and pods
    target = tmp_path / "target.log"
    target.write_text("keep")
    (root / "link.log").symlink_to(target)
    assert [p.name for p in clean(str(root / "link.log"), root)] == ["link.log"]
    assert target.read_text() == "keep", "a link is removed, not what it points at"
    weird = root / "a[1].log"
    weird.write_text("x")
    (root / "a1.log").write_text("x")
    assert [p.name for p in clean(str(weird), root)] == ["a[1].log"], "glob characters in the path are literal"
    assert clean("", root) == []


def test_only_the_log_directories_of_deleted_pods_go(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    for name in ("ns_gone_uid-1", "ns_live_uid-2", "uid-3", "ns_unknown_uid-4"):
        (root / name / "main").mkdir(parents=True)
        (root / name / "main" / "0.log").write_text("x")
    assert pod_uid("ns_gone_uid-1") == "uid-1" and pod_uid("uid-3") == "uid-3"
    removed = evict_pod_log_dirs(root, {"uid-1", "uid-3"})
    assert sorted(p.name for p in removed) == ["ns_gone_uid-1", "uid-3"]
    assert sorted(p.name for p in root.iterdir()) == ["ns_live_uid-2", "ns_unknown_uid-4"]
    assert evict_pod_log_dirs(tmp_path / "missing", {"uid-2"}) == []
