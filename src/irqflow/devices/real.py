"""Interrupt sources for the real engine: file descriptors, timers, POSIX signals, asyncio.

The hardware side of a real machine.  Each source raises a line with ``k.raise_irq``;
the driver code (top half, NAPI poll, tasklet, work) is ordinary irqflow driver code and
runs unchanged on the sim engine, where the sources of :mod:`irqflow.devices.sim` raise
the lines instead.

Each source is a :class:`irqflow.devices.sim.Source` (``events`` counts its raises).

* :class:`FdSource` -- a file descriptor (socket, pipe) that becomes readable raises its
  line once and is then *masked* until the driver calls :meth:`FdSource.rearm`, as a NIC
  masks its RX interrupt while NAPI polls.  One selector thread per machine
  (``irqflow-selector``) watches every descriptor.
* :class:`UdpNic` -- a ready-made driver for a non-blocking datagram socket: NAPI polling
  within the budget (or one datagram per interrupt without NAPI).
* :class:`PeriodicTimer` -- a line raised every ``period_ns`` without drift (the tick).
* :class:`SignalSource` -- SIGUSR1 and friends raise a line.
* :class:`AsyncioBridge` -- raise lines from coroutines and ``await`` work items,
  tasklets and completions from an asyncio event loop.

Every source is closed by ``k.stop()`` before it drains, so nothing raises into a machine
that is shutting down.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import select
import selectors
import signal
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from irqflow.core.constants import IRQ_HANDLED
from irqflow.core.errors import IrqflowError
from irqflow.core.napi import Napi
from irqflow.core.sync import Completion
from irqflow.core.tasklet import TASKLET_STATE_RUN, TASKLET_STATE_SCHED, Tasklet
from irqflow.core.workqueue import WORK_STRUCT_PENDING, Work, Workqueue
from irqflow.devices.sim import Source
from irqflow.engine.real import signals
from irqflow.stats.snapshot import Oops

if TYPE_CHECKING:
    from irqflow.engine.real import RealEngine
    from irqflow.engine.real.engine import Waiter
    from irqflow.kernel import Kernel


def _engine(k: Kernel, what: str) -> RealEngine:
    from irqflow.engine.real import RealEngine

    eng: Any = k.engine
    if not isinstance(eng, RealEngine):
        raise IrqflowError(
            f'{what} is a real-world interrupt source and needs Kernel(engine="real"); '
            "on the sim engine use irqflow.devices.sim (Periodic, Poisson, Burst)"
        )
    return eng


def _fault(k: Kernel, where: str, irq: int | None, exc: Exception) -> None:
    """Record an oops for a fault a source caught in its driver's callback (from driver
    code, where the kernel lock is not held), so that the source can go on."""
    c = k.engine.current_cpu
    with k.engine.lock:
        if c is None:
            k.log(None, "emerg", f"Oops: {type(exc).__name__}: {exc} in {where}", exc)
        else:
            k._oops(c, where, irq, exc)


class _Selector:
    """The machine's one selector thread: readable descriptors raise their lines."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        #: fd -> source, for the descriptors to watch (unmasked)
        self._want: dict[int, FdSource] = {}
        self._watching: dict[int, FdSource] = {}
        #: signal numbers received, raised by the thread (handlers must not take locks)
        self._signals: dict[int, SignalSource] = {}
        self._closed = False
        self.thread = threading.Thread(target=self._main, name="irqflow-selector", daemon=True)
        self.thread.start()
        _engine(k, "a selector").add_closer(self.close)

    def poke(self) -> None:
        with self._lock:
            if self._closed:
                return  # closed: the pipe may be gone
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the pipe is full of pokes already

    def want(self, src: FdSource, on: bool) -> None:
        with self._lock:
            if self._closed:
                return  # the machine is stopping: sources stay masked
            if on:
                self._want[src.fd] = src
            else:
                self._want.pop(src.fd, None)
        self.poke()

    def _report(self, what: str, exc: BaseException) -> None:
        with self.k.engine.lock:
            self.k.log(None, "err", f"irqflow-selector: {what}: {exc!r}")

    def _sync(self) -> None:
        with self._lock:
            want = dict(self._want)
        for fd in list(self._watching):
            if fd not in want:
                self.sel.unregister(fd)
                del self._watching[fd]
        for fd, src in want.items():
            if self._watching.get(fd) is not src:
                if fd in self._watching:  # the number was reused by a new source
                    self.sel.unregister(fd)
                try:
                    self.sel.register(fd, selectors.EVENT_READ, src)
                except (OSError, ValueError) as exc:  # closed or invalid descriptor
                    with self._lock:
                        self._want.pop(fd, None)
                    self._report(f"cannot watch {src.name} (fd {fd}), masked for good", exc)
                    continue
                self._watching[fd] = src

    def _main(self) -> None:
        from irqflow.engine.real import set_os_thread_name

        set_os_thread_name("irqflow-selector")
        while not self._closed:
            self._sync()
            for key, _ in self.sel.select(timeout=0.5):
                src: FdSource | None = key.data
                if src is None:
                    self._drain_wake_pipe()
                    continue
                with self._lock:
                    if self._want.get(src.fd) is not src:
                        continue  # masked meanwhile
                    del self._want[src.fd]  # mask: one raise until rearm()
                try:
                    src._fire()
                except Exception as exc:  # keep watching the other sources
                    self._report(f"raising IRQ {src.irq} for {src.name} failed", exc)

    def _drain_wake_pipe(self) -> None:
        try:
            data = os.read(self._wake_r, 4096)
        except BlockingIOError:
            return
        for b in data:
            sig = self._signals.get(b)
            if sig is not None:
                try:
                    sig._fire()
                except Exception as exc:
                    self._report(f"raising IRQ {sig.irq} for signal {b} failed", exc)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._wake_w, b"\0")  # wake the thread so that it sees _closed
            except BlockingIOError:
                pass
            self._closed = True
        if threading.current_thread() is not self.thread:
            self.thread.join(2.0)
        with self._lock:  # after the thread: nobody writes to or selects on them now
            self.sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)


def _selector(k: Kernel) -> _Selector:
    eng = _engine(k, "FdSource")
    sel = getattr(eng, "_irqflow_selector", None)
    if sel is None:
        sel = _Selector(k)
        eng._irqflow_selector = sel  # type: ignore[attr-defined]
    return sel


class FdSource(Source):
    """A readable file descriptor raises line ``irq`` once, then stays masked until
    :meth:`rearm` -- the driver re-enables it when it has read everything (after
    ``napi_complete_done``).  Data that arrives while masked raises at the rearm."""

    def __init__(self, k: Kernel, irq: int, fileobj: Any, *, name: str = "fd") -> None:
        super().__init__(k, irq, name=name)
        self.fileobj = fileobj
        self.fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self._sel = _selector(k)
        self._sel.want(self, True)
        self.rearmed_after_oops = 0
        k.on_oops(self._after_oops)
        _engine(k, "FdSource").add_closer(self.close)

    def rearm(self) -> None:
        """Unmask: raise the line again as soon as the descriptor is readable."""
        self._sel.want(self, True)

    def mask(self) -> None:
        self._sel.want(self, False)

    @property
    def masked(self) -> bool:
        return self._sel._want.get(self.fd) is not self

    def _after_oops(self, oops: Oops, exc: BaseException) -> None:
        """A handler of this line faulted, perhaps before it could rearm: rearm, so that
        one fault does not mute the descriptor for good."""
        if oops.irq == self.irq and self.masked and not self._sel._closed:
            self.rearmed_after_oops += 1
            self.k.log(None, "warn", f"irqflow: {self.name} (fd {self.fd}) rearmed after an oops")
            self.rearm()

    def close(self) -> None:
        """Stop watching.  A source found masked with data waiting says so loudly: its
        driver never called :meth:`rearm` (a fault between the raise and the rearm, in a
        bottom half where the source cannot see it)."""
        if self.masked and not self._sel._closed and _readable(self.fd):
            with self.k.engine.lock:
                self.k.log(
                    None,
                    "err",
                    f"irqflow: {self.name} (fd {self.fd}) was left masked with data waiting: "
                    "its driver did not call rearm() (a fault before it?); the data was "
                    "never read",
                )
        self.mask()


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


class UdpNic:
    """A driver for a non-blocking datagram socket, the way a NIC driver is written.

    With ``napi`` (the default) the top half only schedules the NAPI instance (the
    :class:`FdSource` stays masked); ``NET_RX_SOFTIRQ`` polls up to the budget, calling
    ``on_message(data, addr)`` for each datagram in softirq context, and when the socket
    is drained completes NAPI and rearms the source.  Without ``napi`` the top half reads
    and delivers one datagram per interrupt, in hardirq context.  Datagrams the kernel's
    socket buffer cannot hold are dropped there, early and cheaply (see :func:`udp_drops`).

    Flow control: when ``pause()`` (optional) returns True, the poll stops reading and
    leaves the source masked -- what the application has not consumed stays in (and
    overflows) the socket buffer instead of piling up in Python -- until the consumer
    calls :meth:`resume`.
    """

    def __init__(
        self,
        k: Kernel,
        irq: int,
        sock: socket.socket,
        on_message: Callable[[bytes, Any], None],
        *,
        name: str = "eth0",
        napi: bool = True,
        weight: int = 64,
        bufsize: int = 65535,
        pause: Callable[[], bool] | None = None,
    ) -> None:
        sock.setblocking(False)
        self._pause = pause
        #: reading stopped by flow control (see ``pause``); :meth:`resume` restarts it
        self.paused = False
        self.pauses = 0
        self.k = k
        self.irq = irq
        self.sock = sock
        self.on_message = on_message
        self.bufsize = bufsize
        self.received = 0
        self.polls = 0
        #: datagrams whose on_message raised (each one an oops)
        self.faults = 0
        self.napi = Napi(self._poll, weight=weight, name=name) if napi else None
        k.request_irq(irq, self._top_half, name=name)
        self.source = FdSource(k, irq, sock, name=name)

    def _top_half(self, irq: int, dev: Any) -> int:
        if self.napi is not None:
            self.k.napi_schedule(self.napi)  # the source stays masked while we poll
            return IRQ_HANDLED
        try:
            data, addr = self.sock.recvfrom(self.bufsize)
        except BlockingIOError:
            pass
        except Exception as exc:  # the socket failed: say so, and keep the line alive
            _fault(self.k, f"{self.source.name} recvfrom", self.irq, exc)
        else:
            self.received += 1
            self._deliver(data, addr)
        self.source.rearm()
        return IRQ_HANDLED

    def _deliver(self, data: bytes, addr: Any) -> None:
        """``on_message``; a fault in it is an oops for that datagram, and the driver goes
        on with the next (NAPI stays balanced, the source rearmed)."""
        try:
            self.on_message(data, addr)
        except Exception as exc:
            self.faults += 1
            _fault(self.k, f"{self.source.name} on_message", None, exc)

    def _poll(self, napi: Napi, budget: int) -> int:
        self.polls += 1
        done = 0
        paused = False
        try:
            done, paused = self._receive(budget)
        except Exception as exc:  # the socket (or pause()) failed: complete and rearm
            _fault(self.k, f"{self.source.name} poll", None, exc)
        self.received += done
        if done < budget and self.k.napi_complete_done(napi, done):
            if paused:
                self.paused = True  # stay masked until resume()
                self.pauses += 1
                if not self._pause_wanted():
                    self.resume()  # the consumer caught up before we said we paused
            else:
                self.source.rearm()
        return done

    def _pause_wanted(self) -> bool:
        pause = self._pause
        try:
            return pause is not None and bool(pause())
        except Exception as exc:
            _fault(self.k, f"{self.source.name} pause", None, exc)
            return False

    def _receive(self, budget: int) -> tuple[int, bool]:
        """Read and deliver up to ``budget`` datagrams: (how many, paused)."""
        done = 0
        recv = self.sock.recvfrom
        pause = self._pause
        deliver = self._deliver
        while done < budget:
            if pause is not None and pause():
                return done, True
            try:
                data, addr = recv(self.bufsize)
            except BlockingIOError:
                break
            done += 1
            deliver(data, addr)
        return done, False

    def resume(self) -> None:
        """Restart reading after flow control paused it (from any context)."""
        if self.paused:
            self.paused = False
            self.source.rearm()


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped at ``sock``'s full receive buffer (Linux
    ``/proc/net/udp`` drops column); None where that is not available."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
        family = "udp6" if sock.family == socket.AF_INET6 else "udp"
        with open(f"/proc/net/{family}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[9]) == inode:
                    return int(cols[12])
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None


class PeriodicTimer(Source):
    """Raise ``irq`` every ``period_ns`` from now, on the machine's clock, without drift
    (the n-th raise is due at ``start + n * period_ns``), until :meth:`close`."""

    def __init__(self, k: Kernel, irq: int, period_ns: int, *, name: str = "timer") -> None:
        if not isinstance(period_ns, int) or period_ns <= 0:
            raise IrqflowError(f"PeriodicTimer({name!r}): period_ns must be an int > 0")
        _engine(k, "PeriodicTimer").add_closer(self.close)
        super().__init__(k, irq, name=name)
        self.period_ns = period_ns
        self._n = 0
        self._start = k.now()
        self._closed = False
        k.call_at(self._start + period_ns, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        self._fire()
        self._n += 1
        nxt = self._start + (self._n + 1) * self.period_ns
        now = self.k.now()
        if nxt < now:  # we fell behind: skip the missed periods, as a timer would
            missed = (now - nxt) // self.period_ns + 1
            self._n += missed
            nxt += missed * self.period_ns
        self.k.call_at(nxt, self._tick)

    def close(self) -> None:
        self._closed = True


class SignalSource(Source):
    """Raise ``irq`` when the process receives ``signum`` (``signal.SIGUSR1`` ...).

    Python runs signal handlers in the main thread; the handler only writes the signal
    number to the selector's pipe, and the selector thread raises the line (a handler
    must not take the kernel lock the interrupted code may hold).  Create it in the
    main thread.  :meth:`close` (or ``k.stop()``) restores the previous handler: at once
    in the main thread; from another thread (only the main thread may set handlers) the
    next time the main thread starts or stops a machine, or when the signal arrives: the
    handler then puts the previous one back and hands it the signal."""

    def __init__(self, k: Kernel, irq: int, signum: int, *, name: str = "signal") -> None:
        if threading.current_thread() is not threading.main_thread():
            raise IrqflowError(
                f"SignalSource({signal.Signals(signum).name}): Python only installs signal "
                "handlers from the main thread; create it there"
            )
        if not 0 < signum < 256:
            raise IrqflowError(f"SignalSource: signal number {signum} is out of range")
        super().__init__(k, irq, name=name)
        self.signum = signum
        self._sel = _selector(k)
        self._sel._signals[signum] = self
        self._old = signal.signal(signum, self._handler)
        self._closed = False
        _engine(k, "SignalSource").add_closer(self.close)

    def _handler(self, signum: int, frame: Any) -> None:
        if self._closed or self._sel._closed:
            # closed from another thread: put the previous handler back now (this is the
            # main thread) and let it have the signal
            signals.restore_pending(signum)
            if signal.getsignal(signum) == self._handler:
                signal.signal(signum, self._old)
            signals.forward(signum, frame, self._old)
            return
        try:
            os.write(self._sel._wake_w, bytes([signum]))
        except OSError:
            pass  # the pipe is full (the line is being raised anyway) or just closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sel._signals.pop(self.signum, None)
        signals.restore_handler(self.signum, self._old, self._handler)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class AsyncioBridge:
    """Use a real machine from asyncio: raise lines from coroutines, and ``await`` work
    items, tasklets and completions without blocking the event loop.

    ``loop`` defaults to the running loop when the bridge is made inside a coroutine.
    An await needs a started machine (else :class:`IrqflowError` at once); when the
    machine stops, every coroutine still awaiting it gets :class:`IrqflowError`; a
    cancelled await withdraws its wait from the machine."""

    def __init__(self, k: Kernel, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.k = k
        self._eng = _engine(k, "AsyncioBridge")
        self.loop = loop or asyncio.get_running_loop()

    def raise_irq(self, irq: int) -> None:
        """Raise line ``irq`` (never blocks for long: it queues the interrupt)."""
        self.k.raise_irq(irq)

    def _threadsafe(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self.loop
        if not loop.is_closed():  # the awaiting coroutine's loop may be gone
            loop.call_soon_threadsafe(fn, *args)

    def _stopped(self, fut: asyncio.Future[Any], what: str) -> Callable[[], None]:
        def on_stop() -> None:
            self._threadsafe(_fail, fut, IrqflowError(f"{what}: the machine stopped"))

        return on_stop

    async def _until(self, pred: Callable[[], bool], what: str) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()
        waiter: Waiter | None = self._eng.notify_when(
            pred, lambda: self._threadsafe(_resolve, fut), self._stopped(fut, what)
        )
        if waiter is None:
            return  # it held already
        try:
            await fut
        finally:
            self._eng.cancel_waiter(waiter)  # cancelled (or done): no wait is left behind

    async def flush_work(self, w: Work) -> None:
        """Wait until ``w`` is neither pending nor running."""
        await self._until(
            lambda: not w.state & WORK_STRUCT_PENDING and not w.running, f"flush_work({w.name})"
        )

    async def tasklet_done(self, t: Tasklet) -> None:
        """Wait until ``t`` is neither scheduled nor running."""
        await self._until(
            lambda: not t.state & (TASKLET_STATE_SCHED | TASKLET_STATE_RUN),
            f"tasklet_done({t.name})",
        )

    async def wait_for_completion(self, c: Completion) -> None:
        """``wait_for_completion`` from asyncio: consumes one ``complete()``."""
        while True:
            with self._eng.lock:
                if c.done:
                    c.done -= 1
                    return
            await self._until(lambda: bool(c.done), "wait_for_completion")

    async def run_work(
        self, fn: Callable[..., Any], *args: Any, wq: Workqueue | None = None
    ) -> Any:
        """Queue ``fn(*args)`` as a work item (on ``wq``, default ``system_wq``) and return
        its result (or raise its exception) once a worker thread has run it.  ``fn`` may
        be ``async def``: the worker runs it to its end on its own event loop."""
        self._eng.check_can_wait("run_work")
        fut: asyncio.Future[Any] = self.loop.create_future()
        name = getattr(fn, "__name__", "work")

        def settle(exc: BaseException | None, value: Any) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

        async def finish(aw: Any) -> None:
            try:
                value = await aw
            except Exception as exc:
                self._threadsafe(settle, exc, None)
                raise
            self._threadsafe(settle, None, value)

        def body(work: Work) -> Coroutine[Any, Any, None] | None:
            try:
                value = fn(*args)
            except Exception as exc:
                self._threadsafe(settle, exc, None)
                raise
            if inspect.isawaitable(value):
                return finish(value)  # a coroutine: the worker runs it to its end
            self._threadsafe(settle, None, value)
            return None

        # the machine stopping before the item ran fails the await instead of hanging it
        waiter = self._eng.notify_when(lambda: False, lambda: None, self._stopped(fut, name))
        self.k.queue_work(wq or self.k.system_wq, Work(body, name=name))
        try:
            return await fut
        finally:
            if waiter is not None:
                self._eng.cancel_waiter(waiter)
