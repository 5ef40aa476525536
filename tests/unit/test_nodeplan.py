"""Node plans for several nodes on one machine: names, pod CIDRs cut from one cluster CIDR, manifests."""

from pathlib import Path

import pytest

from cristack.harness.nodeplan import ClusterError, assign, node_cidr, plan_nodes


def test_nodes_are_named_in_order_and_take_their_own_block_of_the_cluster_cidr():
    plans = plan_nodes(3)
    assert [(p.name, p.pod_cidr) for p in plans] == [
        ("node-1", "10.244.1.0/24"), ("node-2", "10.244.2.0/24"), ("node-3", "10.244.3.0/24")]


def test_a_node_index_picks_a_block_of_any_cluster_cidr_and_mask():
    assert node_cidr(0) == "10.244.0.0/24"
    assert node_cidr(255) == "10.244.255.0/24"
    assert node_cidr(300, "10.0.0.0/8", 24) == "10.1.44.0/24"
    assert node_cidr(3, "10.244.0.0/16", 26) == "10.244.0.192/26"
    assert node_cidr(1, "fd00:10:244::/56", 64) == "fd00:10:244:1::/64"


@pytest.mark.parametrize(("index", "cidr", "mask", "says"), [
    (256, "10.244.0.0/16", 24, "node index 256 is outside cluster CIDR 10.244.0.0/16, which holds 256 /24 blocks"),
    (-1, "10.244.0.0/16", 24, "node index -1 is outside"),
    (0, "10.244.0.0/16", 16, "node CIDR mask /16 does not fit cluster CIDR 10.244.0.0/16"),
    (0, "10.244.0.0/16", 31, "node CIDR mask /31 does not fit"),
    (0, "10.244.0.1/16", 24, "cluster CIDR '10.244.0.1/16': 10.244.0.1/16 has host bits set"),
])
def test_an_impossible_plan_says_why(index, cidr, mask, says):
    with pytest.raises(ClusterError, match=says.replace("(", r"\(").replace(".", r"\.")):
        node_cidr(index, cidr, mask)


def test_zero_nodes_is_refused():
    with pytest.raises(ClusterError, match="at least one node"):
        plan_nodes(0)


def test_manifests_go_to_every_node_or_are_dealt_round_robin():
    files = [Path(f"p{i}.yaml") for i in range(5)]
    assert assign(files, 2, spread=False) == [files, files]
    assert assign(files, 2, spread=True) == [files[0::2], files[1::2]]
    assert assign(files[:1], 3, spread=True) == [files[:1], [], []]
