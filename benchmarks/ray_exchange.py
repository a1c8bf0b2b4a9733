"""How long one --ray_address exchange takes: theta (2.7 MB) to a replica and its change back.

A one-node Ray cluster on this machine (ray.cluster_utils.Cluster), one
Breakout replica whose threads are not started, 50 exchanges: prints the
median and the fastest. Between machines, add the network's transfer time.

    python benchmarks/ray_exchange.py
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import async_q_nstep  # noqa: E402
from async_runtime.cluster import FreshProcessReplica, connect  # noqa: E402
from async_runtime.shared_state import SharedState  # noqa: E402

EXCHANGES = 50


def main():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    connect(cluster.address)
    args = async_q_nstep.parse_args(["--game", "BreakoutNoFrameskip-v4", "--num_actor_threads", "2",
                                     "--num_processes", "2", "--ray_address", "auto"])
    shared = SharedState(args, num_actions=4)
    theta = shared.theta.copy()
    start = {"theta": theta, "mean_squares": [np.zeros_like(a) for a in theta], "theta_minus": theta, "T": 0}
    replica = ray.remote(FreshProcessReplica).options(num_cpus=1).remote(
        args, 4, async_q_nstep.model(args), [1], async_q_nstep.actor_learner_thread, 5, start
    )
    ray.get(replica.exchange.remote(ray.put(theta), 0, None))  # the replica is built and warm
    seconds = []
    for _ in range(EXCHANGES):
        began = time.perf_counter()
        ray.get(replica.exchange.remote(ray.put(shared.theta.copy()), 0, None))
        seconds.append(time.perf_counter() - began)
    megabytes = sum(array.nbytes for array in theta) / 1e6
    print(f"one exchange, {megabytes:.1f} MB each way: median {statistics.median(seconds) * 1000:.1f} ms, "
          f"fastest {min(seconds) * 1000:.1f} ms, over {EXCHANGES}")
    cluster.shutdown()


if __name__ == "__main__":
    main()
