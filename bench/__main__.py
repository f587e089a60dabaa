"""`make bench`: runs every benchmark there is, in order, each in its own interpreter.

    python -m bench [NAME ...]      # NAME: coldstart, signup, waitlist, scaling, digest (default: all that exist)

Fails (exit 1) if any benchmark fails. Results are printed and written under bench/results/.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ORDER = ("coldstart", "signup", "waitlist", "scaling", "digest")
# Arguments a benchmark gets here: the sign-up rush on one app process and on four.
ARGS = {"signup": ["--processes", "1,4"]}


def main(argv: list[str] | None = None) -> int:
    wanted = list(argv if argv is not None else sys.argv[1:])
    unknown = [name for name in wanted if name not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ORDER)}", file=sys.stderr)
        return 2
    names = [name for name in ORDER if (not wanted or name in wanted) and (BENCH / f"{name}.py").exists()]
    if not names:
        print("no benchmark to run", file=sys.stderr)
        return 1
    failed = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}", *ARGS.get(name, [])], cwd=ROOT).returncode
        print(f"=== bench.{name}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
              f"in {time.monotonic() - started:.0f} s ===", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
