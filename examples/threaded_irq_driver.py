"""A threaded handler with IRQF_ONESHOT: an I2C device on a level-triggered line.

Run: ``python examples/threaded_irq_driver.py``.  The device holds its line until the
driver reads its status over I2C, which sleeps (1 ms), so it cannot happen in the hard
handler.  The primary handler only returns ``IRQ_WAKE_THREAD``; the thread
``irq/30-touch`` (SCHED_FIFO 50) does the read.  With ``IRQF_ONESHOT`` the line stays
masked until the thread is done; without it the still-asserted line fires again the
moment it is unmasked, the CPU never leaves hard-IRQ context, and the thread that would
quiet the device never runs: an interrupt storm (each machine runs for 10 ms).
"""

from __future__ import annotations

from irqflow import IRQ_HANDLED, IRQ_WAKE_THREAD, IRQF_ONESHOT, IRQF_TRIGGER_HIGH, Kernel


def run(oneshot: bool) -> None:
    k = Kernel(cpus=1)
    k.trace.enable("irq:irq_handler_entry,sched:sched_switch")
    reads: list[int] = []

    def touch_primary(irq: int, dev_id: object) -> int:
        return IRQ_WAKE_THREAD  # can't talk I2C here: wake the thread

    async def touch_thread(irq: int, dev_id: object) -> int:
        await k.usleep_range(1000, 1100)  # i2c_smbus_read_byte_data(): sleeps ~1 ms
        k.set_irq_level(irq, False)  # reading the status releases the line
        reads.append(k.now())
        return IRQ_HANDLED

    flags = IRQF_TRIGGER_HIGH | (IRQF_ONESHOT if oneshot else 0)
    k.request_threaded_irq(30, touch_primary, touch_thread, flags, "touch")
    for t in (1_000_000, 5_000_000):  # two touches
        k.call_at(t, k.set_irq_level, 30, True)
    k.run(until=10_000_000)
    line = k.statistics().irqs[30]
    switches = [e for e in k.trace.events() if e.name == "sched:sched_switch"]
    label = "with IRQF_ONESHOT   " if oneshot else "without IRQF_ONESHOT"
    print(
        f"{label}: {line.accepted:5d} hard interrupts, {len(reads)} I2C reads, "
        f"{len(switches)} context switches; thread reads at: "
        f"{', '.join(f'{t / 1e6:.3f} ms' for t in reads) or 'never'}"
    )


run(oneshot=True)
run(oneshot=False)
