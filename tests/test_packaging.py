"""`make package` gives a template that lints clean, a least-privilege role, and a zip with
everything the Lambda needs. Runs the real packaging (Chalice downloads Lambda's wheels once,
then reuses its cache in .chalice/deployments)."""
from __future__ import annotations

import copy
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
OUTBOX_STREAM = {"Fn::GetAtt": ["OutboxTable", "StreamArn"]}
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Packaged from a shell like a developer's: without the test's PUBLIC_BASE_URL (conftest.py),
    which the app's settings require outside STAGE=local when Chalice imports app.py."""
    out = tmp_path_factory.mktemp("package")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PUBLIC_BASE_URL", raising=False)
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
    assert {a for a in actions if a.startswith("dynamodb:")} == package.DYNAMODB_ACTIONS | STREAM_ACTIONS
    assert package.STREAM_ACTIONS == STREAM_ACTIONS
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
        assert env["MAIL_DELIVERY"] == "stream", name
        assert env["PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}, name
    assert package.PACKAGING_PUBLIC_BASE_URL not in json.dumps(template)


def _deliver_outbox(template) -> dict:
    found = [f for f in package.functions(template).values() if f["Properties"]["Handler"] == "app.deliver_outbox"]
    assert len(found) == 1
    return found[0]


def test_deliver_outbox_reads_the_outbox_tables_stream(template):
    """app.py can only name the stream with a placeholder: the package points it at the real one."""
    import app as app_module

    events = _deliver_outbox(template)["Properties"]["Events"]
    assert [event["Type"] for event in events.values()] == ["DynamoDB"]
    props = next(iter(events.values()))["Properties"]
    assert props["Stream"] == OUTBOX_STREAM
    assert props["StartingPosition"] == "LATEST" and props["BatchSize"] == 25
    assert [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]] == [{"eventName": ["INSERT"]}]
    assert app_module.OUTBOX_STREAM_PLACEHOLDER not in json.dumps(template)
    assert package.stream_placeholders() == {app_module.OUTBOX_STREAM_PLACEHOLDER: "OutboxTable"}


def test_only_the_outbox_table_has_a_stream_of_new_images(template):
    tables = {name: res for name, res in template["Resources"].items() if res["Type"] == "AWS::DynamoDB::Table"}
    streams = {name: res["Properties"]["StreamSpecification"] for name, res in tables.items()
               if "StreamSpecification" in res["Properties"]}
    assert streams == {"OutboxTable": {"StreamViewType": "NEW_IMAGE"}}, "deliver_stream_records reads NewImage"


def test_the_role_may_read_the_outbox_stream_and_nothing_else_of_streams(template):
    statements = package.iam_statements(template)
    on_streams = [s for s in statements if set(package.as_list(s["Action"])) & STREAM_ACTIONS]
    assert len(on_streams) == 1
    assert set(package.as_list(on_streams[0]["Action"])) == STREAM_ACTIONS
    assert package.as_list(on_streams[0]["Resource"]) == [OUTBOX_STREAM], "that one stream, not '*' nor stream/*"
    for statement in statements:
        if statement is not on_streams[0]:
            assert OUTBOX_STREAM not in package.as_list(statement["Resource"]), statement


def test_check_template_refuses_a_stream_left_as_it_is_in_app_py(template):
    import app as app_module

    broken = copy.deepcopy(template)
    props = next(iter(_deliver_outbox(broken)["Properties"]["Events"].values()))["Properties"]
    props["Stream"] = app_module.OUTBOX_STREAM_PLACEHOLDER
    problems = package.check_template(broken)
    assert any(app_module.OUTBOX_STREAM_PLACEHOLDER in p and "placeholder" in p for p in problems), problems
    assert package.mend_template(broken) is True
    assert props["Stream"] == OUTBOX_STREAM
    assert package.check_template(broken) == [] and broken == template
    assert package.mend_template(broken) is False

    props["Stream"] = "arn:aws:dynamodb:eu-west-1:123456789012:table/other/stream/2027-01-01T00:00:00.000"
    assert any("not the stream of one of the stack's tables" in p for p in package.check_template(broken))


def test_check_template_refuses_streams_without_their_permissions_or_view(template):
    def role_statements(t):
        return t["Resources"]["DefaultRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]

    def stream_statement(t):
        return next(s for s in role_statements(t) if s.get("Sid") == "OutboxStream")

    no_list = copy.deepcopy(template)
    stream_statement(no_list)["Action"].remove("dynamodb:ListStreams")
    assert any("dynamodb:ListStreams" in p for p in package.check_template(no_list))

    anywhere = copy.deepcopy(template)
    stream_statement(anywhere)["Resource"] = "*"
    problems = package.check_template(anywhere)
    assert any("Resource '*'" in p for p in problems) and any("may not" in p for p in problems), problems

    on_table = copy.deepcopy(template)
    role_statements(on_table)[0]["Resource"].append(OUTBOX_STREAM)
    assert any("on a stream" in p for p in package.check_template(on_table))

    no_view = copy.deepcopy(template)
    del no_view["Resources"]["OutboxTable"]["Properties"]["StreamSpecification"]
    assert any("no StreamSpecification" in p for p in package.check_template(no_view))

    unread = copy.deepcopy(template)
    del _deliver_outbox(unread)["Properties"]["Events"]
    assert any("which no function consumes" in p for p in package.check_template(unread))

    background = copy.deepcopy(template)
    _deliver_outbox(background)["Properties"]["Environment"]["Variables"]["MAIL_DELIVERY"] = "background"
    assert any("MAIL_DELIVERY 'background'" in p for p in package.check_template(background))


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
    """A scheduled function (like the outbox retry and the digests) and a stream function are packaged
    like the API handler; the stream's placeholder is read from the packaged project's app.py."""
    project = tmp_path / "app"
    (project / ".chalice").mkdir(parents=True)
    (project / ".chalice" / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    (project / "requirements.txt").write_text("")
    (project / "app.py").write_text(textwrap.dedent("""
        from chalice import Chalice, Rate

        app = Chalice(app_name="klassen-meetups")
        OUTBOX_STREAM_PLACEHOLDER = "arn:aws:dynamodb:eu-west-1:000000000000:table/outbox/stream/another"

        @app.route("/")
        def index():
            return {}

        @app.schedule(Rate(5, unit=Rate.MINUTES))
        def retry_outbox(event):
            return None

        @app.schedule("cron(0 6 * * ? *)")
        def send_digests(event):
            return None

        @app.on_dynamodb_record(stream_arn=OUTBOX_STREAM_PLACEHOLDER)
        def deliver_outbox(event):
            return None
    """))
    result = package.build(tmp_path / "out", project=project, quiet=True)
    template = json.loads(result.template.read_text())
    found = package.functions(template)
    assert len(found) == 4
    assert "outbox/stream/another" not in result.template.read_text()
    assert package.check_template(template, package.stream_placeholders(project / "app.py")) == []
    assert next(iter(_deliver_outbox(template)["Properties"]["Events"].values()))["Properties"]["Stream"] == \
        OUTBOX_STREAM
    for name, function in found.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": ["DefaultRole", "Arn"]}, name
        assert package.effective_environment(template, function)["TABLE_PREFIX"] == \
            {"Fn::Sub": "${AWS::StackName}-"}, name
