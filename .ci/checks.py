"""What the Python drivers of .ci share: PASS/FAIL checks with their tally, figures, free ports."""

import socket

results = {"passed": 0, "failed": 0}
figures = {}


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + (f" ({detail})" if detail else ""), flush=True)
    results["passed" if ok else "failed"] += 1
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
