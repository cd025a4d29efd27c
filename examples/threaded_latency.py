"""The seed's trade-off: handlers that can be scheduled lower the latency a high-priority
thread sees, at the cost of throughput.

Run: ``python examples/threaded_latency.py``.  One CPU; a device interrupts every 50 us
and each event needs 30 us of driver work.  An "audio" thread at SCHED_FIFO 80 wakes
every millisecond (an hrtimer, ``usleep_range``, as ``clock_nanosleep`` would) and
measures how late it runs.

* **hard IRQ**: all 30 us in the hard handler, interrupts off, unpreemptible: the audio
  thread waits whenever its wake-up lands in a handler.
* **threaded**: a 1 us primary that wakes ``irq/20-dev`` (SCHED_FIFO 50) for the other
  29 us.  The audio thread outranks it and, on a fully preemptible kernel (this example
  runs ``preempt_model="full"``), preempts it at once; the price is two context
  switches per event, paid in CPU time.  On a "voluntary" kernel, the 6.13 distribution
  default, a kernel thread is preempted only where it offers to, so the IRQ thread would
  finish its 29 us first.

* **threadirqs**: the hard-IRQ driver under ``KernelConfig(threadirqs=True)``.  On a
  non-RT kernel a forced-threaded handler runs in its thread with BH and interrupts off
  (kernel commit 81e2073c175b), so the audio thread still waits for it: the context
  switches are paid and the latency stays.  The benefit of forced threading needs
  PREEMPT_RT, where the thread stays preemptible; irqflow does not model PREEMPT_RT yet.
"""

from __future__ import annotations

from irqflow import IRQ_HANDLED, IRQ_WAKE_THREAD, Kernel, KernelConfig

EVENTS_EVERY_NS, WORK_US, RUN_NS = 50_000, 30, 200_000_000


def run(threaded: bool, threadirqs: bool = False) -> None:
    k = Kernel(cpus=1, config=KernelConfig(threadirqs=threadirqs, preempt_model="full"))
    late: list[int] = []

    async def audio(k: Kernel) -> None:
        while True:
            deadline = k.now() + 1_000_000
            await k.usleep_range(1000, 1000)
            late.append(k.now() - deadline)

    if threaded:
        k.request_threaded_irq(
            20, lambda irq, dev: (k.udelay(1), IRQ_WAKE_THREAD)[1],
            lambda irq, dev: (k.udelay(WORK_US - 1), IRQ_HANDLED)[1], 0, "dev",
        )  # fmt: skip
    else:
        k.request_irq(20, lambda irq, dev: (k.udelay(WORK_US), IRQ_HANDLED)[1], 0, "dev")
    for t in range(EVENTS_EVERY_NS, RUN_NS, EVENTS_EVERY_NS):
        k.call_at(t, k.raise_irq, 20)
    k.kthread_run(audio, "audio", cpu=0, policy="fifo", prio=80)
    k.run(until=RUN_NS)
    snap = k.statistics()
    cpu = snap.cpus[0]
    events = snap.irqs[20].accepted
    audio_ns = next(t for t in k.tasks if t.comm == "audio").sum_exec
    device_ns = cpu.irq + cpu.softirq + cpu.system + cpu.user - audio_ns
    late.sort()
    p50, p99, worst = late[len(late) // 2], late[len(late) * 99 // 100], late[-1]
    label = "threaded" if threaded else "threadirqs" if threadirqs else "hard IRQ"
    print(
        f"{label:10}: audio wake-up latency p50 {p50 / 1000:5.1f} us, p99 {p99 / 1000:5.1f} us, "
        f"max {worst / 1000:5.1f} us; device work {device_ns / events / 1000:4.1f} us of CPU "
        f"per event ({events} events, {snap.context_switches} context switches)"
    )


run(threaded=False)
run(threaded=True)
run(threaded=False, threadirqs=True)
