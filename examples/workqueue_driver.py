"""A sensor driver: the top half grabs a sample, a work item stores it (and sleeps).

Run: ``python examples/workqueue_driver.py``.  The hard handler cannot sleep, so it only
reads the sample (2 us) and calls ``schedule_work``; the work item runs in a worker of
the CPU that took the interrupt (``kworker/1:0``; ``events/1`` on the seed's kernel,
``KernelConfig.preset("2.6")``), where it may sleep while the
"flash" is written (3 ms).  Interrupts keep coming while it sleeps, and samples that
arrive meanwhile are batched into the next run: ``schedule_work`` on a pending item
does nothing.
"""

from __future__ import annotations

from irqflow import IRQ_HANDLED, Kernel, Work, proc

k = Kernel(cpus=2, seed=7)
samples: list[int] = []
stored: list[tuple[str, int, int]] = []


async def store_samples(work: Work) -> None:
    batch = list(samples)
    samples.clear()
    await k.msleep(3)  # write them to flash: may sleep, we are in process context
    stored.append((k.current().comm, k.now() // 1000, len(batch)))


store = Work(store_samples, name="store_samples")


def sensor_interrupt(irq: int, dev_id: object) -> int:
    k.udelay(2)  # read the sample register
    samples.append(k.now())
    k.schedule_work(store)  # a no-op while the previous batch is still pending
    return IRQ_HANDLED


k.request_irq(17, sensor_interrupt, name="sensor")
k.irq_set_affinity(17, {1})
for i in range(20):
    k.call_at(100_000 + i * 1_000_000, k.raise_irq, 17)  # a sample every millisecond
k.run()

for comm, t_us, n in stored:
    print(f"{comm:>10} stored {n:2d} samples at {t_us:6d} us")
snap = k.statistics()
print(f"samples stored: {sum(n for _, _, n in stored)} of 20, in {len(stored)} work runs")
print(proc.interrupts(snap), end="")
cpu1 = snap.cpus[1]
print(f"CPU 1: irq {cpu1.irq} ns, system {cpu1.system} ns, idle {cpu1.idle} ns")
