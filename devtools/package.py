"""`make package`: the deployable SAM template and Lambda zip, in build/.

    python -m devtools.package [--out DIR] [--stage prod]

1. Stages a copy of the project in a temporary directory (app.py, chalicelib/, requirements.txt,
   .chalice/) and copies templates/ into its vendor/templates/. Chalice puts the contents of
   vendor/ at the root of deployment.zip, so in Lambda the templates are at /var/task/templates,
   which is <dir of chalicelib>/../templates, where chalicelib/rendering.py looks: no code change.
   Staging instead of a vendor/ in the work tree: nothing to clean up after a failure, and two
   packagings (a test and `make package`) can run at once. The stage's .chalice/deployments is a
   link to the project's own, so Chalice's cache of built dependencies is reused.
2. Runs `chalice package --stage prod --merge-template infra/resources.json OUT`. Chalice's merge
   is a deep merge of dicts; a list or a value from infra/ replaces Chalice's whole.
3. Mends the template (`mend_template`): one Chalice bug, and the stream ARNs app.py can only
   name with a placeholder. Then checks the merged template (`check_template`): it fails on
   anything that would not deploy as meant.
4. Adds compiled bytecode to deployment.zip (`precompile`). Lambda unpacks the zip to a read-only
   /var/task, and Chalice's zip holds no .pyc, so without this every cold start compiles every
   module it imports (botocore, pynamodb, ...) from source: about a second before the first
   request. The .pyc are "unchecked-hash" ones (PEP 552): used as they are, whatever the
   sources' timestamps in the zip. They are made by this interpreter, which is also the version
   Chalice chose as the Lambda runtime (python3.X follows the packaging interpreter).

Why every function gets the role and the environment, including functions added later
(@app.schedule, @app.on_dynamodb_record), while no function is named here or in infra/:
* Role: Chalice gives every function the one role it generates, `DefaultRole`.
  infra/resources.json replaces that role's trust and policy documents with least-privilege ones
  (lists are replaced by the merge, not appended to). A function given its own `iam_role_arn` or
  `iam_policy_file` in .chalice/config.json would get another role: `check_template` refuses it.
* Environment: the static values are in .chalice/config.json (Chalice copies a stage's variables
  to every function). Values that depend on the stack (TABLE_PREFIX is "<stack name>-", the SSM
  parameter's name, ...) cannot be written in Chalice's config, so they are in SAM's
  `Globals.Function` in infra/resources.json, which SAM applies to every AWS::Serverless::Function.
  `check_template` refuses a function whose own variables would shadow one of those.

Stream event sources (@app.on_dynamodb_record): Chalice needs the stream's ARN in app.py, but the
ARN only exists once the stack's table does. app.py names it with a placeholder constant
(`OUTBOX_STREAM_PLACEHOLDER`); `mend_template` replaces every event source whose `Stream` is that
placeholder by `{"Fn::GetAtt": ["OutboxTable", "StreamArn"]}` (STREAM_PLACEHOLDERS maps the
constant to its table; the value is read from app.py's source, without importing the app).
`check_template` refuses any placeholder left in the template, any DynamoDB event source that is
not the stream of one of the stack's tables with a StreamSpecification, and a role that may not
read that stream (STREAM_ACTIONS, on that stream's ARN only) or may read a stream no function
consumes.
"""
from __future__ import annotations

import argparse
import ast
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra" / "resources.json"
DEFAULT_OUT = ROOT / "build"

ROLE = {"Fn::GetAtt": ["DefaultRole", "Arn"]}
TABLE_PREFIX = {"Fn::Sub": "${AWS::StackName}-"}
REQUIRED_ENVIRONMENT = ("STAGE", "TABLE_PREFIX", "MAIL_BACKEND", "MAIL_DELIVERY", "SIGNING_SECRET_PARAMETER",
                        "PUBLIC_BASE_URL", "MAIL_FROM")
# Deployed, the outbox table's stream delivers mail ("background" would use a thread, which Lambda
# freezes between invocations; "inline" would send within the request).
MAIL_DELIVERY = "stream"
DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:Query", "dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"}
# What Lambda's event source mapping needs to read a DynamoDB stream for a function (the actions of
# the managed policy AWSLambdaDynamoDBExecutionRole). Granted on the consumed stream's ARN only,
# never on Resource "*" (which check_template refuses): AWS's example policy for a Lambda function
# that processes a table's stream, and SAM's DynamoDBStreamReadPolicy, scope ListStreams to the
# table's streams too; the mapping is given the stream's ARN, it has no account's streams to list.
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                  "dynamodb:ListStreams"}
# Constants of app.py that stand for a stream's ARN, and the table (in infra/) whose stream it is.
STREAM_PLACEHOLDERS = {"OUTBOX_STREAM_PLACEHOLDER": "OutboxTable"}
# PUBLIC_BASE_URL while Chalice imports app.py (see build).
PACKAGING_PUBLIC_BASE_URL = "https://packaging.invalid"
FUNCTION = "AWS::Serverless::Function"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


@dataclass(frozen=True)
class Package:
    template: Path
    code: Path


# --- building ----------------------------------------------------------------------------------

def _stage_project(project: Path, stage_dir: Path) -> None:
    shutil.copy2(project / "app.py", stage_dir / "app.py")
    shutil.copy2(project / "requirements.txt", stage_dir / "requirements.txt")
    if (project / "chalicelib").is_dir():
        shutil.copytree(project / "chalicelib", stage_dir / "chalicelib", ignore=_IGNORE)
    shutil.copytree(project / ".chalice", stage_dir / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "venv", "__pycache__"))
    deployments = project / ".chalice" / "deployments"
    deployments.mkdir(exist_ok=True)
    (stage_dir / ".chalice" / "deployments").symlink_to(deployments, target_is_directory=True)
    if (project / "templates").is_dir():
        shutil.copytree(project / "templates", stage_dir / "vendor" / "templates", ignore=_IGNORE)


def build(out: Path = DEFAULT_OUT, *, stage: str = "prod", project: Path = ROOT, infra: Path = INFRA,
          quiet: bool = False, compile_bytecode: bool = True) -> Package:
    """Package the app for `stage` into `out` (sam.json and deployment.zip); raises on failure."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sam.json", "deployment.zip"):
        (out / name).unlink(missing_ok=True)
    env = dict(os.environ)
    # Chalice needs a region to name Lambda's service principal; the template itself uses
    # ${AWS::Region}, so any region gives the same output.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "eu-west-1")
    # Chalice imports app.py to package it, with the stage's variables (STAGE=prod), and the app
    # reads its settings on import: outside STAGE=local they need a PUBLIC_BASE_URL, which only the
    # stack gives (Globals.Function). Any value does for the import, which only registers the
    # functions; it does not reach the template (check_template makes sure).
    env["PUBLIC_BASE_URL"] = PACKAGING_PUBLIC_BASE_URL
    with tempfile.TemporaryDirectory(prefix="klassen-package-") as tmp:
        stage_dir = Path(tmp) / "project"
        stage_dir.mkdir()
        _stage_project(Path(project), stage_dir)
        command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
                   "--project-dir", str(stage_dir), "package", "--stage", stage,
                   "--merge-template", str(Path(infra).resolve()), str(out)]
        result = subprocess.run(command, cwd=stage_dir, env=env, capture_output=True, text=True)
        if not quiet or result.returncode != 0:
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"chalice package failed with exit code {result.returncode}")
    package = Package(template=out / "sam.json", code=out / "deployment.zip")
    template = json.loads(package.template.read_text())
    streams = stream_placeholders(Path(project) / "app.py")
    if mend_template(template, streams):
        package.template.write_text(json.dumps(template, indent=2, separators=(",", ": ")) + "\n")
    problems = check_template(template, streams)
    if problems:
        raise RuntimeError("The packaged template is not as it must be:\n  " + "\n  ".join(problems))
    if compile_bytecode:
        runtimes = {f["Properties"].get("Runtime") for f in functions(template).values()}
        here = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if runtimes != {here}:
            raise RuntimeError(f"cannot compile bytecode for {runtimes} with {here}")
        count = precompile(package.code)
        if not quiet:
            print(f"Added {count} compiled modules (unchecked-hash .pyc for {here}) to {package.code.name}")
    return package


def precompile(code_zip: Path) -> int:
    """Add __pycache__/*.pyc for every module in the zip; returns how many were added."""
    with tempfile.TemporaryDirectory(prefix="klassen-pyc-") as tmp:
        tree = Path(tmp) / "task"
        with zipfile.ZipFile(code_zip) as archive:
            entries = archive.infolist()
            if any("__pycache__/" in e.filename for e in entries):
                return 0
            archive.extractall(tree)
        compileall.compile_dir(str(tree), ddir="/var/task", quiet=2, workers=0,
                               invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
        compiled = sorted(p for p in tree.rglob("*.pyc"))
        rebuilt = code_zip.with_suffix(".tmp.zip")
        with zipfile.ZipFile(code_zip) as source, \
                zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in entries:
                target.writestr(entry, source.read(entry.filename))
            for path in compiled:
                target.write(path, path.relative_to(tree).as_posix())
        rebuilt.replace(code_zip)
        return len(compiled)


def stream_placeholders(app_py: Path = ROOT / "app.py") -> dict[str, str]:
    """{placeholder ARN: table resource} for the STREAM_PLACEHOLDERS constants that app.py assigns
    a string to at module level. Read from the source: importing app.py would import the whole
    app (and read its settings)."""
    try:
        tree = ast.parse(Path(app_py).read_text(), filename=str(app_py))
    except FileNotFoundError:
        return {}
    found = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
        value = getattr(node, "value", None)
        for target in targets:
            if isinstance(target, ast.Name) and target.id in STREAM_PLACEHOLDERS and \
                    isinstance(value, ast.Constant) and isinstance(value.value, str):
                found[value.value] = STREAM_PLACEHOLDERS[target.id]
    return found


def stream_arn(table: str) -> dict:
    return {"Fn::GetAtt": [table, "StreamArn"]}


def stream_table(resource) -> str | None:
    """The table of {"Fn::GetAtt": [<table>, "StreamArn"]} (how this stack names a stream), else None."""
    if not isinstance(resource, dict) or list(resource) != ["Fn::GetAtt"]:
        return None
    target = resource["Fn::GetAtt"]
    if isinstance(target, str):  # the short form "Table.StreamArn"
        target = target.split(".", 1)
    if isinstance(target, list) and len(target) == 2 and target[1] == "StreamArn" and isinstance(target[0], str):
        return target[0]
    return None


def stream_events(template: dict) -> list[tuple[str, str, dict]]:
    """(function, event name, event properties) of every DynamoDB stream event source."""
    return [(name, event_name, event.get("Properties", {}))
            for name, function in functions(template).items()
            for event_name, event in (function.get("Properties", {}).get("Events") or {}).items()
            if event.get("Type") == "DynamoDB"]


def mend_template(template: dict, streams: dict[str, str] | None = None) -> bool:
    """Two mends; returns whether anything changed.
    * Chalice 1.34 names the API handler's log group after `ApiHandler` but renames the function
      itself to `APIHandler` (aws/chalice#2079): point every log group at a function that exists.
    * A stream event source whose `Stream` is a placeholder of app.py (`streams`, by default read
      from this project's app.py) gets the stream of its table: {"Fn::GetAtt": [table, "StreamArn"]}."""
    streams = stream_placeholders() if streams is None else streams
    resources = template.get("Resources", {})
    by_lower = {name.lower(): name for name, res in resources.items() if res.get("Type") == FUNCTION}
    changed = False
    for res in resources.values():
        if res.get("Type") != "AWS::Logs::LogGroup":
            continue
        name = res.get("Properties", {}).get("LogGroupName")
        if not (isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str)):
            continue
        sub = name["Fn::Sub"]
        prefix = "/aws/lambda/${"
        if sub.startswith(prefix) and sub.endswith("}"):
            target = sub[len(prefix):-1]
            if target not in resources and target.lower() in by_lower:
                name["Fn::Sub"] = prefix + by_lower[target.lower()] + "}"
                changed = True
    for _, _, props in stream_events(template):
        stream = props.get("Stream")
        if isinstance(stream, str) and stream in streams:
            props["Stream"] = stream_arn(streams[stream])
            # Only new items wake the function: claiming and marking a message sent also write
            # stream records, which the handler would read only to skip them.
            props.setdefault("FilterCriteria", {"Filters": [{"Pattern": json.dumps({"eventName": ["INSERT"]})}]})
            changed = True
    return changed


# --- checking ----------------------------------------------------------------------------------

def functions(template: dict) -> dict[str, dict]:
    return {name: res for name, res in template.get("Resources", {}).items() if res.get("Type") == FUNCTION}


def global_environment(template: dict) -> dict:
    return template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})


def own_environment(function: dict) -> dict:
    return function.get("Properties", {}).get("Environment", {}).get("Variables", {})


def effective_environment(template: dict, function: dict) -> dict:
    """The variables a function gets once SAM has applied Globals (the function's own win)."""
    return {**global_environment(template), **own_environment(function)}


def iam_statements(template: dict) -> list[dict]:
    statements = []
    for res in template.get("Resources", {}).values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::IAM::Role":
            documents = [p.get("PolicyDocument", {}) for p in props.get("Policies", [])]
        elif res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props.get("PolicyDocument", {})]
        else:
            continue
        for document in documents:
            found = document.get("Statement", [])
            statements.extend(found if isinstance(found, list) else [found])
    return statements


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check_template(template: dict, streams: dict[str, str] | None = None) -> list[str]:
    """What is wrong with a merged template; an empty list when nothing is. `streams`: the
    placeholders of app.py (`stream_placeholders`), by default read from this project's app.py."""
    streams = stream_placeholders() if streams is None else streams
    problems = []
    resources = template.get("Resources", {})
    text = json.dumps(template)
    if PACKAGING_PUBLIC_BASE_URL in text:
        problems.append(f"the template holds {PACKAGING_PUBLIC_BASE_URL}, the URL only meant for importing app.py")
    for placeholder in streams:
        if placeholder in text:
            problems.append(f"the template still holds app.py's placeholder {placeholder}: "
                            "mend_template did not replace it")
    for name, res in resources.items():
        if "Type" not in res:
            problems.append(f"{name} has no Type: infra/resources.json changes a resource Chalice did not make")
    for name, res in resources.items():
        group = res.get("Properties", {}).get("LogGroupName") if res.get("Type") == "AWS::Logs::LogGroup" else None
        if isinstance(group, dict) and isinstance(group.get("Fn::Sub"), str):
            target = group["Fn::Sub"].removeprefix("/aws/lambda/${").removesuffix("}")
            if target not in resources:
                problems.append(f"log group {name} names a function that does not exist: {target}")
    found = functions(template)
    if not found:
        problems.append("no AWS::Serverless::Function in the template")
    roles = [name for name, res in resources.items() if res.get("Type") == "AWS::IAM::Role"]
    if roles != ["DefaultRole"]:
        problems.append(f"expected one IAM role, DefaultRole; found {roles}")
    shared = set(global_environment(template))
    for name, function in found.items():
        props = function.get("Properties", {})
        if props.get("Role") != ROLE:
            problems.append(f"{name} does not run as DefaultRole: {props.get('Role')!r}")
        if "Policies" in props:
            problems.append(f"{name} has its own Policies, which would give it another role")
        shadowed = sorted(shared & set(own_environment(function)))
        if shadowed:
            problems.append(f"{name} overrides {shadowed} of Globals.Function in infra/resources.json")
        env = effective_environment(template, function)
        missing = [key for key in REQUIRED_ENVIRONMENT if key not in env]
        if missing:
            problems.append(f"{name} lacks environment variables {missing}")
        if env.get("TABLE_PREFIX") != TABLE_PREFIX:
            problems.append(f"{name} has TABLE_PREFIX {env.get('TABLE_PREFIX')!r}, not {TABLE_PREFIX}")
        if "MAIL_DELIVERY" in env and env["MAIL_DELIVERY"] != MAIL_DELIVERY:
            problems.append(f"{name} has MAIL_DELIVERY {env['MAIL_DELIVERY']!r}, not {MAIL_DELIVERY!r}")

    statements = iam_statements(template)
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement.get("Action", [])):
            if "*" in action:
                problems.append(f"IAM action with a wildcard: {action}")
            if action.lower() == "dynamodb:scan":
                problems.append("IAM allows dynamodb:Scan")
            if action.startswith("dynamodb:") and action not in DYNAMODB_ACTIONS | STREAM_ACTIONS:
                problems.append(f"IAM allows {action}, which the code does not need")
        for resource in as_list(statement.get("Resource", [])):
            if resource == "*":
                problems.append(f"IAM statement {statement.get('Sid', '')!r} on Resource '*'")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"IAM statement {statement.get('Sid', '')!r} uses NotAction/NotResource")
        actions = set(as_list(statement.get("Action", [])))
        resources_of = as_list(statement.get("Resource", []))
        if actions & STREAM_ACTIONS:
            if actions - STREAM_ACTIONS:
                problems.append(f"IAM statement {statement.get('Sid', '')!r} mixes stream and other actions")
            not_streams = [r for r in resources_of if stream_table(r) is None]
            if not_streams:
                problems.append(f"IAM statement {statement.get('Sid', '')!r} allows stream actions on "
                                f"{not_streams}, not only on {{'Fn::GetAtt': [<table>, 'StreamArn']}}")
        elif any(stream_table(r) for r in resources_of):
            problems.append(f"IAM statement {statement.get('Sid', '')!r} allows {sorted(actions)} on a stream")

    # Every stream event source reads the stream of one of the stack's tables, which the role may read.
    consumed = set()
    for name, event_name, props in stream_events(template):
        stream = props.get("Stream")
        table = stream_table(stream)
        if table is None or resources.get(table, {}).get("Type") != "AWS::DynamoDB::Table":
            problems.append(f"{name}'s event source {event_name} reads {stream!r}, not the stream of one "
                            "of the stack's tables ({'Fn::GetAtt': [<table>, 'StreamArn']})")
            continue
        consumed.add(table)
        view = resources[table].get("Properties", {}).get("StreamSpecification", {}).get("StreamViewType")
        if not view:
            problems.append(f"{name} reads the stream of table {table}, which has no StreamSpecification")
        allowed = {action for statement in statements if statement.get("Effect") == "Allow"
                   and table in {stream_table(r) for r in as_list(statement.get("Resource", []))}
                   for action in as_list(statement.get("Action", []))}
        if STREAM_ACTIONS - allowed:
            problems.append(f"the role may not {sorted(STREAM_ACTIONS - allowed)} on the stream of table "
                            f"{table}, which {name} reads")
    granted = {stream_table(r) for statement in statements for r in as_list(statement.get("Resource", []))}
    for table in sorted(granted - consumed - {None}):
        problems.append(f"the role may read the stream of {table}, which no function consumes")

    covered = [resource for statement in statements
               if any(str(action) in DYNAMODB_ACTIONS for action in as_list(statement.get("Action", [])))
               for resource in as_list(statement.get("Resource", []))]
    for name, res in resources.items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        if {"Fn::GetAtt": [name, "Arn"]} not in covered:
            problems.append(f"the role may not use table {name}")
        props = res.get("Properties", {})
        if (props.get("GlobalSecondaryIndexes") or props.get("LocalSecondaryIndexes")) and \
                {"Fn::Sub": "${%s.Arn}/index/*" % name} not in covered:
            problems.append(f"the role may not query the indexes of table {name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.package", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: build/)")
    parser.add_argument("--stage", default="prod", help="Chalice stage (default: prod)")
    parser.add_argument("--no-bytecode", action="store_true", help="leave compiled bytecode out of the zip")
    args = parser.parse_args(argv)
    try:
        package = build(args.out, stage=args.stage, compile_bytecode=not args.no_bytecode)
    except RuntimeError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    size = package.code.stat().st_size / 1024 / 1024
    print(f"\nTemplate: {package.template}\nCode:     {package.code} ({size:.1f} MiB)\n"
          "Deploy:   see docs/README-packaging.md (aws cloudformation package, then deploy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
