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
3. Mends one Chalice bug (`mend_template`) and checks the merged template (`check_template`): it
   fails on anything that would not deploy as meant.
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
"""
from __future__ import annotations

import argparse
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
REQUIRED_ENVIRONMENT = ("STAGE", "TABLE_PREFIX", "MAIL_BACKEND", "SIGNING_SECRET_PARAMETER",
                        "PUBLIC_BASE_URL", "MAIL_FROM")
DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:Query", "dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem",
                    "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"}
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
    if mend_template(template):
        package.template.write_text(json.dumps(template, indent=2, separators=(",", ": ")) + "\n")
    problems = check_template(template)
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


def mend_template(template: dict) -> bool:
    """Chalice 1.34 names the API handler's log group after `ApiHandler` but renames the function
    itself to `APIHandler` (aws/chalice#2079): point every log group at a function that exists.
    Returns whether anything changed."""
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


def check_template(template: dict) -> list[str]:
    """What is wrong with a merged template; an empty list when nothing is."""
    problems = []
    resources = template.get("Resources", {})
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

    statements = iam_statements(template)
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement.get("Action", [])):
            if "*" in action:
                problems.append(f"IAM action with a wildcard: {action}")
            if action.lower() == "dynamodb:scan":
                problems.append("IAM allows dynamodb:Scan")
            if action.startswith("dynamodb:") and action not in DYNAMODB_ACTIONS:
                problems.append(f"IAM allows {action}, which the code does not need")
        for resource in as_list(statement.get("Resource", [])):
            if resource == "*":
                problems.append(f"IAM statement {statement.get('Sid', '')!r} on Resource '*'")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"IAM statement {statement.get('Sid', '')!r} uses NotAction/NotResource")
    covered = [resource for statement in statements
               if any(str(action).startswith("dynamodb:") for action in as_list(statement.get("Action", [])))
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
