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

Roles and environment:
* Role: Chalice gives every function the one role it generates, `DefaultRole`. infra/resources.json
  instead gives each function its own least-privilege role (`"<Function>": {"Properties": {"Role":
  ...}}`, deep-merged into Chalice's function), and `mend_template` drops DefaultRole once no
  function uses it. `check_template` refuses a function without a role of its own (a function added
  later must get one), a shared role, an API role that may write the admin tokens table or read a
  stream, and much more (see its sections).
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
not the stream of one of the stack's tables with a StreamSpecification, a consumer whose role may
not read that stream (STREAM_ACTIONS, on that stream's ARN only) and a role that may read a stream
its function does not consume. SNS event sources (@app.on_sns_message) work the same way with
TOPIC_PLACEHOLDERS: the placeholder becomes {"Ref": <topic>}.
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

# Chalice's generated role, which every function would get; the stack gives each function its own.
CHALICE_ROLE = "DefaultRole"
TABLE_PREFIX = {"Fn::Sub": "${AWS::StackName}-"}
REQUIRED_ENVIRONMENT = ("STAGE", "TABLE_PREFIX", "MAIL_BACKEND", "MAIL_DELIVERY", "SIGNING_SECRET_PARAMETER",
                        "PUBLIC_BASE_URL", "MAIL_FROM")
# Deployed, the outbox table's stream delivers mail ("background" would use a thread, which Lambda
# freezes between invocations; "inline" would send within the request).
MAIL_DELIVERY = "stream"
# The DynamoDB item actions the code uses (transactions are authorised per item as Put/Update/Delete/
# ConditionCheckItem). Never BatchWriteItem, DescribeTable or Scan.
DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:Query", "dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem"}  # BatchWriteItem: the retention job deletes in batches
WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
# The API function (the one whose handler is the Chalice app) only reads these tables: admin tokens
# are created by `python -m chalicelib.admin`, run with an operator's credentials.
API_HANDLER = "app.app"
READ_ONLY_FOR_API = {"AdminTokensTable"}
# Mail: SendRawEmail only (mail.SesBackend), on named identities, with a ses:FromAddress condition.
SES_ACTIONS = {"ses:SendRawEmail"}
# What Lambda's event source mapping needs to read a DynamoDB stream for a function (the actions of
# the managed policy AWSLambdaDynamoDBExecutionRole). Granted on the consumed stream's ARN only,
# never on Resource "*" (which check_template refuses): AWS's example policy for a Lambda function
# that processes a table's stream, and SAM's DynamoDBStreamReadPolicy, scope ListStreams to the
# table's streams too; the mapping is given the stream's ARN, it has no account's streams to list.
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                  "dynamodb:ListStreams"}
# Constants of app.py that stand for a stream's ARN, and the table (in infra/) whose stream it is.
STREAM_PLACEHOLDERS = {"OUTBOX_STREAM_PLACEHOLDER": "OutboxTable", "JOBS_STREAM_PLACEHOLDER": "JobsTable"}
# Constants of app.py that stand for an SNS topic's ARN (@app.on_sns_message), and the topic (in infra/).
TOPIC_PLACEHOLDERS = {"MAIL_EVENTS_TOPIC_PLACEHOLDER": "MailEventsTopic"}
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
    topics = topic_placeholders(Path(project) / "app.py")
    if mend_template(template, streams, topics):
        package.template.write_text(json.dumps(template, indent=2, separators=(",", ": ")) + "\n")
    problems = check_template(template, streams, topics)
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
    return _placeholders(app_py, STREAM_PLACEHOLDERS)


def topic_placeholders(app_py: Path = ROOT / "app.py") -> dict[str, str]:
    """{placeholder ARN: topic resource} for the TOPIC_PLACEHOLDERS constants of app.py."""
    return _placeholders(app_py, TOPIC_PLACEHOLDERS)


def _placeholders(app_py: Path, names: dict[str, str]) -> dict[str, str]:
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
            if isinstance(target, ast.Name) and target.id in names and \
                    isinstance(value, ast.Constant) and isinstance(value.value, str):
                found[value.value] = names[target.id]
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


def sns_events(template: dict) -> list[tuple[str, str, dict]]:
    """(function, event name, event properties) of every SNS event source."""
    return [(name, event_name, event.get("Properties", {}))
            for name, function in functions(template).items()
            for event_name, event in (function.get("Properties", {}).get("Events") or {}).items()
            if event.get("Type") == "SNS"]


def mend_template(template: dict, streams: dict[str, str] | None = None,
                  topics: dict[str, str] | None = None) -> bool:
    """The mends; returns whether anything changed.
    * Chalice 1.34 names the API handler's log group after `ApiHandler` but renames the function
      itself to `APIHandler` (aws/chalice#2079): point every log group at a function that exists.
    * A stream event source whose `Stream` is a placeholder of app.py (`streams`, by default read
      from this project's app.py) gets the stream of its table: {"Fn::GetAtt": [table, "StreamArn"]}.
    * An SNS event source whose `Topic` is a placeholder of app.py (`topics`) gets {"Ref": topic}.
    * Chalice's own role (DefaultRole, with the policy Chalice generates) goes once no function
      uses it: infra/resources.json gives every function its own role."""
    streams = stream_placeholders() if streams is None else streams
    topics = topic_placeholders() if topics is None else topics
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
    for _, _, props in sns_events(template):
        topic = props.get("Topic")
        if isinstance(topic, str) and topic in topics:
            props["Topic"] = {"Ref": topics[topic]}
            changed = True
    if CHALICE_ROLE in resources and not any(
            f.get("Properties", {}).get("Role") == {"Fn::GetAtt": [CHALICE_ROLE, "Arn"]} for f in functions(template).values()):
        del resources[CHALICE_ROLE]
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


def _documents(res: dict) -> list[dict]:
    props = res.get("Properties", {})
    if res.get("Type") == "AWS::IAM::Role":
        return [p.get("PolicyDocument", {}) for p in props.get("Policies", [])]
    if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        return [props.get("PolicyDocument", {})]
    return []


def _statements(documents: list[dict]) -> list[dict]:
    statements = []
    for document in documents:
        found = document.get("Statement", [])
        statements.extend(found if isinstance(found, list) else [found])
    return statements


def iam_statements(template: dict) -> list[dict]:
    """Every statement of every role and policy of the template."""
    return _statements([d for res in template.get("Resources", {}).values() for d in _documents(res)])


def role_statements(template: dict, role: str) -> list[dict]:
    """The statements of one role (its inline policies)."""
    return _statements(_documents(template.get("Resources", {}).get(role, {})))


def role_of(function: dict) -> str | None:
    """The role resource a function runs as ({"Fn::GetAtt": [<role>, "Arn"]}), else None."""
    role = function.get("Properties", {}).get("Role")
    if isinstance(role, dict) and list(role) == ["Fn::GetAtt"] and isinstance(role["Fn::GetAtt"], list) \
            and len(role["Fn::GetAtt"]) == 2 and role["Fn::GetAtt"][1] == "Arn":
        return role["Fn::GetAtt"][0]
    return None


def function_roles(template: dict) -> dict[str, str | None]:
    """{function: its role resource}."""
    return {name: role_of(function) for name, function in functions(template).items()}


def allowed(statements: list[dict], resource) -> set[str]:
    """The actions `statements` allow on exactly `resource` (as the template writes it)."""
    return {action for statement in statements if statement.get("Effect") == "Allow"
            and resource in as_list(statement.get("Resource", [])) for action in as_list(statement.get("Action", []))}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _swagger_paths(template: dict) -> set[str]:
    body = template.get("Resources", {}).get("RestAPI", {}).get("Properties", {}).get("DefinitionBody", {})
    return set((body or {}).get("paths", {}))


def check_template(template: dict, streams: dict[str, str] | None = None,
                   topics: dict[str, str] | None = None) -> list[str]:
    """What is wrong with a merged template; an empty list when nothing is. `streams`/`topics`: the
    placeholders of app.py (`stream_placeholders`, `topic_placeholders`), by default read from this
    project's app.py."""
    streams = stream_placeholders() if streams is None else streams
    topics = topic_placeholders() if topics is None else topics
    problems = []
    resources = template.get("Resources", {})
    text = json.dumps(template)
    if PACKAGING_PUBLIC_BASE_URL in text:
        problems.append(f"the template holds {PACKAGING_PUBLIC_BASE_URL}, the URL only meant for importing app.py")
    for placeholder in list(streams) + list(topics):
        if placeholder in text:
            problems.append(f"the template still holds app.py's placeholder {placeholder}: "
                            "mend_template did not replace it")
    for name, res in resources.items():
        if "Type" not in res:
            problems.append(f"{name} has no Type: infra/resources.json changes a resource Chalice did not make")
    for name, res in resources.items():
        group = res.get("Properties", {}).get("LogGroupName") if res.get("Type") == "AWS::Logs::LogGroup" else None
        if isinstance(group, dict) and isinstance(group.get("Fn::Sub"), str) and group["Fn::Sub"].startswith("/aws/lambda/"):
            target = group["Fn::Sub"].removeprefix("/aws/lambda/${").removesuffix("}")
            if target not in resources:
                problems.append(f"log group {name} names a function that does not exist: {target}")
    found = functions(template)
    if not found:
        problems.append("no AWS::Serverless::Function in the template")

    # --- a role per function ------------------------------------------------------------------
    if CHALICE_ROLE in resources:
        problems.append(f"Chalice's {CHALICE_ROLE} is still in the template: every function needs its own role")
    roles = function_roles(template)
    by_role: dict[str, list[str]] = {}
    for name, role in roles.items():
        if role is None or resources.get(role, {}).get("Type") != "AWS::IAM::Role" or role == CHALICE_ROLE:
            problems.append(f"{name} has no role of its own (Role {found[name]['Properties'].get('Role')!r}): "
                            "give it one in infra/resources.json (Resources.<function>.Properties.Role)")
            continue
        by_role.setdefault(role, []).append(name)
    for role, users in by_role.items():
        if len(users) > 1:
            problems.append(f"role {role} is shared by {sorted(users)}: one role per function")
    for name, res in resources.items():
        if res.get("Type") == "AWS::IAM::Role" and name not in by_role and name != CHALICE_ROLE:
            problems.append(f"role {name} is used by no function")

    shared = set(global_environment(template))
    for name, function in found.items():
        props = function.get("Properties", {})
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
        if props.get("Handler") != API_HANDLER and not isinstance(props.get("ReservedConcurrentExecutions"), int):
            problems.append(f"{name} has no ReservedConcurrentExecutions: a flood of requests could starve it")

    # --- every statement -------------------------------------------------------------------------
    statements = iam_statements(template)
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", "")
        actions = set(as_list(statement.get("Action", [])))
        resources_of = as_list(statement.get("Resource", []))
        for action in actions:
            if "*" in action:
                problems.append(f"IAM action with a wildcard: {action}")
            if action.lower() == "dynamodb:scan":
                problems.append("IAM allows dynamodb:Scan")
            if action.startswith("dynamodb:") and action not in DYNAMODB_ACTIONS | STREAM_ACTIONS:
                problems.append(f"IAM allows {action}, which the code does not need")
            if action.startswith("ses:") and action not in SES_ACTIONS:
                problems.append(f"IAM allows {action}, which the code does not need (mail.SesBackend: SendRawEmail)")
        for resource in resources_of:
            written = json.dumps(resource)
            if resource == "*":
                problems.append(f"IAM statement {sid!r} on Resource '*'")
            elif "*" in written and not written.endswith(('/index/*"}', '-*:*"}')):
                # Only a table's indexes and a function's own log streams are named with a wildcard.
                problems.append(f"IAM statement {sid!r} on a wildcard resource: {resource!r}")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"IAM statement {sid!r} uses NotAction/NotResource")
        if actions & SES_ACTIONS:
            condition = statement.get("Condition", {}).get("StringEquals", {})
            if "ses:FromAddress" not in condition:
                problems.append(f"IAM statement {sid!r} may send mail without a ses:FromAddress condition")
        if actions & STREAM_ACTIONS:
            if actions - STREAM_ACTIONS:
                problems.append(f"IAM statement {sid!r} mixes stream and other actions")
            not_streams = [r for r in resources_of if stream_table(r) is None]
            if not_streams:
                problems.append(f"IAM statement {sid!r} allows stream actions on "
                                f"{not_streams}, not only on {{'Fn::GetAtt': [<table>, 'StreamArn']}}")
        elif any(stream_table(r) for r in resources_of):
            problems.append(f"IAM statement {sid!r} allows {sorted(actions)} on a stream")

    # --- per function: streams, the API's limits, logs ---------------------------------------------
    consumed_by: dict[str, set[str]] = {}
    for name, event_name, props in stream_events(template):
        stream = props.get("Stream")
        table = stream_table(stream)
        if table is None or resources.get(table, {}).get("Type") != "AWS::DynamoDB::Table":
            problems.append(f"{name}'s event source {event_name} reads {stream!r}, not the stream of one "
                            "of the stack's tables ({'Fn::GetAtt': [<table>, 'StreamArn']})")
            continue
        consumed_by.setdefault(name, set()).add(table)
        view = resources[table].get("Properties", {}).get("StreamSpecification", {}).get("StreamViewType")
        if not view:
            problems.append(f"{name} reads the stream of table {table}, which has no StreamSpecification")
        own = role_statements(template, roles.get(name) or "")
        missing = STREAM_ACTIONS - allowed(own, stream_arn(table))
        if missing:
            problems.append(f"{name}'s role may not {sorted(missing)} on the stream of table {table}, which it reads")
        if not isinstance(props.get("MaximumRetryAttempts"), int) or props["MaximumRetryAttempts"] > 10:
            problems.append(f"{name}'s event source {event_name} has no MaximumRetryAttempts (at most 10): "
                            "a poison record would be retried until it expires")
        if props.get("BisectBatchOnFunctionError") is not True:
            problems.append(f"{name}'s event source {event_name} does not bisect failing batches")
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if not destination:
            problems.append(f"{name}'s event source {event_name} has no on-failure destination")
        elif "sqs:SendMessage" not in allowed(own, destination):
            problems.append(f"{name}'s role may not sqs:SendMessage to its on-failure destination {destination!r}")
    for name, props_events in ((n, p) for n, _, p in sns_events(template)):
        topic = props_events.get("Topic")
        if not (isinstance(topic, dict) and resources.get(topic.get("Ref"), {}).get("Type") == "AWS::SNS::Topic"):
            problems.append(f"{name} subscribes to {topic!r}, not to a topic of the stack ({{'Ref': <topic>}})")
    for name, role in roles.items():
        if not role:
            continue
        own = role_statements(template, role)
        streams_read = {stream_table(r) for st in own if set(as_list(st.get("Action", []))) & STREAM_ACTIONS
                        for r in as_list(st.get("Resource", []))} - {None}
        for table in sorted(streams_read - consumed_by.get(name, set())):
            problems.append(f"{name}'s role may read the stream of {table}, which {name} does not consume")
        logs = [r for st in own if "logs:PutLogEvents" in as_list(st.get("Action", []))
                for r in as_list(st.get("Resource", []))]
        if not logs or any(f"${{AWS::StackName}}-{name}-*" not in json.dumps(r) for r in logs):
            problems.append(f"{name}'s role must write logs to its own log group only "
                            f"(/aws/lambda/${{AWS::StackName}}-{name}-*)")
        if found[name].get("Properties", {}).get("Handler") == API_HANDLER:
            for table in sorted(READ_ONLY_FOR_API):
                written = WRITE_ACTIONS & allowed(own, {"Fn::GetAtt": [table, "Arn"]})
                if written:
                    problems.append(f"the API function {name} may {sorted(written)} on {table}, which it only reads")
            if any(set(as_list(st.get("Action", []))) & STREAM_ACTIONS for st in own):
                problems.append(f"the API function {name} may read streams")

    # --- tables ----------------------------------------------------------------------------------
    covered = [resource for statement in statements
               if any(str(action) in DYNAMODB_ACTIONS for action in as_list(statement.get("Action", [])))
               for resource in as_list(statement.get("Resource", []))]
    for name, res in resources.items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = res.get("Properties", {})
        if {"Fn::GetAtt": [name, "Arn"]} not in covered:
            problems.append(f"no function may use table {name}")
        if (props.get("GlobalSecondaryIndexes") or props.get("LocalSecondaryIndexes")) and \
                {"Fn::Sub": "${%s.Arn}/index/*" % name} not in covered:
            problems.append(f"no function may query the indexes of table {name}")
        if props.get("DeletionProtectionEnabled") is not True:
            problems.append(f"table {name} has no DeletionProtectionEnabled")
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"table {name} has no point-in-time recovery")

    # --- the API: throttling, access logs, WAF -------------------------------------------------------
    api = resources.get("RestAPI", {}).get("Properties", {})
    if api:
        settings = api.get("MethodSettings") or []
        paths = _swagger_paths(template)
        if not any(m.get("ResourcePath") == "/*" and m.get("ThrottlingRateLimit") for m in settings):
            problems.append("RestAPI has no stage throttling (MethodSettings for /*)")
        for setting in settings:
            path = setting.get("ResourcePath", "")
            if path != "/*" and path[1:].replace("~1", "/") not in paths:
                problems.append(f"RestAPI MethodSettings name {path!r}, which is no route of the app")
        log_format = api.get("AccessLogSetting", {}).get("Format", "")
        if "$context.resourcePath" not in log_format or "$context.path" in log_format:
            problems.append("RestAPI access logs must record the route ($context.resourcePath), never $context.path")
        if not any(res.get("Type") == "AWS::WAFv2::WebACLAssociation" and "${RestAPI}" in json.dumps(res)
                   for res in resources.values()):
            problems.append("no WAF web ACL is associated with the API's stage")
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
