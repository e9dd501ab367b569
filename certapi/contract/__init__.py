"""The portable contract suite: the behaviour openapi.yaml and the README describe, checked
over HTTP against any implementation (this one in-process, another over the network)."""
from certapi.contract.report import format_table, write_json, write_junit
from certapi.contract.runner import Keys, Result, exit_code, run_suite

__all__ = ["Keys", "Result", "exit_code", "format_table", "run_suite", "write_json",
           "write_junit"]
