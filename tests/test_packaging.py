"""`make package` gives a template that lints clean, a least-privilege role, and a zip with
everything the Lambda needs. Runs the real packaging (Chalice downloads Lambda's wheels once,
then reuses its cache in .chalice/deployments)."""
from __future__ import annotations

import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from devtools import package

ROOT = Path(__file__).resolve().parent.parent
INFRA = json.loads((ROOT / "infra" / "resources.json").read_text())
RUNTIME_LIBRARIES = ("pynamodb", "jinja2", "markupsafe", "aws_lambda_powertools", "babel", "boto3", "botocore")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    result = package.build(out, quiet=True)
    return result, json.loads(result.template.read_text())


@pytest.fixture(scope="module")
def template(built):
    return built[1]


def test_template_passes_cfn_lint(built):
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(built[0].template, config=ManualArgs(regions=["eu-west-1"]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    for match in matches:
        if match not in errors:
            print(f"cfn-lint {match.rule.id}: {match.message} ({match.linenumber})")
    assert not errors, "\n".join(f"{m.rule.id}: {m.message} (line {m.linenumber})" for m in errors)


def test_merged_template_passes_the_packagers_own_checks(template):
    assert package.check_template(template) == []


def test_iam_is_least_privilege(template):
    statements = package.iam_statements(template)
    assert statements
    actions = [action for s in statements for action in package.as_list(s.get("Action", []))]
    assert "*" not in actions and "dynamodb:*" not in actions
    assert not [a for a in actions if "*" in a], "no wildcard actions"
    assert not [a for a in actions if a.lower() == "dynamodb:scan"], "Scan is never needed"
    assert {a for a in actions if a.startswith("dynamodb:")} == package.DYNAMODB_ACTIONS
    assert {"ses:SendRawEmail", "ssm:GetParameter", "logs:PutLogEvents"} <= set(actions)
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "*" not in package.as_list(statement["Resource"]), statement
    ssm = [s for s in statements if "ssm:GetParameter" in package.as_list(s["Action"])]
    assert len(ssm) == 1 and package.as_list(ssm[0]["Action"]) == ["ssm:GetParameter"]
    assert "${SigningSecretParameter}" in ssm[0]["Resource"]["Fn::Sub"], "only the one parameter"
    # Nothing else hands out permissions: no SAM policy templates, no second role.
    for name, function in package.functions(template).items():
        assert "Policies" not in function["Properties"], name


def test_every_table_of_infra_is_in_the_template_unchanged(template):
    tables = {name: res for name, res in INFRA["Resources"].items() if res["Type"] == "AWS::DynamoDB::Table"}
    assert len(tables) >= 8
    for name, definition in tables.items():
        assert template["Resources"].get(name) == definition, name


def test_every_function_gets_the_role_and_the_stack_environment(template):
    found = package.functions(template)
    assert "APIHandler" in found
    for name, function in found.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": ["DefaultRole", "Arn"]}, name
        env = package.effective_environment(template, function)
        assert env["TABLE_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-"}, name
        assert env["STAGE"] == "prod" and env["MAIL_BACKEND"] == "ses", name
        assert env["SIGNING_SECRET_PARAMETER"] == {"Ref": "SigningSecretParameter"}, name


def test_log_groups_point_at_functions_that_exist(template):
    """Chalice 1.34 names the API handler's log group after a resource it renamed (aws/chalice#2079)."""
    functions = package.functions(template)
    groups = [res for res in template["Resources"].values() if res["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == len(functions), "log retention (.chalice/config.json) gives each function a group"
    for group in groups:
        target = group["Properties"]["LogGroupName"]["Fn::Sub"].removeprefix("/aws/lambda/${").removesuffix("}")
        assert target in functions
        assert group["Properties"]["RetentionInDays"] > 0


def test_zip_holds_the_code_templates_and_libraries(built):
    with zipfile.ZipFile(built[0].code) as archive:
        names = set(archive.namelist())
    assert "app.py" in names
    lib = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chalicelib").rglob("*.py")
                 if "__pycache__" not in p.parts)
    assert lib and not [p for p in lib if p not in names], "every chalicelib module is packaged"
    templates = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*") if p.is_file())
    assert "templates/base.html" in templates
    assert not [t for t in templates if t not in names], "templates/ lands at the root, beside chalicelib/"
    for library in RUNTIME_LIBRARIES:
        assert f"{library}/__init__.py" in names, library
    assert not [n for n in names if n.startswith("vendor/")]


def test_zip_holds_bytecode_lambda_uses_as_it_is(built):
    """Lambda's /var/task is read-only: without .pyc in the zip each cold start compiles every module."""
    import importlib.util

    with zipfile.ZipFile(built[0].code) as archive:
        names = set(archive.namelist())
        tag = sys.implementation.cache_tag
        for module in ("app", "chalicelib/models", "pynamodb/models", "botocore/session", "jinja2/environment"):
            directory, _, name = module.rpartition("/")
            pyc = f"{directory}/__pycache__/{name}.{tag}.pyc".lstrip("/")
            assert pyc in names, pyc
            header = archive.read(pyc)[:8]
            assert header[:4] == importlib.util.MAGIC_NUMBER
            assert int.from_bytes(header[4:8], "little") == 0b01, "hash-based and unchecked (PEP 552)"


def test_functions_added_later_get_the_role_and_environment(tmp_path):
    """A scheduled function (like the outbox retry and the digests) is packaged like the API handler."""
    project = tmp_path / "app"
    (project / ".chalice").mkdir(parents=True)
    (project / ".chalice" / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    (project / "requirements.txt").write_text("")
    (project / "app.py").write_text(textwrap.dedent("""
        from chalice import Chalice, Rate

        app = Chalice(app_name="klassen-meetups")

        @app.route("/")
        def index():
            return {}

        @app.schedule(Rate(5, unit=Rate.MINUTES))
        def retry_outbox(event):
            return None

        @app.schedule("cron(0 6 * * ? *)")
        def send_digests(event):
            return None
    """))
    result = package.build(tmp_path / "out", project=project, quiet=True)
    template = json.loads(result.template.read_text())
    found = package.functions(template)
    assert len(found) == 3
    assert package.check_template(template) == []
    for name, function in found.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": ["DefaultRole", "Arn"]}, name
        assert package.effective_environment(template, function)["TABLE_PREFIX"] == \
            {"Fn::Sub": "${AWS::StackName}-"}, name
