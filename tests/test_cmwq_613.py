"""cmwq as Linux 6.13 runs it (kernel/workqueue.c): max_active's default and range."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from irqflow import (
    WQ_UNBOUND,
    IrqflowError,
    Kernel,
    KernelConfig,
)
from support import ZERO, make_kernel

#: Linux 6.13 with what ZERO sets on top of its preset: the kernel's own paths free
#: (times are exact), full preemption
M613 = KernelConfig.preset("6.13", **{
    f.name: getattr(ZERO, f.name) for f in dataclasses.fields(ZERO)
    if getattr(ZERO, f.name) != getattr(KernelConfig.preset("2.6"), f.name)
})  # fmt: skip


def make(cpus: int = 2, trace: str | None = "*", **overrides: Any) -> Kernel:
    return make_kernel(cpus, trace=trace, config=M613, **overrides)


# --- 2. max_active: the default and the range ----------------------------------------------


def test_max_active_defaults_to_1024_and_accepts_1_to_2048() -> None:
    """WQ_DFL_ACTIVE (1024) for 0, WQ_MAX_ACTIVE (2048) is the largest."""
    k = make()
    assert k.system_wq.max_active == 1024
    assert k.alloc_workqueue("dfl").max_active == 1024
    assert k.alloc_workqueue("one", 0, 1).max_active == 1
    assert k.alloc_workqueue("max", WQ_UNBOUND, 2048).max_active == 2048


@pytest.mark.parametrize("bad", [2049, 100_000, -1, True, 1.5])
def test_max_active_out_of_range_is_refused_with_the_fix(bad: Any) -> None:
    """The kernel clamps to 1..2048 with a warning; irqflow refuses, naming the queue,
    the value and the range."""
    k = make()
    with pytest.raises(IrqflowError, match=r"alloc_workqueue\('big'.*1\.\.2048.*0 for"):
        k.alloc_workqueue("big", 0, bad)
