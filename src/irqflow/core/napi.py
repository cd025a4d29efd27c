"""NAPI and ``net_rx_action`` on NET_RX_SOFTIRQ (net/core/dev.c).

A NIC's top half masks its own interrupt and calls ``napi_schedule``: the ``Napi`` goes
on this CPU's poll list and NET_RX is raised (without waking ksoftirqd, and not at all
while ``net_rx_action`` is running on this CPU: it will notice; invariant 62).
``net_rx_action`` polls each scheduled NAPI with its weight, stops when the run's
``netdev_budget`` packets are spent or ``netdev_budget_usecs`` have passed (counting a
*time squeeze*), puts NAPIs that used their whole weight at the tail and re-raises
NET_RX while any remain (invariant 61).  A poll that does less than its weight completes
with ``napi_complete_done``, and the driver unmasks its interrupt; a schedule that
arrived meanwhile (MISSED) keeps it scheduled instead (invariant 60).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from irqflow.core.constants import NET_RX_SOFTIRQ
from irqflow.core.errors import refuse_async
from irqflow.core.kthread import FAILED
from irqflow.core.softirq import raise_softirq_irqoff

if TYPE_CHECKING:
    from irqflow.core.base import KernelBase
    from irqflow.core.cpu import Cpu

# NAPI_STATE_* (include/linux/netdevice.h), the ones irqflow models
NAPI_STATE_SCHED = 1 << 0  # owned by the core: on a poll list or being polled
NAPI_STATE_MISSED = 1 << 1  # a schedule arrived while SCHED
NAPI_STATE_DISABLE = 1 << 2  # napi_disable pending


class Napi:
    """``struct napi_struct``: ``poll(napi, budget) -> int`` packets processed, run from
    NET_RX_SOFTIRQ with at most ``weight`` (``napi_weight``, 64 by default) per call."""

    __slots__ = ("name", "owner", "poll", "polls", "run_cpu", "state", "weight", "where")

    def __init__(
        self, poll: Callable[[Napi, int], int], weight: int = 64, *, name: str | None = None
    ) -> None:
        if not callable(poll):
            raise TypeError(f"Napi(poll={poll!r}): poll must be callable as poll(napi, budget)")
        refuse_async(poll, "Napi", "softirq (NET_RX_SOFTIRQ)")
        if not isinstance(weight, int) or weight < 1:
            raise ValueError(f"Napi(weight={weight!r}): the weight must be an int >= 1")
        self.poll = poll
        self.weight = weight
        self.name = name or getattr(poll, "__name__", "napi")
        self.where = f"napi {self.name}"
        #: the machine it serves (set on first use)
        self.owner: object = None
        self.state = 0
        self.polls = 0
        self.run_cpu = -1

    @property
    def scheduled(self) -> bool:
        return bool(self.state & NAPI_STATE_SCHED)

    def __repr__(self) -> str:
        bits = [n for b, n in ((1, "SCHED"), (2, "MISSED"), (4, "DISABLE")) if self.state & b]
        return f"<Napi {self.name} weight={self.weight} state={'|'.join(bits) or '0'}>"


def napi_schedule_prep(n: Napi) -> bool:
    """Take ownership: True only if SCHED was clear; a schedule while SCHED sets MISSED."""
    if n.state & NAPI_STATE_DISABLE:
        return False
    was = n.state & NAPI_STATE_SCHED
    n.state |= NAPI_STATE_SCHED | (NAPI_STATE_MISSED if was else 0)
    return not was


def napi_schedule_on(k: KernelBase, c: Cpu, n: Napi) -> None:
    """``____napi_schedule``: tail of this CPU's poll list; raise NET_RX without waking
    ksoftirqd, and not while net_rx_action runs here."""
    if k.softirqs.flows[NET_RX_SOFTIRQ] is None:
        # net_dev_init: NET_RX gets the kernel's action once NAPI is used, so a machine
        # whose drivers open NET_RX themselves and never use NAPI pays nothing for it
        k.softirqs.open_kernel(NET_RX_SOFTIRQ, net_rx_action)
    c.poll_list.append(n)
    if not c.in_net_rx_action:
        raise_softirq_irqoff(k, c, NET_RX_SOFTIRQ, wake=False)


def napi_complete_done(k: KernelBase, c: Cpu | None, n: Napi) -> bool:
    """Release the NAPI; False (still scheduled, polled again) if a schedule was missed."""
    if n.state & NAPI_STATE_MISSED:
        n.state &= ~NAPI_STATE_MISSED
        if c is not None:
            napi_schedule_on(k, c, n)
        return False
    n.state &= ~NAPI_STATE_SCHED
    return True


def _napi_poll(k: KernelBase, c: Cpu, n: Napi, repoll: list[Napi]) -> int:
    if not n.state & NAPI_STATE_SCHED:
        return 0
    n.polls += 1
    n.run_cpu = c.nr
    res = k._call(c, n.poll, (n, n.weight), n.where)
    if res is FAILED or not isinstance(res, int) or res < 0:
        if res is not FAILED:
            k.log(c, "warn", f"napi {n.name}: poll returned {res!r}, not a packet count")
        res = 0
    if k.tracing:
        k.trace.emit(c, "napi:napi_poll", {"napi": n.name, "dev_name": n.name,
                                            "work": res, "budget": n.weight})  # fmt: skip
    if res > n.weight:
        k.log(c, "warn", f"napi {n.name}: poll returned {res}, more than its weight {n.weight}")
    if res < n.weight:
        return res  # the driver completed (or should have)
    if n.state & NAPI_STATE_DISABLE:
        napi_complete_done(k, c, n)
    else:
        repoll.append(n)
    return res


def net_rx_action(k: KernelBase, c: Cpu) -> None:
    """NET_RX_SOFTIRQ's kernel action."""
    cfg = k.config
    budget = cfg.netdev_budget
    usecs_jiffies = -(-cfg.netdev_budget_us * cfg.hz // 1_000_000)  # usecs_to_jiffies
    time_limit = k.jiffies + max(1, usecs_jiffies)
    repoll: list[Napi] = []
    todo: deque[Napi] = deque()
    while True:
        c.in_net_rx_action = True
        todo.extend(c.poll_list)
        c.poll_list.clear()
        squeezed = False
        while todo:
            n = todo.popleft()
            budget -= _napi_poll(k, c, n, repoll)
            if budget <= 0 or k.jiffies >= time_limit:
                c.time_squeeze += 1
                squeezed = True
                break
        if squeezed or repoll:
            break
        c.in_net_rx_action = False
        if not c.poll_list:
            return
        # scheduled while we polled: start over within this run
    # not reached this time, then newly scheduled, then the repolled ones (fairness)
    rebuilt = deque(todo)
    rebuilt.extend(c.poll_list)
    rebuilt.extend(repoll)
    c.poll_list = rebuilt
    if rebuilt:
        raise_softirq_irqoff(k, c, NET_RX_SOFTIRQ, wake=False)
    else:
        c.in_net_rx_action = False
