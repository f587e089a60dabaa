"""Cold start: the app against the floor of any Chalice + boto3 Lambda, in fresh interpreters.

    python -m bench.coldstart [--runs 30] [--mode venv|lambda-like|both] [--profile] [--check]

Starts its own DynamoDB Local, creates the tables from infra/ under a fresh prefix and seeds one
meetup. Then alternates fresh interpreters (A, B, B, A, ...):

  A  the app:   `import app`, then `app.app(event, context)` answers one API Gateway proxy event,
                GET /meetups (JSON), as Lambda's runtime would call it;
  B  the floor: a bare Chalice app made in the process, one route that creates one boto3 DynamoDB
                client and does one GetItem, answering the same kind of event.

Measured inside each process with time.perf_counter, from the first statement (before any
import) to the response, and outside as the process's wall time (interpreter start to exit).
Prints medians and the median of the paired ratios A/B (target: at most 1.3), and writes them as
JSON to bench/results/.

Two modes, both by default:
  venv         the work tree and the venv (bytecode cached in __pycache__ as usual);
  lambda-like  the unpacked deployment.zip of `make package`, as on Lambda: only the zip and the
               standard library on the path, and no bytecode written (python -I -S -B), so only
               the .pyc that packaging put in the zip are used.
--profile      runs A once with `python -X importtime` and prints where the import time goes.
--check        exits 1 when the ratio is above the target.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools import dynamodb_local, tables  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET = 1.3
MEETUP_ID = "bench-coldstart"
MARKER = "COLDSTART_RESULT "

# Shared by both children: an API Gateway (REST, proxy) event and a Lambda context.
_EVENT_AND_CONTEXT = r'''
def _event(path):
    return {
        "resource": path, "path": path, "httpMethod": "GET",
        "headers": {"Accept": "application/json", "Host": "bench.execute-api.eu-west-1.amazonaws.com"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": path, "httpMethod": "GET", "path": "/api" + path,
                           "stage": "api", "requestId": "bench-request", "accountId": "123456789012",
                           "apiId": "bench", "identity": {"sourceIp": "127.0.0.1"},
                           "domainName": "bench.execute-api.eu-west-1.amazonaws.com"},
    }


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    aws_request_id = "bench-request"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 30000


def _report(t0, t_import, response):
    import json as _json
    t1 = time.perf_counter()
    print(MARKER + _json.dumps({"import_ms": (t_import - t0) * 1000, "total_ms": (t1 - t0) * 1000,
                                "status": response["statusCode"], "body_bytes": len(response.get("body") or "")}),
          flush=True)
'''

APP_CHILD = r'''
import time
t0 = time.perf_counter()
import app
t_import = time.perf_counter()
PRELUDE
response = app.app(_event("/meetups"), _Context())
_report(t0, t_import, response)
'''

FLOOR_CHILD = r'''
import time
t0 = time.perf_counter()
import json
import os
import boto3
from chalice import Chalice, Response

floor = Chalice(app_name="floor")


@floor.route("/meetups")
def meetups():
    client = boto3.client("dynamodb")
    item = client.get_item(TableName=os.environ["TABLE_PREFIX"] + "meetups",
                           Key={"id": {"S": "MEETUP_ID"}}).get("Item")
    return Response(body=json.dumps({"meetups": [item]}), status_code=200,
                    headers={"Content-Type": "application/json"})


t_import = time.perf_counter()
PRELUDE
response = floor(_event("/meetups"), _Context())
_report(t0, t_import, response)
'''

SEED = r'''
from datetime import timedelta
from chalicelib import catalogue, clock
starts = clock.now() + timedelta(days=30)
catalogue.create_meetup({
    "title": "Koude start", "kind": "regional", "province": "Utrecht", "city": "Utrecht",
    "host": {"name": "Gemeente Utrecht"}, "mode": "in_person", "capacity": 50,
    "starts_at": clock.to_public(starts), "ends_at": clock.to_public(starts + timedelta(hours=2)),
}, meetup_id="MEETUP_ID")
'''


def _child_code(template: str, code_dir: Path | None) -> str:
    prelude = _EVENT_AND_CONTEXT.replace("MARKER", repr(MARKER))
    code = template.replace("PRELUDE", prelude).replace("MEETUP_ID", MEETUP_ID)
    if code_dir is not None:  # lambda-like: only the unpacked zip (and the standard library) on the path
        code = f"import sys\nsys.path.insert(0, {str(code_dir)!r})\n" + code
    return code


def _interpreter(lambda_like: bool) -> list[str]:
    # -I: no user site, no PYTHON* variables; -S: no site-packages; -B: write no .pyc
    return [sys.executable, "-I", "-S", "-B"] if lambda_like else [sys.executable]


def run_child(code: str, env: dict, cwd: Path, lambda_like: bool, extra_flags: tuple = ()) -> dict:
    command = _interpreter(lambda_like) + list(extra_flags) + ["-c", code]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    wall_ms = (time.perf_counter() - started) * 1000
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"child failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    measured = json.loads(lines[-1][len(MARKER):])
    if measured["status"] != 200:
        raise RuntimeError(f"child answered {measured['status']}:\n{result.stdout[-2000:]}")
    measured["wall_ms"] = wall_ms
    measured["stderr"] = result.stderr
    return measured


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0],
            "p90": ordered[max(0, round(0.9 * len(ordered)) - 1)], "max": ordered[-1]}


# --- import profile ---------------------------------------------------------------------------

def parse_importtime(stderr: str) -> list[dict]:
    """The import tree from `-X importtime` (children are printed before their parent)."""
    pending: dict[int, list] = defaultdict(list)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, self_us, cumulative_us, name = (part for part in [line[:12]] + line[12:].split("|", 2))
        depth = len(name) - len(name.lstrip(" "))
        node = {"name": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us),
                "children": pending.pop(depth + 2, [])}
        pending[depth].append(node)
    return pending[min(pending)] if pending else []


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def print_profile(stderr: str) -> dict:
    roots = parse_importtime(stderr)
    by_package = defaultdict(int)
    for node in _walk(roots):
        by_package[node["name"].split(".")[0]] += node["self_us"]
    total = sum(by_package.values())
    print(f"\nImport profile of the app (python -X importtime), {total / 1000:.0f} ms in all:")
    print("  by top-level package (self time):")
    for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {us / 1000:7.1f} ms  {name}")
    print("  heavy imports made by chalicelib modules (cumulative, first import only):")
    heavy = []
    for node in _walk(roots):
        if node["name"].split(".")[0] not in ("chalicelib", "app"):
            continue
        for child in node["children"]:
            if child["name"].split(".")[0] not in ("chalicelib", "app") and child["cumulative_us"] >= 5000:
                heavy.append((child["cumulative_us"], node["name"], child["name"]))
    for us, parent, child in sorted(heavy, reverse=True):
        print(f"    {us / 1000:7.1f} ms  {parent} -> {child}")
    return {"total_ms": total / 1000, "by_package_ms": {k: v / 1000 for k, v in by_package.items()},
            "heavy": [{"ms": us / 1000, "importer": p, "module": c} for us, p, c in sorted(heavy, reverse=True)]}


# --- main -------------------------------------------------------------------------------------

def _git_commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or None


def measure(mode: str, runs_per_side: int, env: dict, work: Path, profile: bool) -> dict:
    """One series of alternating cold starts in `mode` (venv | lambda-like); prints and returns it."""
    lambda_like = mode == "lambda-like"
    code_dir = None
    cwd = ROOT
    if lambda_like:
        from devtools import package
        print("Packaging (as `make package`) to run from deployment.zip ...", flush=True)
        built = package.build(work / "package", quiet=True)
        code_dir = work / "task"
        with zipfile.ZipFile(built.code) as archive:
            archive.extractall(code_dir)
        cwd = code_dir
    app_code = _child_code(APP_CHILD, code_dir)
    floor_code = _child_code(FLOOR_CHILD, code_dir)

    # Warm-up (not counted): fills the OS file cache, and in the venv the bytecode cache.
    for _ in range(2):
        run_child(app_code, env, cwd, lambda_like)
        run_child(floor_code, env, cwd, lambda_like)

    runs = {"app": [], "floor": []}
    label = "lambda-like (unpacked deployment.zip, nothing written)" if lambda_like else "venv"
    print(f"Cold starts, {label}: {runs_per_side} runs of each, alternating ...", flush=True)
    for i in range(runs_per_side):
        for side in (("app", "floor") if i % 2 == 0 else ("floor", "app")):
            measured = run_child(app_code if side == "app" else floor_code, env, cwd, lambda_like)
            measured.pop("stderr")
            runs[side].append(measured)

    result = {"benchmark": "coldstart", "mode": mode, "runs": runs_per_side, "target_ratio": TARGET,
              "python": platform.python_version(), "machine": platform.machine(),
              "commit": _git_commit(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for metric in ("total_ms", "import_ms", "wall_ms"):
        app_values = [r[metric] for r in runs["app"]]
        floor_values = [r[metric] for r in runs["floor"]]
        ratios = [a / b for a, b in zip(app_values, floor_values)]
        result[metric] = {"app": summary(app_values), "floor": summary(floor_values),
                          "ratio_median_of_pairs": statistics.median(ratios),
                          "ratio_of_medians": statistics.median(app_values) / statistics.median(floor_values)}
    result["raw"] = runs

    print()
    print(f"{'[' + mode + ']':34}{'app (A)':>12}{'floor (B)':>12}{'A/B':>8}")
    labels = {"total_ms": "in process: import + 1st response", "import_ms": "in process: imports only",
              "wall_ms": "process wall time"}
    for metric, text in labels.items():
        m = result[metric]
        print(f"{text:34}{m['app']['median']:10.0f}ms{m['floor']['median']:10.0f}ms"
              f"{m['ratio_median_of_pairs']:7.2f}x")
    ratio = result["total_ms"]["ratio_median_of_pairs"]
    verdict = "within" if ratio <= TARGET else "ABOVE"
    print(f"Median ratio A/B (import + first response): {ratio:.2f}x, {verdict} the target of {TARGET}x; "
          f"the app's extra cold start: "
          f"{result['total_ms']['app']['median'] - result['total_ms']['floor']['median']:.0f} ms (median)")

    if profile:
        profiled = run_child(app_code, env, cwd, lambda_like, extra_flags=("-X", "importtime"))
        result["import_profile"] = print_profile(profiled["stderr"])

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"coldstart-{mode}-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"coldstart-{mode}-latest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"Results: {out.relative_to(ROOT)}\n", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each side (default 30)")
    parser.add_argument("--mode", choices=("venv", "lambda-like", "both"), default="both",
                        help="venv: from the work tree; lambda-like: from the unpacked deployment.zip, "
                             "writing no bytecode, as on Lambda (default: both)")
    parser.add_argument("--profile", action="store_true", help="print an import profile of the app")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when a ratio is above {TARGET}")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="klassen-coldstart-"))
    ddb = dynamodb_local.start(log_path=work / "dynamodb.log")
    try:
        prefix = f"bench-{secrets.token_hex(4)}-"
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "PYTHON"))}
        env.update(dynamodb_local.local_aws_environment(ddb.endpoint))
        env.update({"STAGE": "local", "TABLE_PREFIX": prefix, "MAIL_BACKEND": "file",
                    "MAIL_DIR": str(work / "mail"), "SIGNING_SECRET": "bench",
                    "POWERTOOLS_SERVICE_NAME": "klassen-meetups"})
        import boto3
        client = boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name=env["AWS_DEFAULT_REGION"],
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        tables.create_tables(prefix, client)
        seeded = subprocess.run([sys.executable, "-c", SEED.replace("MEETUP_ID", MEETUP_ID)], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{seeded.stderr}")

        modes = ("venv", "lambda-like") if args.mode == "both" else (args.mode,)
        results = [measure(mode, args.runs, env, work, args.profile) for mode in modes]
        over = [r["mode"] for r in results if r["total_ms"]["ratio_median_of_pairs"] > TARGET]
        return 1 if args.check and over else 0
    finally:
        ddb.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
