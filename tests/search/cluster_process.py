"""A Ray test cluster in a process of its own, for tests that remove a node (the shared one must not lose any).

Run as ``python cluster_process.py``: starts a head without CPUs (so no trial runs there) and two worker
nodes with one CPU each, prints ``{"address": ..., "workers": [node ids]}`` as one JSON line, then obeys
lines on stdin: ``remove NODE_ID`` kills that worker node at once (its processes die as in a power cut) and
answers ``removed``. End of input shuts the cluster down. Token authentication comes from the environment
the test passes on (see search_fixtures.py).
"""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster


def main() -> None:
    # Fast health checks, so that a removed node is declared dead in about a second (Ray's default: 15 s or more).
    # The GCS picks a free port of its own, as the shared test cluster's does.
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                           "health_check_failure_threshold": 2}})
    workers = {n.node_id: n for n in (c.add_node(num_cpus=1) for _ in range(2))}
    c.wait_for_nodes()
    print(json.dumps({"address": c.address, "workers": list(workers)}), flush=True)
    try:
        for line in sys.stdin:
            command, _, node_id = line.strip().partition(" ")
            if command == "remove":
                c.remove_node(workers.pop(node_id), allow_graceful=False)
                print("removed", flush=True)
    finally:
        c.shutdown()


if __name__ == "__main__":
    main()
