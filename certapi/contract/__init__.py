"""The portable contract suite: the behaviour of SPEC.md and openapi.yaml, checked over
HTTP against any implementation (this one in-process, another over the network)."""
from certapi.contract.runner import Keys, Result, exit_code, format_table, run_suite, write_junit

__all__ = ["Keys", "Result", "exit_code", "format_table", "run_suite", "write_junit"]
