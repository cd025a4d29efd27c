"""The "nobody cared" / bogus-return report of kernel/irq/spurious.c ``__report_bad_irq``:
its first line, then ``handlers:`` and one ``[<%p>] %ps`` line per action, with
`` threaded [<%p>] %ps`` for a thread_fn.  ``%p`` prints like a hashed pointer on 64-bit
(16 hex digits, the upper 8 zero); irqflow's is the CRC-32 of the function's symbol, so
the expected values below are fixed."""

from __future__ import annotations

import dataclasses
from typing import Any

from irqflow import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    IRQF_SHARED,
    IRQF_TRIGGER_HIGH,
    Kernel,
)
from irqflow.core.irq.spurious import report_bad_irq
from support import ZERO, make_kernel

IRQ = 10


def scsi_intr(irq: int, dev_id: Any) -> int:
    return IRQ_NONE


def usb_hcd_irq(irq: int, dev_id: Any) -> int:
    return IRQ_WAKE_THREAD


def usb_thread(irq: int, dev_id: Any) -> int:
    return IRQ_HANDLED


def sdio_thread(irq: int, dev_id: Any) -> int:
    return IRQ_HANDLED


class Screamer:
    """A handler object: its report line names its ``__call__``."""

    def __call__(self, irq: int, dev_id: Any) -> int:
        return IRQ_NONE


def log(k: Kernel) -> list[str]:
    return [r.text for r in k.statistics().log]


def test_nobody_cared_report_dumps_each_handler_as_pointer_and_symbol() -> None:
    """A screaming shared level line: after 100000 events, "nobody cared", ``handlers:``,
    one ``[<pointer>] symbol`` line per action (a function, a handler object), then
    "Disabling IRQ #10"."""
    k = make_kernel(cpus=1, trace=None, config=dataclasses.replace(ZERO, irq_entry_ns=1))
    k.request_irq(IRQ, scsi_intr, IRQF_SHARED | IRQF_TRIGGER_HIGH, "scsi", dev_id="a")
    k.request_irq(IRQ, Screamer(), IRQF_SHARED | IRQF_TRIGGER_HIGH, "usb", dev_id="b")
    k.call_at(1_000, k.raise_irq, IRQ)
    k.run(until=10_000_000)
    text = log(k)
    start = text.index(f'irq {IRQ}: nobody cared (try booting with the "irqpoll" option)')
    assert text[start : start + 5] == [
        f'irq {IRQ}: nobody cared (try booting with the "irqpoll" option)',
        "handlers:",
        "[<00000000276b1bb8>] scsi_intr",
        "[<0000000068341d40>] Screamer.__call__",
        f"Disabling IRQ #{IRQ}",
    ]
    assert not any("bogus" in t for t in text)


def test_threaded_actions_show_their_thread_fn() -> None:
    """A primary with a thread_fn, and a thread-only action (the kernel's default primary
    handler): `` threaded [<pointer>] symbol`` follows the handler on the same line."""
    k = Kernel(cpus=1)
    shared = IRQF_SHARED | IRQF_ONESHOT
    k.request_threaded_irq(11, usb_hcd_irq, usb_thread, shared, "usb", dev_id="a")
    k.request_threaded_irq(11, None, sdio_thread, shared, "sdio", dev_id="b")
    report_bad_irq(k, k.cpus[0], k.genirq.descs[11], IRQ_NONE)
    assert log(k)[-4:] == [
        'irq 11: nobody cared (try booting with the "irqpoll" option)',
        "handlers:",
        "[<000000000b0601c0>] usb_hcd_irq threaded [<00000000b1f33535>] usb_thread",
        "[<00000000c34f23a7>] irq_default_primary_handler threaded [<00000000c0cef3b2>] "
        "sdio_thread",
    ]


def test_forced_threading_reports_the_default_primary_and_the_driver_handler() -> None:
    """Under ``threadirqs`` the driver's handler becomes the thread_fn of the default
    primary handler, and the report says so; one function has one pointer everywhere."""
    k = make_kernel(cpus=1, trace=None, threadirqs=True)
    k.request_irq(12, scsi_intr, IRQF_SHARED, "scsi", dev_id="a")
    report_bad_irq(k, k.cpus[0], k.genirq.descs[12], IRQ_NONE)
    assert log(k)[-1] == (
        "[<00000000c34f23a7>] irq_default_primary_handler threaded [<00000000276b1bb8>] scsi_intr"
    )


def test_bogus_return_value_gets_only_the_bogus_message_then_the_handlers() -> None:
    """A return above IRQ_HANDLED | IRQ_WAKE_THREAD: "irq event N: bogus return value X"
    and never "nobody cared", followed by the same handlers dump; at most 100 reports."""
    k = make_kernel(cpus=1, trace=None)
    k.request_irq(IRQ, lambda irq, dev: 0x14, 0, "bogus")
    for n in range(150):
        k.call_at(1_000 * (n + 1), k.raise_irq, IRQ)
    k.run()
    text = log(k)
    assert not any("nobody cared" in t for t in text)
    assert text[:3] == [
        f"irq event {IRQ}: bogus return value 14",
        "handlers:",
        "[<00000000c053c0b3>] <lambda>",
    ]
    assert text.count(f"irq event {IRQ}: bogus return value 14") == 100
    assert text.count("handlers:") == 100
