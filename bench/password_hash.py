"""Cost of one password hash (scrypt) per parameter set: time and peak memory.

Each parameter set runs in a fresh child process so its peak RSS is its own (the function's
share of a Lambda container's memory). Prints one line per set and the load average.

    .venv/bin/python -m bench.password_hash [--rounds 5] [--log2-n 15,16,17]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = """
import json, resource, statistics, sys, time
from chatflow.domain.passwords import ScryptParams, hash_password, verify_password
params = ScryptParams.from_log2(int(sys.argv[1]), 8, 1)
rounds = int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hashes, verifies = [], []
for i in range(rounds):
    t = time.perf_counter(); stored = hash_password(f"correct horse {i}", params)
    hashes.append(time.perf_counter() - t)
    t = time.perf_counter(); assert verify_password(f"correct horse {i}", stored)
    verifies.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "n": params.n, "memory_mib": params.memory_bytes / 2**20,
    "hash_median_s": statistics.median(hashes), "hash_min_s": min(hashes),
    "verify_median_s": statistics.median(verifies),
    "peak_rss_mib": after / 1024, "rss_growth_mib": (after - before) / 1024,
}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log2-n", default="15,16,17")
    args = parser.parse_args(argv)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for log2_n in (int(x) for x in args.log2_n.split(",")):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(log2_n), str(args.rounds)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        r = json.loads(out.stdout)
        print(
            f"N=2^{log2_n} r=8 p=1: scrypt needs {r['memory_mib']:.0f} MiB; hash median "
            f"{r['hash_median_s']:.3f} s (min {r['hash_min_s']:.3f}), verify median "
            f"{r['verify_median_s']:.3f} s; process peak RSS {r['peak_rss_mib']:.0f} MiB "
            f"(+{r['rss_growth_mib']:.0f} MiB while hashing)"
        )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
