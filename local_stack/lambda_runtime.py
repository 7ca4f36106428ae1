"""Lambda semantics for the local gateway: one worker process per execution environment.

Why processes and not threads: each function gets its own environment variables (the catalog's
``Function.environment`` on top of the local settings) and its own module state, exactly as two
Lambda functions never share memory; a timed-out invocation can be stopped for real (the worker is
killed and the next invoke cold-starts a new one, as Lambda resets its sandbox).

* Cold start: a worker imports its handler by file path once (``functions/<name>/handler.py`` with
  the code directory on ``sys.path``), then serves invokes one at a time.
* Concurrency: a function scales out to ``max_concurrency`` workers (capped by the catalog's
  ``reserved_concurrency``); more concurrent invokes wait for a free worker. Reserved concurrency
  is also a limit, as in Lambda: an invoke arriving while ``reserved_concurrency`` invokes are in
  flight (waiting for a worker counts: Lambda would be running them) is throttled at once with
  :class:`Throttled` (``TooManyRequestsException``), without reaching the function.
* Timeout: ``Function.timeout_s``; the worker is killed, the invoke fails with
  "Task timed out after N seconds" (logged), and the caller sees an error.
* Errors: a raising handler is logged with its traceback and reported as a function error;
  integrations turn it into a 500 as API Gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.catalog import FUNCTIONS, Function, Need

log = logging.getLogger("local_stack.lambda")
_HEADER = struct.Struct(">I")

#: Environment variables only functions with the matching catalog Need receive (as in the cloud,
#: where only the token issuer can read the signing key).
_NEED_ONLY_ENV: dict[str, Need] = {"JWT_PRIVATE_KEY": Need.JWT_SIGN}


class FunctionError(Exception):
    """The function failed (raised, timed out, crashed); API Gateway answers 500."""

    def __init__(
        self, function: str, error_type: str, message: str, stack_trace: list[str] | None = None
    ) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


class Throttled(FunctionError):
    """Lambda refused the invoke: the function's reserved concurrency is in use (HTTP 429
    ``TooManyRequestsException``, Reason ``ReservedFunctionConcurrentInvocationLimitExceeded``).
    API Gateway answers its 500 for it, as for any failed integration."""

    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"

    def __init__(self, function: str) -> None:
        super().__init__(function, "TooManyRequestsException", "Rate Exceeded.")


@dataclass
class InvocationStats:
    invocations: int = 0
    cold_starts: int = 0
    errors: int = 0
    timeouts: int = 0
    #: Invokes refused because the reserved concurrency was in use.
    throttles: int = 0
    init_ms: list[float] = field(default_factory=list)
    #: Wall time of invokes as the gateway sees them (queueing for a worker excluded, IPC included).
    duration_ms_total: float = 0.0
    #: Time inside the handler function itself, measured by the worker.
    handler_ms_total: float = 0.0
    #: Time invokes waited for a free worker (all busy: Lambda would scale out) or a cold start.
    wait_ms_total: float = 0.0


def function_environment(
    fn: Function, base: Mapping[str, str], region: str = "us-east-1", code_dir: Path | None = None
) -> dict[str, str]:
    """The environment one function's workers run with."""
    env = {k: v for k, v in base.items() if not (k in _NEED_ONLY_ENV and _NEED_ONLY_ENV[k] not in fn.needs)}
    env.setdefault("AWS_REGION", region)
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon locally
    env.update(fn.environment)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            # A local worker is an on-demand cold start: no snapshot, no provisioned init.
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{fn.name}",
            "LAMBDA_TASK_ROOT": str(code_dir or fn.code_dir),
            "_HANDLER": fn.handler,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class _Worker:
    """One execution environment (a child process)."""

    def __init__(self, fn: Function, proc: asyncio.subprocess.Process, log_task: asyncio.Task[None]) -> None:
        self.fn = fn
        self.proc = proc
        self.log_task = log_task
        self.init_ms = 0.0

    @classmethod
    async def start(
        cls, fn: Function, code_dir: Path, env: dict[str, str], log_sink: Callable[[str, str], None]
    ) -> _Worker:
        module, attr = fn.handler.rsplit(".", 1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "local_stack.lambda_worker",
            str(code_dir),
            module,
            attr,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=16 * 1024 * 1024,
        )
        assert proc.stderr is not None
        worker = cls(fn, proc, asyncio.create_task(_pump_logs(fn.name, proc.stderr, log_sink)))
        ready = await worker._read()
        if ready is None:
            await worker.kill()
            raise FunctionError(fn.name, "Runtime.ExitError", "worker exited during init")
        worker.init_ms = float(ready.get("init_ms", 0.0))
        return worker

    async def _read(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        try:
            header = await self.proc.stdout.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            answer: dict[str, Any] = json.loads(await self.proc.stdout.readexactly(size))
            return answer
        except asyncio.IncompleteReadError:
            return None

    async def send(self, event: Any, request_id: str, deadline_ms: int) -> None:
        """Hand the event over; ConnectionError when the process is gone (it never got it)."""
        assert self.proc.stdin is not None
        data = json.dumps({"event": event, "request_id": request_id, "deadline_ms": deadline_ms}).encode()
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        await self.proc.stdin.drain()

    async def answer(self) -> dict[str, Any] | None:
        """The invoke's answer; None when the process died before giving one."""
        return await self._read()

    @property
    def alive(self) -> bool:
        stdin = self.proc.stdin
        return self.proc.returncode is None and stdin is not None and not stdin.is_closing()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.log_task, 2)

    async def stop(self) -> None:
        """Graceful: close stdin so the worker's loop ends; kill if it does not."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 3)
        await self.kill()


async def _pump_logs(name: str, stream: asyncio.StreamReader, sink: Callable[[str, str], None]) -> None:
    while line := await stream.readline():
        sink(name, line.decode(errors="replace").rstrip("\n"))


def _default_log_sink(function: str, line: str) -> None:
    log.info("[%s] %s", function, line)


class FunctionPool:
    """The execution environments of one function."""

    def __init__(
        self,
        fn: Function,
        env: dict[str, str],
        max_concurrency: int,
        log_sink: Callable[[str, str], None],
        code_dir: Path | None = None,
    ) -> None:
        self.fn = fn
        self.code_dir = code_dir or fn.code_dir
        self.env = env
        reserved = fn.reserved_concurrency
        self.max_concurrency = max(
            1, min(max_concurrency, reserved if reserved is not None else max_concurrency)
        )
        self.in_flight = 0
        self.stats = InvocationStats()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._log_sink = log_sink
        self._closed = False

    async def invoke(self, event: Any, *, timeout_s: float | None = None) -> Any:
        """Invoke once; returns the handler's result or raises :class:`FunctionError`
        (:class:`Throttled` when the reserved concurrency is in use)."""
        reserved = self.fn.reserved_concurrency
        if reserved is not None and self.in_flight >= reserved:
            self.stats.throttles += 1
            raise Throttled(self.fn.name)
        self.in_flight += 1
        try:
            return await self._invoke(event, timeout_s)
        finally:
            self.in_flight -= 1

    async def _invoke(self, event: Any, timeout_s: float | None) -> Any:
        timeout = float(timeout_s if timeout_s is not None else self.fn.timeout_s)
        request_id = str(uuid.uuid4())
        queued = time.perf_counter()
        async with self._slots:
            if self._closed:
                raise FunctionError(self.fn.name, "Runtime.Shutdown", "the local gateway is stopping")
            worker = await self._ready_worker()
            self.stats.wait_ms_total += (time.perf_counter() - queued) * 1000
            self.stats.invocations += 1
            started = time.perf_counter()
            deadline_ms = int((time.time() + timeout) * 1000)

            async def send_and_answer() -> dict[str, Any] | None:
                nonlocal worker
                try:
                    await worker.send(event, request_id, deadline_ms)
                except (ConnectionError, BrokenPipeError):
                    # It died while idle (before we noticed): the event never reached it, so a
                    # fresh environment takes it -- Lambda never hands an event to a dead sandbox.
                    await self._discard(worker)
                    worker = await self._cold_start()
                    await worker.send(event, request_id, deadline_ms)
                return await worker.answer()

            try:
                answer = await asyncio.wait_for(send_and_answer(), timeout)
            except TimeoutError:
                self.stats.timeouts += 1
                self.stats.errors += 1
                message = f"Task timed out after {timeout:.2f} seconds"
                self._log_sink(self.fn.name, f"{request_id} {message}")
                await self._discard(worker)
                raise FunctionError(self.fn.name, "Sandbox.Timedout", message) from None
            except (ConnectionError, BrokenPipeError) as exc:
                await self._discard(worker)
                self.stats.errors += 1
                raise FunctionError(self.fn.name, "Runtime.ExitError", str(exc)) from None
            except asyncio.CancelledError:
                # The caller gave up (e.g. a handshake timeout, shutdown): the invocation is
                # abandoned mid-way and its late answer would be read by the next invoke -- reset
                # this sandbox instead of leaking it outside the pool (neither idle nor discarded).
                self._all.discard(worker)
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
                raise
            finally:
                self.stats.duration_ms_total += (time.perf_counter() - started) * 1000
            if answer is None:  # the process died mid-invoke (e.g. os._exit, segfault)
                await self._discard(worker)
                self.stats.errors += 1
                raise FunctionError(self.fn.name, "Runtime.ExitError", "the worker process exited")
            if self._closed:
                await self._discard(worker)
            else:
                self._idle.append(worker)
            self.stats.handler_ms_total += float(answer.get("handler_ms", 0.0))
            if not answer.get("ok"):
                self.stats.errors += 1
                raise FunctionError(
                    self.fn.name,
                    str(answer.get("errorType")),
                    str(answer.get("errorMessage")),
                    [str(line) for line in answer.get("stackTrace") or []],
                )
            return answer.get("result")

    async def _ready_worker(self) -> _Worker:
        """A warm worker that is still alive, else a cold start (dead idle ones are dropped)."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            await self._discard(worker)
        return await self._cold_start()

    async def _cold_start(self) -> _Worker:
        worker = await _Worker.start(self.fn, self.code_dir, self.env, self._log_sink)
        self._all.add(worker)
        self.stats.cold_starts += 1
        self.stats.init_ms.append(worker.init_ms)
        return worker

    async def _discard(self, worker: _Worker) -> None:
        self._all.discard(worker)
        await worker.kill()

    async def close(self) -> None:
        self._closed = True
        workers = list(self._all)
        self._idle.clear()
        self._all.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)


class LambdaRuntime:
    """All catalog functions, each with its own pool of workers, started lazily on first invoke."""

    def __init__(
        self,
        base_env: Mapping[str, str] | None = None,
        *,
        functions: tuple[Function, ...] = FUNCTIONS,
        functions_dir: Path | None = None,
        max_concurrency: int | None = None,
        log_sink: Callable[[str, str], None] = _default_log_sink,
    ) -> None:
        base = dict(os.environ if base_env is None else base_env)
        region = base.get("AWS_REGION") or base.get("AWS_DEFAULT_REGION") or "us-east-1"
        concurrency = max_concurrency or int(base.get("LOCAL_LAMBDA_CONCURRENCY", "2"))
        self.pools: dict[str, FunctionPool] = {}
        for fn in functions:
            code_dir = (functions_dir / fn.name) if functions_dir else fn.code_dir
            env = function_environment(fn, base, region, code_dir)
            self.pools[fn.name] = FunctionPool(fn, env, concurrency, log_sink, code_dir)

    def pool(self, name: str) -> FunctionPool:
        return self.pools[name]

    def has(self, name: str) -> bool:
        return name in self.pools

    async def invoke(self, name: str, event: Any) -> Any:
        return await self.pools[name].invoke(event)

    async def warm(self, names: list[str], workers: int = 1) -> None:
        """Cold-start up to ``workers`` workers per named function now (the first requests are
        then not slow)."""

        async def _one(pool: FunctionPool) -> None:
            async with pool._slots:
                if len(pool._all) < min(workers, pool.max_concurrency):
                    pool._idle.append(await pool._cold_start())

        await asyncio.gather(*(_one(self.pools[n]) for n in names for _ in range(workers)))

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
