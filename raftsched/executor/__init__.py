"""The executor agent: runs the tasks the leader assigns, under a lease (SPEC §4, §5, §6).

Run one from the command line with `raftsched executor --cluster ADDR,... --id e1`, or embed one in
your own process to serve in-process handlers next to the built-ins (noop, sleep, echo, fail):

    from raftsched.config import ExecutorConfig
    from raftsched.executor import Executor, TaskContext, handler

    @handler("thumbnail")
    async def thumbnail(ctx: TaskContext) -> bytes:
        ctx.output.write(f"resizing with token {ctx.fencing_token}\\n")   # goes to the output tail
        return b"done: " + ctx.payload                                     # appended to it

    config = ExecutorConfig(id="e1", cluster=("127.0.0.1:7001", "127.0.0.1:7002"), slots=4)
    raise SystemExit(Executor(config).main())   # SIGTERM drains, a second SIGTERM kills and exits

Inside a running event loop use `await Executor(config).run()` instead, and `drain()` or `stop()`
to end it. A handler that raises makes the attempt FAILED with the exception as its error.
"""

from raftsched.executor.agent import Executor, main, run_executor
from raftsched.executor.handlers import HandlerRegistry, OutputTail, TaskContext, default_registry, handler
from raftsched.executor.lease import Lease
from raftsched.executor.runner import AttemptKey

__all__ = [
    "AttemptKey",
    "Executor",
    "HandlerRegistry",
    "Lease",
    "OutputTail",
    "TaskContext",
    "default_registry",
    "handler",
    "main",
    "run_executor",
]
