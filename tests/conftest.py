"""Settings for the whole test process.

GRPC_ENABLE_FORK_SUPPORT=false before grpc is imported, as the `raftsched` entry point does for its
processes (raftsched/cli/__init__.py says why): tests run executors in process, which spawn tasks
while grpc streams are busy. Importing raftsched itself no longer sets it.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
