"""The `raftsched` command line: the entry point of every raftsched process (node, executor,
console, dev cluster, snapshot tools).

Why the environment is set here, before any submodule imports grpc: grpc's fork handlers crash
children started while a stream is busy (seen under uvloop, which forks plainly, with SIGSEGV in
4-10 % of spawns: a node's snapshot helper, an executor's tasks). Our processes never use grpc in a
forked child, so fork support is turned off, and it must be before grpc is first imported. A
program that embeds raftsched (not through this entry point) decides this for itself; importing
`raftsched` changes no environment.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
