"""Replicas for a request rate: the Erlang-C (M/M/N) queueing model, used to size for an SLO.

With ``N`` servers (replicas × concurrency), arrivals at ``rate`` per second and a mean
service time ``S``, the offered load is ``a = rate · S`` and the chance that a request waits
longer than ``t`` is ``C(N, a) · exp(−(N − a) · t / S)``, ``C`` being Erlang's C formula.
"""

from __future__ import annotations

import math


def erlang_c(servers: int, load: float) -> float:
    """Erlang C: the probability that an arrival waits, for ``servers`` and offered ``load``
    (1.0 when the load is at or above the servers)."""
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    b = 1.0  # Erlang B by its recursion, stable for large N
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return servers * b / (servers - load * (1.0 - b))


def wait_probability(servers: int, rate: float, service_time: float, wait: float) -> float:
    """P(a request waits longer than ``wait`` seconds) in an M/M/N queue."""
    load = rate * service_time
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    return erlang_c(servers, load) * math.exp(-(servers - load) * wait / service_time)


def replicas_for(
    rate: float,
    service_time: float,
    concurrency: int,
    *,
    wait: float,
    probability: float,
    max_replicas: int,
) -> int:
    """The fewest replicas (each serving ``concurrency`` at once) for which a request waits
    longer than ``wait`` seconds with probability at most ``probability``; ``max_replicas``
    if none up to it does."""
    if rate <= 0 or service_time <= 0:
        return 0
    load = rate * service_time
    n = max(1, math.floor(load / concurrency))
    while n < max_replicas:
        if wait_probability(n * concurrency, rate, service_time, wait) <= probability:
            return n
        n += 1
    return max_replicas
