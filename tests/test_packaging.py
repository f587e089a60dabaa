"""`make package` gives a template that lints clean, a least-privilege role, and a zip with
everything the Lambda needs. Runs the real packaging (Chalice downloads Lambda's wheels once,
then reuses its cache in .chalice/deployments)."""
from __future__ import annotations

import copy
import json
import os
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
FUNCTION_ROLES = {"APIHandler": "ApiFunctionRole", "RetryOutbox": "RetryOutboxRole", "DeliverOutbox": "DeliverOutboxRole",
                  "SendDigests": "SendDigestsRole", "HandleMailEvents": "HandleMailEventsRole",
                  "ApplyRetention": "ApplyRetentionRole", "SendReminders": "SendRemindersRole",
                  "SendOutcomeLinks": "SendOutcomeLinksRole", "RunJobs": "RunJobsRole", "ResumeJobs": "ResumeJobsRole"}
JOBS_STREAM = {"Fn::GetAtt": ["JobsTable", "StreamArn"]}

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
    assert ssm
    for statement in ssm:
        assert package.as_list(statement["Action"]) == ["ssm:GetParameter"]
        assert "${SigningSecretParameter}" in statement["Resource"]["Fn::Sub"], "only the one parameter"
    assert "dynamodb:DescribeTable" not in actions, "never used"
    # Batch deletes are the retention job's alone (email guards, expired activity records).
    batch_writers = {name for name, role in package.function_roles(template).items()
                     if "dynamodb:BatchWriteItem" in {a for s in package.role_statements(template, role)
                                                      for a in package.as_list(s.get("Action", []))}}
    assert batch_writers == {"ApplyRetention"}
    assert "ses:SendEmail" not in actions, "mail.SesBackend sends raw email only"
    # Nothing else hands out permissions: no SAM policy templates, no second role.
    for name, function in package.functions(template).items():
        assert "Policies" not in function["Properties"], name


def test_every_table_of_infra_is_in_the_template_unchanged(template):
    tables = {name: res for name, res in INFRA["Resources"].items() if res.get("Type") == "AWS::DynamoDB::Table"}
    assert len(tables) >= 8
    for name, definition in tables.items():
        assert template["Resources"].get(name) == definition, name


def test_every_function_gets_its_own_role_and_the_stack_environment(template):
    found = package.functions(template)
    assert set(found) == set(FUNCTION_ROLES)
    assert "DefaultRole" not in template["Resources"], "Chalice's role (with its generated policy) is gone"
    for name, function in found.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [FUNCTION_ROLES[name], "Arn"]}, name
        env = package.effective_environment(template, function)
        assert env["TABLE_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-"}, name
        assert env["STAGE"] == "prod" and env["MAIL_BACKEND"] == "ses", name
        assert env["SIGNING_SECRET_PARAMETER"] == {"Ref": "SigningSecretParameter"}, name
        assert env["MAIL_DELIVERY"] == "stream", name
        assert env["PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}, name
        assert env["SES_CONFIGURATION_SET"] == {"Ref": "MailConfigurationSet"}, name
        assert env["MAIL_FROM"] == {"Fn::Sub": "${MailFromName} <${MailFromAddress}>"}, name
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
    assert props["MaximumRetryAttempts"] == 3 and props["BisectBatchOnFunctionError"] is True
    assert props["DestinationConfig"] == {"OnFailure": {"Type": "SQS", "Destination": {
        "Fn::GetAtt": ["OutboxStreamFailures", "Arn"]}}}
    assert [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]] == [{"eventName": ["INSERT"]}]
    assert app_module.OUTBOX_STREAM_PLACEHOLDER not in json.dumps(template)
    assert package.stream_placeholders() == {app_module.OUTBOX_STREAM_PLACEHOLDER: "OutboxTable",
                                             app_module.JOBS_STREAM_PLACEHOLDER: "JobsTable"}


def test_only_the_outbox_table_has_a_stream_of_new_images(template):
    tables = {name: res for name, res in template["Resources"].items() if res["Type"] == "AWS::DynamoDB::Table"}
    streams = {name: res["Properties"]["StreamSpecification"] for name, res in tables.items()
               if "StreamSpecification" in res["Properties"]}
    assert streams == {"OutboxTable": {"StreamViewType": "NEW_IMAGE"}, "JobsTable": {"StreamViewType": "NEW_IMAGE"}}, \
        "deliver_stream_records and run_stream_records read NewImage"


def test_run_jobs_reads_the_jobs_tables_stream_of_unfinished_jobs(template):
    found = [f for f in package.functions(template).values() if f["Properties"]["Handler"] == "app.run_jobs"]
    assert len(found) == 1
    props = next(iter(found[0]["Properties"]["Events"].values()))["Properties"]
    assert props["Stream"] == JOBS_STREAM and props["MaximumRetryAttempts"] == 3
    assert [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"state": {"S": ["queued", "running"]}}}}]
    on_streams = [s for s in package.role_statements(template, "RunJobsRole")
                  if set(package.as_list(s["Action"])) & STREAM_ACTIONS]
    assert [package.as_list(s["Resource"]) for s in on_streams] == [[JOBS_STREAM]]


def test_only_deliver_outbox_may_read_the_outbox_stream_and_nothing_else_of_streams(template):
    for name, role in FUNCTION_ROLES.items():
        if name not in ("DeliverOutbox", "RunJobs"):
            assert not [s for s in package.role_statements(template, role)
                        if set(package.as_list(s["Action"])) & STREAM_ACTIONS], name
    statements = package.role_statements(template, "DeliverOutboxRole")
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
        return t["Resources"]["DeliverOutboxRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]

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
    outbox = next(s for s in role_statements(on_table) if s.get("Sid") == "Outbox")
    outbox["Resource"] = [outbox["Resource"], OUTBOX_STREAM]
    assert any("on a stream" in p for p in package.check_template(on_table))

    no_view = copy.deepcopy(template)
    del no_view["Resources"]["OutboxTable"]["Properties"]["StreamSpecification"]
    assert any("no StreamSpecification" in p for p in package.check_template(no_view))

    unread = copy.deepcopy(template)
    del _deliver_outbox(unread)["Properties"]["Events"]
    assert any("which DeliverOutbox does not consume" in p for p in package.check_template(unread))

    background = copy.deepcopy(template)
    _deliver_outbox(background)["Properties"]["Environment"]["Variables"]["MAIL_DELIVERY"] = "background"
    assert any("MAIL_DELIVERY 'background'" in p for p in package.check_template(background))


def test_log_groups_point_at_functions_that_exist(template):
    """Chalice 1.34 names the API handler's log group after a resource it renamed (aws/chalice#2079)."""
    functions = package.functions(template)
    groups = [res for res in template["Resources"].values() if res["Type"] == "AWS::Logs::LogGroup"
              and json.dumps(res["Properties"]["LogGroupName"]).startswith('{"Fn::Sub": "/aws/lambda/')]
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


def _project(tmp_path, extra: str = "") -> Path:
    project = tmp_path / "app"
    (project / ".chalice").mkdir(parents=True)
    (project / ".chalice" / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    (project / "requirements.txt").write_text("")
    (project / "app.py").write_text(textwrap.dedent("""
        from chalice import Chalice, Rate

        app = Chalice(app_name="klassen-meetups")
        OUTBOX_STREAM_PLACEHOLDER = "arn:aws:dynamodb:eu-west-1:000000000000:table/outbox/stream/another"
        MAIL_EVENTS_TOPIC_PLACEHOLDER = "arn:aws:sns:eu-west-1:000000000000:another-topic"
        JOBS_STREAM_PLACEHOLDER = "arn:aws:dynamodb:eu-west-1:000000000000:table/jobs/stream/another"

        @app.route("/")
        def index():
            return {}

        @app.route("/meetups/{meetup_id}/registrations", methods=["POST"])
        def sign_up(meetup_id):
            return {}

        @app.schedule(Rate(5, unit=Rate.MINUTES))
        def retry_outbox(event):
            return None

        @app.schedule("cron(0 6 * * ? *)")
        def send_digests(event):
            return None

        @app.schedule(Rate(1, unit=Rate.HOURS))
        def apply_retention(event):
            return None

        @app.schedule(Rate(1, unit=Rate.MINUTES))
        def send_reminders(event):
            return None

        @app.schedule(Rate(1, unit=Rate.HOURS))
        def send_outcome_links(event):
            return None

        @app.on_dynamodb_record(stream_arn=OUTBOX_STREAM_PLACEHOLDER)
        def deliver_outbox(event):
            return None

        @app.on_sns_message(topic=MAIL_EVENTS_TOPIC_PLACEHOLDER)
        def handle_mail_events(event):
            return None

        @app.on_dynamodb_record(stream_arn=JOBS_STREAM_PLACEHOLDER)
        def run_jobs(event):
            return None

        @app.schedule(Rate(1, unit=Rate.MINUTES))
        def resume_jobs(event):
            return None
    """) + textwrap.dedent(extra))
    return project


def test_functions_get_their_roles_and_the_environment_from_infra(tmp_path):
    """The placeholders are read from the packaged project's app.py; each function gets its role."""
    project = _project(tmp_path)
    result = package.build(tmp_path / "out", project=project, quiet=True, compile_bytecode=False)
    template = json.loads(result.template.read_text())
    found = package.functions(template)
    assert set(found) == set(FUNCTION_ROLES)
    assert "outbox/stream/another" not in result.template.read_text()
    assert "another-topic" not in result.template.read_text()
    assert package.check_template(template, package.stream_placeholders(project / "app.py"),
                                  package.topic_placeholders(project / "app.py")) == []
    assert next(iter(_deliver_outbox(template)["Properties"]["Events"].values()))["Properties"]["Stream"] == \
        OUTBOX_STREAM
    for name, function in found.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [FUNCTION_ROLES[name], "Arn"]}, name
        assert package.effective_environment(template, function)["TABLE_PREFIX"] == \
            {"Fn::Sub": "${AWS::StackName}-"}, name


def test_a_function_added_without_its_own_role_is_refused(tmp_path):
    """A new function would otherwise run as Chalice's DefaultRole: the package fails and says why."""
    project = _project(tmp_path, """
        @app.schedule(Rate(1, unit=Rate.DAYS))
        def tidy_up(event):
            return None
    """)
    with pytest.raises(RuntimeError) as error:
        package.build(tmp_path / "out", project=project, quiet=True, compile_bytecode=False)
    assert "TidyUp has no role of its own" in str(error.value)


# --- least privilege, per function ------------------------------------------------------------

def _actions_on(template, role, table) -> set[str]:
    return package.allowed(package.role_statements(template, role), {"Fn::GetAtt": [table, "Arn"]})


def test_each_function_may_use_only_the_tables_it_needs(template):
    tables = {n for n, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    expected = {  # role: {table: actions}; every other table: nothing
        "ApiFunctionRole": {
            **{t: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                   "dynamodb:Query", "dynamodb:ConditionCheckItem", "dynamodb:BatchGetItem"}
               for t in ("MeetupsTable", "RegistrationsTable", "ActivityTable", "HandoversTable",
                         "OrganisersTable", "IdempotencyTable", "OutcomesTable")},
            # Queue mail; erasure on request finds an address's queued mail by its hash and deletes it.
            "OutboxTable": {"dynamodb:PutItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DeleteItem"},
            "AdminTokensTable": {"dynamodb:GetItem"},
            "SuppressionsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
            "JobsTable": {"dynamodb:GetItem", "dynamodb:PutItem"}},  # start a job, show its progress
        # Mail senders read the line to tell a waiting person's position as it is when sent.
        "RetryOutboxRole": {"OutboxTable": {"dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
                            "SuppressionsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
                            "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query"},
                            "RegistrationsTable": {"dynamodb:GetItem", "dynamodb:Query"}},
        "DeliverOutboxRole": {"OutboxTable": {"dynamodb:UpdateItem"},
                              "SuppressionsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
                              "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query"},
                              "RegistrationsTable": {"dynamodb:GetItem", "dynamodb:Query"}},
        "SendDigestsRole": {"OrganisersTable": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"},
                            "ActivityTable": {"dynamodb:Query"},
                            "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"},
                            "SuppressionsTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem"}},
        "HandleMailEventsRole": {"SuppressionsTable": {"dynamodb:UpdateItem"}},
        # Bulk work (chalicelib/jobs.py): claim and advance a job, read the roster page by page,
        # promote (one transaction), queue the emails, note a handover's invitations.
        "RunJobsRole": {"JobsTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
                        "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem",
                                         "dynamodb:UpdateItem"},
                        "RegistrationsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem",
                                               "dynamodb:UpdateItem"},
                        "HandoversTable": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
                        "OutboxTable": {"dynamodb:PutItem"}, "ActivityTable": {"dynamodb:PutItem"}},
        "ResumeJobsRole": {"JobsTable": {"dynamodb:Query", "dynamodb:UpdateItem"}},
        "ApplyRetentionRole": {
            "RegistrationsTable": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchGetItem",
                                   "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"},
            "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
            "ActivityTable": {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}},
        "SendRemindersRole": {
            "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
            "RegistrationsTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
            "OutboxTable": {"dynamodb:PutItem"}, "OutcomesTable": {"dynamodb:Query"}},
        "SendOutcomeLinksRole": {
            "MeetupsTable": {"dynamodb:GetItem", "dynamodb:Query"},
            "OutcomesTable": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
            "OutboxTable": {"dynamodb:PutItem"}},
    }
    for role, grants in expected.items():
        for table in tables:
            assert _actions_on(template, role, table) == grants.get(table, set()), (role, table)


def test_the_api_function_cannot_write_admin_tokens_nor_read_streams(template):
    """Code execution in the public API could otherwise mint an admin token."""
    role = package.function_roles(template)["APIHandler"]
    assert _actions_on(template, role, "AdminTokensTable") == {"dynamodb:GetItem"}
    actions = {a for s in package.role_statements(template, role) for a in package.as_list(s["Action"])}
    assert not actions & STREAM_ACTIONS and not any(a.startswith("sqs:") for a in actions)
    broken = copy.deepcopy(template)
    tokens = next(s for s in package.role_statements(broken, role) if s["Sid"] == "ReadAdminTokens")
    tokens["Action"] = ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert any("may ['dynamodb:PutItem'] on AdminTokensTable" in p for p in package.check_template(broken))


def test_mail_only_as_the_sender_through_its_identity(template):
    senders = {name for name, role in package.function_roles(template).items()
               if any("ses:SendRawEmail" in package.as_list(s["Action"]) for s in package.role_statements(template, role))}
    assert senders == {"APIHandler", "RetryOutbox", "DeliverOutbox", "SendDigests"}, \
        "the API for POST /admin/digests/run; never the mail-events handler"
    for statement in package.iam_statements(template):
        if any(a.startswith("ses:") for a in package.as_list(statement["Action"])):
            assert package.as_list(statement["Action"]) == ["ses:SendRawEmail"]
            assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "MailFromAddress"}}}
            subs = [r["Fn::Sub"] for r in statement["Resource"]]
            assert subs == ["arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}",
                            "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/"
                            "${MailConfigurationSet}"]
    broken = copy.deepcopy(template)
    mail = next(s for s in package.role_statements(broken, "RetryOutboxRole") if "Condition" in s)
    del mail["Condition"]
    mail["Action"] = ["ses:SendRawEmail", "ses:SendEmail"]
    problems = package.check_template(broken)
    assert any("ses:FromAddress" in p for p in problems) and any("ses:SendEmail" in p for p in problems)


def test_roles_are_not_shared_and_write_only_their_own_logs(template):
    roles = package.function_roles(template)
    assert len(set(roles.values())) == len(roles)
    for name, role in roles.items():
        logs = [s for s in package.role_statements(template, role) if s["Sid"] == "OwnLogs"]
        assert logs[0]["Resource"]["Fn::Sub"].endswith(f":log-group:/aws/lambda/${{AWS::StackName}}-{name}-*:*")
    shared = copy.deepcopy(template)
    shared["Resources"]["SendDigests"]["Properties"]["Role"] = {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}
    assert any("shared by" in p for p in package.check_template(shared))


def test_mail_and_digest_functions_have_reserved_concurrency(template):
    found = package.functions(template)
    for name in ("RetryOutbox", "DeliverOutbox", "SendDigests", "HandleMailEvents", "RunJobs", "ResumeJobs"):
        assert found[name]["Properties"]["ReservedConcurrentExecutions"] >= 1, name
    assert "ReservedConcurrentExecutions" not in found["APIHandler"]["Properties"]


def test_every_table_is_protected_against_deletion_and_recoverable(template):
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::DynamoDB::Table":
            assert res["Properties"]["DeletionProtectionEnabled"] is True, name
            assert res["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
            assert res["DeletionPolicy"] == "Retain", name


# --- abuse: throttling, WAF, the refusals' shape -------------------------------------------------

def test_stage_and_sign_up_route_are_throttled(template):
    api = template["Resources"]["RestAPI"]["Properties"]
    settings = {m["ResourcePath"]: m for m in api["MethodSettings"]}
    assert settings["/*"]["HttpMethod"] == "*" and settings["/*"]["ThrottlingRateLimit"] > 0
    sign_up = settings["/~1meetups~1{meetup_id}~1registrations"]
    assert sign_up["HttpMethod"] == "POST"
    assert 0 < sign_up["ThrottlingRateLimit"] < settings["/*"]["ThrottlingRateLimit"]
    assert "/meetups/{meetup_id}/registrations" in api["DefinitionBody"]["paths"], "a route that exists"
    broken = copy.deepcopy(template)
    broken["Resources"]["RestAPI"]["Properties"]["MethodSettings"].append(
        {"ResourcePath": "/~1no~1such~1route", "HttpMethod": "POST", "ThrottlingRateLimit": 1})
    assert any("no route of the app" in p for p in package.check_template(broken))


def test_the_waf_limits_sign_ups_per_ip_and_answers_429_as_json(template):
    resources = template["Resources"]
    acl = resources["WebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    assert rules["aws-ip-reputation"]["Statement"]["ManagedRuleGroupStatement"] == {
        "VendorName": "AWS", "Name": "AWSManagedRulesAmazonIpReputationList"}
    rate = rules["sign-up-rate-per-ip"]["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP" and rate["Limit"] == {"Ref": "SignUpRateLimit"}
    scope = json.dumps(rate["ScopeDownStatement"])
    assert '"/registrations"' in scope and '"POST"' in scope and '"/registrations/resend"' in scope
    block = rules["sign-up-rate-per-ip"]["Action"]["Block"]["CustomResponse"]
    assert block["ResponseCode"] == 429 and {"Name": "Retry-After", "Value": "300"} in block["ResponseHeaders"]
    body = acl["CustomResponseBodies"][block["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    assert set(json.loads(body["Content"])) == {"error", "message"} and json.loads(body["Content"])["error"] == "rate_limited"
    association = resources["WebAclAssociation"]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": ["WebAcl", "Arn"]}
    assert "/restapis/${RestAPI}/stages/${RestAPI.Stage}" in association["ResourceArn"]["Fn::Sub"]
    assert template["Parameters"]["SignUpRateLimit"]["Default"] >= 100, "a school's 50 staff behind one NAT, twice"


def test_gateway_refusals_are_json_in_the_contracts_shape(template):
    responses = template["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    for kind, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        assert "$context" not in body, f"{kind}: fixed messages, never an echo of the request"
        parsed = json.loads(body)
        assert set(parsed) == {"error", "message"}, kind
        assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/json; charset=utf-8'"
    throttled = responses["THROTTLED"]
    assert throttled["StatusCode"] == "429" and json.loads(throttled["ResponseTemplates"]["application/json"])[
        "error"] == "rate_limited"
    assert throttled["ResponseParameters"]["Headers"]["Retry-After"].strip("'").isdigit()
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    assert json.loads(responses["MISSING_AUTHENTICATION_TOKEN"]["ResponseTemplates"]["application/json"])[
        "error"] == "not_found"
    assert responses["UNSUPPORTED_MEDIA_TYPE"]["StatusCode"] == "415"
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "REQUEST_TOO_LARGE", "WAF_FILTERED"} <= set(responses)


def test_access_logs_hold_the_route_never_the_path(template):
    setting = template["Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    assert fields["route"] == "$context.resourcePath" and fields["status"] == "$context.status"
    assert "$context.path" not in setting["Format"], "the raw path carries manage and accept tokens"
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    broken = copy.deepcopy(template)
    broken["Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]["Format"] = '{"path": "$context.path"}'
    assert any("$context.resourcePath" in p for p in package.check_template(broken))


def test_alarms_on_errors_throttles_backlog_and_stream_failures(template):
    alarms = {res["Properties"]["MetricName"]: res["Properties"] for res in template["Resources"].values()
              if res["Type"] == "AWS::CloudWatch::Alarm"}
    for metric in ("ApiServerErrors", "ApiThrottled", "BlockedRequests", "OutboxBacklogAgeSeconds", "IteratorAge",
                   "ApproximateNumberOfMessagesVisible", "Errors", "Reputation.BounceRate"):
        assert metric in alarms, metric
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarms["OutboxBacklogAgeSeconds"]["TreatMissingData"] == "breaching", "a silent retry job is an alarm"
    filters = [res["Properties"] for res in template["Resources"].values() if res["Type"] == "AWS::Logs::MetricFilter"]
    assert {f["FilterPattern"] for f in filters} == {'{ $.status = "5*" }', '{ $.status = "429" }'}


def test_ses_bounces_and_complaints_reach_handle_mail_events(template):
    resources = template["Resources"]
    destination = resources["MailBouncesAndComplaints"]["Properties"]["EventDestination"]
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert destination["SnsDestination"] == {"TopicARN": {"Ref": "MailEventsTopic"}}
    events = package.functions(template)["HandleMailEvents"]["Properties"]["Events"]
    assert [e["Properties"]["Topic"] for e in events.values()] == [{"Ref": "MailEventsTopic"}]
    policy = resources["MailEventsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Principal"] for s in policy] == [{"Service": "ses.amazonaws.com"}]


def test_checkov_finds_nothing_but_the_listed_skips(built):
    """checkov on build/sam.json: every failed check must be in infra/checkov-skips.yaml (with its
    reason), and every entry there must still match a finding."""
    import shutil
    import subprocess

    import yaml

    checkov = os.environ.get("CHECKOV") or next(
        (str(p) for p in [ROOT / ".venv-checkov" / "bin" / "checkov"] if p.exists()), None) or shutil.which("checkov")
    if not checkov:
        pytest.skip("checkov is not installed: `make checkov` (its own venv, .venv-checkov)")
    result = subprocess.run([checkov, "-f", str(built[0].template), "--framework", "cloudformation", "--quiet",
                             "--compact", "-o", "json"], capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    failed = {(c["check_id"], c["resource"].split(".", 1)[1]) for c in report["results"]["failed_checks"]}
    skips = yaml.safe_load((ROOT / "infra" / "checkov-skips.yaml").read_text())
    for skip in skips:
        assert len(skip.get("reason", "")) > 40, f"{skip['id']} needs its reason"

    def listed(check_id, resource):
        return any(s["id"] == check_id and (s["resources"] == "all" or resource in s["resources"]) for s in skips)
    unlisted = sorted(f for f in failed if not listed(*f))
    assert not unlisted, f"checkov failures without a listed reason: {unlisted}"
    stale = [s["id"] for s in skips if not any(check_id == s["id"] for check_id, _ in failed)]
    assert not stale, f"skips that match nothing any more: {stale}"
    assert report["summary"]["passed"] > 50
