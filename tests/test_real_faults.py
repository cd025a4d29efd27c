"""Faults in driver code and in the sources' callbacks: each is an oops that is seen
(dmesg, the ``irqflow`` logger, ``on_oops``), and the machine and its sources go on.

Real-engine tests assert orders and counts, never wall-clock windows.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from typing import Any

import pytest

from irqflow import IRQ_HANDLED, Kernel, Work
from irqflow.core.base import LOG_BUF_RECORDS, OOPS_BUF_RECORDS
from irqflow.core.errors import IrqflowError
from irqflow.core.irq.desc import INPROGRESS
from irqflow.devices.real import AsyncioBridge, FdSource, UdpNic
from support import wait_for


# ------------------------------------------------------------------ BaseException in driver code
def test_sim_base_exception_in_a_handler_is_an_oops_and_leaves_the_line_usable() -> None:
    """sys.exit() in a handler (Ctrl-C during a callback is the same): recorded as an
    oops, then it propagates out of k.run(); the line is not left INPROGRESS."""
    k = Kernel(cpus=1)
    k.request_irq(24, lambda i, d: exit(3), name="quitter")
    k.call_at(1000, k.raise_irq, 24)
    with pytest.raises(SystemExit):
        k.run()
    assert [(o.exc_type, o.where) for o in k.statistics().oopses] == [("SystemExit", "quitter")]
    assert not k.genirq.descs[24].state & INPROGRESS


# ------------------------------------------------------------------ errors you can see
def test_an_oops_goes_to_the_logger_and_the_callback_with_its_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    k = Kernel(cpus=1)
    seen: list[tuple[str, BaseException]] = []
    k.on_oops(lambda oops, exc: seen.append((oops.where, exc)))
    k.request_irq(24, lambda i, d: 1 // 0, name="div")
    k.call_at(1000, k.raise_irq, 24)
    with caplog.at_level(logging.WARNING, logger="irqflow"):
        k.run()
    assert [(w, type(e)) for w, e in seen] == [("div", ZeroDivisionError)]
    rec = [r for r in caplog.records if "Oops" in r.getMessage()]
    assert len(rec) == 1 and rec[0].levelno == logging.CRITICAL and rec[0].name == "irqflow"
    assert rec[0].exc_info is not None and rec[0].exc_info[0] is ZeroDivisionError


def test_a_handler_returning_none_is_said_once_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    k = Kernel(cpus=1)

    def forgetful(irq: int, dev: Any) -> None:
        pass

    k.request_irq(24, forgetful, name="eth0")  # type: ignore[arg-type]
    for i in range(2000):
        k.call_at(1000 * (i + 1), k.raise_irq, 24)
    with caplog.at_level(logging.WARNING, logger="irqflow"):
        k.run()
    lines = [x for x in k.dmesg() if "returned None" in x]
    assert len(lines) == 1
    assert "handler eth0 (forgetful) returned None (forgot `return IRQ_HANDLED`?)" in lines[0]
    assert sum("returned None" in r.getMessage() for r in caplog.records) == 1


def test_the_handler_type_flags_a_handler_that_returns_none(tmp_path: Any) -> None:
    """request_irq is typed with the IrqHandler protocol (and the package ships
    py.typed), so a type checker flags a top half that forgets ``return IRQ_HANDLED``."""
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "driver.py"
    snippet.write_text(
        "from typing import Any\n"
        "from irqflow import IRQ_HANDLED, Kernel\n"
        "def good(irq: int, dev: Any) -> int:\n    return IRQ_HANDLED\n"
        "def bad(irq: int, dev: Any) -> None:\n    pass\n"
        "k = Kernel()\nk.request_irq(1, good)\nk.request_irq(2, bad)\n"
    )
    out, _, status = api.run([str(snippet), "--config-file", "", "--no-incremental"])
    assert status == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "driver.py:9:" in errors[0] and "IrqHandler" in errors[0], out


def test_the_log_and_the_oopses_are_bounded_rings_that_count_what_they_dropped() -> None:
    k = Kernel(cpus=1)
    k.request_irq(24, lambda i, d: 1 // 0, name="div")
    n = OOPS_BUF_RECORDS + 10
    for i in range(n):
        k.call_at(1000 * (i + 1), k.raise_irq, 24)
    logging.getLogger("irqflow").disabled = True
    try:
        k.run()
        for _ in range(LOG_BUF_RECORDS):
            k.log(None, "info", "filler")
    finally:
        logging.getLogger("irqflow").disabled = False
    snap = k.statistics()
    assert len(snap.oopses) == OOPS_BUF_RECORDS and snap.oopses_dropped == 10
    assert len(snap.log) == LOG_BUF_RECORDS and snap.log_dropped == n
    assert k.dmesg()[0] == f"** {n} printk messages dropped **"


# ------------------------------------------------------------------ sources survive faults
@pytest.mark.real_only
@pytest.mark.parametrize("napi", [True, False])
def test_udp_nic_survives_a_fault_in_on_message(napi: bool, no_leftover_threads: None) -> None:
    k = Kernel(cpus=1, engine="real")
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    got: list[bytes] = []

    def on_message(data: bytes, addr: Any) -> None:
        if data == b"bad":
            raise ValueError("cannot parse")
        got.append(data)

    nic = UdpNic(k, 24, srv, on_message, napi=napi)
    cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with k:
        cl.sendto(b"bad", srv.getsockname())
        wait_for(lambda: nic.faults == 1)
        for i in range(20):
            cl.sendto(b"%d" % i, srv.getsockname())
        wait_for(lambda: len(got) == 20)
        report = k.stop()
    cl.close()
    srv.close()
    assert report.clean
    assert [o.exc_type for o in k.statistics().oopses] == ["ValueError"]


@pytest.mark.real_only
def test_fd_source_is_rearmed_after_its_handler_faults(no_leftover_threads: None) -> None:
    k = Kernel(cpus=1, engine="real")
    r, w = os.pipe()
    got: list[bytes] = []
    src: FdSource

    def top(irq: int, dev: Any) -> int:
        data = os.read(r, 100)
        if data == b"bad":
            raise ValueError("before rearm")
        got.append(data)
        src.rearm()
        return IRQ_HANDLED

    k.request_irq(24, top, name="pipe")
    with k:
        src = FdSource(k, 24, r, name="pipe")
        os.write(w, b"bad")
        wait_for(lambda: src.rearmed_after_oops == 1)
        os.write(w, b"ok")
        wait_for(lambda: got == [b"ok"])
    os.close(r)
    os.close(w)
    assert any("pipe (fd" in x and "rearmed after an oops" in x for x in k.dmesg())


@pytest.mark.real_only
def test_fd_source_left_masked_with_data_says_so_at_stop(no_leftover_threads: None) -> None:
    k = Kernel(cpus=1, engine="real")
    r, w = os.pipe()
    hits: list[int] = []
    k.request_irq(24, lambda i, d: hits.append(i) or IRQ_HANDLED, name="pipe")  # never rearms
    with k:
        FdSource(k, 24, r, name="pipe")
        os.write(w, b"x")
        wait_for(lambda: hits)
        os.write(w, b"y")
    os.close(r)
    os.close(w)
    assert any("was left masked with data waiting" in x for x in k.dmesg())


# ------------------------------------------------------------------ asyncio
@pytest.mark.real_only
def test_asyncio_bridge_cancel_stop_and_async_run_work(no_leftover_threads: None) -> None:
    k = Kernel(cpus=1, engine="real")
    c = k.completion()

    async def main() -> None:
        bridge = AsyncioBridge(k)
        with pytest.raises(IrqflowError, match="not started"):
            await bridge.run_work(lambda: 1)
        k.start()

        async def double(x: int) -> int:
            await asyncio.sleep(0.001)
            return 2 * x

        assert await bridge.run_work(double, 21) == 42
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bridge.wait_for_completion(c), 0.01)
        assert k.engine.waiters == []  # the cancelled wait withdrew itself
        waiting = asyncio.ensure_future(bridge.wait_for_completion(c))
        await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, k.stop)
        with pytest.raises(IrqflowError, match="the machine stopped"):
            await waiting

    asyncio.run(main())


@pytest.mark.real_only
def test_threads_that_ran_async_code_close_their_event_loops(no_leftover_threads: None) -> None:
    async def body(w: Any) -> None:
        await asyncio.sleep(0)

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.disable()
    try:
        before = fds()
        for _ in range(20):
            k = Kernel(cpus=1, engine="real")
            with k:
                k.schedule_work(Work(body))
        after = fds()
    finally:
        gc.enable()
    assert after - before < 10  # 3 descriptors per unclosed loop: 60 before the fix
