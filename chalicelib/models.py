"""PynamoDB models: one per kind of item. Table names come from settings; the tables
themselves are defined once, in infra/resources.json (a test checks the two agree).

Nothing here reads the settings at import: a model's table name, region and endpoint are read
from them when they are used (chalicelib.storage makes the one connection, on first use)."""
from __future__ import annotations

import json
import secrets
import zlib

from pynamodb.attributes import (BooleanAttribute, JSONAttribute, ListAttribute, MapAttribute,
                                 NumberAttribute, NumberSetAttribute, TTLAttribute, UnicodeAttribute)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import MetaModel
from pynamodb.models import Model as _PynamoModel

from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.statuses import HandoverStatus, IdeaStatus, JobState, MeetupState, OutboxState, OutcomeStatus

# A sign-up rush runs many requests at once in one process: keep enough connections.
POOL_CONNECTIONS = {"max_pool_connections": 64, "connect_timeout_seconds": 5, "read_timeout_seconds": 10,
                    "max_retry_attempts": 3}


class _SettingsMeta(type):
    """The metaclass of a model's Meta: its table name, region and endpoint are read from the
    settings each time PynamoDB reads them (when it connects), never at import."""

    @property
    def table_name(cls) -> str:
        return get_settings().table_name(cls.table_suffix)

    @property
    def region(cls) -> str:
        return get_settings().region

    @property
    def host(cls) -> str | None:
        return get_settings().dynamodb_endpoint


class _Meta(metaclass=_SettingsMeta):
    table_suffix = ""
    max_pool_connections = POOL_CONNECTIONS["max_pool_connections"]
    connect_timeout_seconds = POOL_CONNECTIONS["connect_timeout_seconds"]
    read_timeout_seconds = POOL_CONNECTIONS["read_timeout_seconds"]
    max_retry_attempts = POOL_CONNECTIONS["max_retry_attempts"]
    extra_headers = None
    aws_access_key_id = None
    aws_secret_access_key = None
    aws_session_token = None


class _LazyMetaModel(MetaModel):
    """PynamoDB's model metaclass fills in a Meta's missing options when the class is made, and
    reads each one to find out (hasattr), which would read the settings at import. Our Meta has
    every option, so that step is skipped: the class is made as if it had no Meta."""

    def __init__(self, name, bases, namespace, discriminator=None):
        super().__init__(name, bases, {k: v for k, v in namespace.items() if k != "Meta"}, discriminator)


class Model(_PynamoModel, metaclass=_LazyMetaModel):
    """The base of every model here: a PynamoDB Model whose Meta is read lazily."""


class CompactJSONAttribute(JSONAttribute):
    """JSON without spaces, letters as they are (a "ë" is 2 bytes, not 6): a transactional write
    costs 2 units per started KB, and the outbox message of a sign-up sits close to 1 KB."""

    def serialize(self, value):
        if value is None:
            return None
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        try:
            encoded.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (refused at the door): escaped, as before
            encoded = json.dumps(value, separators=(",", ":"))
        return encoded


def _meta(suffix: str) -> type:
    return type("Meta", (_Meta,), {"table_suffix": suffix})


def _index_meta(name: str, projection=None) -> type:
    return type("Meta", (), {"index_name": name, "projection": projection or AllProjection()})


# --- meetups ---------------------------------------------------------------------------------

class MeetupsByStart(GlobalSecondaryIndex):
    """The tour by start time, keys only: a sign-up changes a meetup's counters, and a projected
    counter would copy every sign-up in the country into this index's one `tour` partition.
    Readers take the items themselves with one BatchGetItem (catalogue.tour)."""
    Meta = _index_meta("by_start", KeysOnlyProjection())
    listing = UnicodeAttribute(hash_key=True)
    starts_at = UnicodeAttribute(range_key=True)


class MeetupsByProvince(GlobalSecondaryIndex):
    Meta = _index_meta("by_province", KeysOnlyProjection())
    province = UnicodeAttribute(hash_key=True)
    starts_at = UnicodeAttribute(range_key=True)


class MeetupsByChain(GlobalSecondaryIndex):
    Meta = _index_meta("by_chain", KeysOnlyProjection())
    chain_id = UnicodeAttribute(hash_key=True)
    starts_at = UnicodeAttribute(range_key=True)


TOUR_LISTING = "tour"  # every meetup sits in this one partition of `by_start`: the tour is small
# Every sign-up updates a meetup's counters. No index projects them (they all hold keys only),
# so a sign-up writes no index copy of the meetup: the readers fetch the items with one
# BatchGetItem.


class ThemeTable(MapAttribute):
    """A theme table (thematafel, a breakout room) of a meetup, led by a moderator."""
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    moderator_name = UnicodeAttribute(null=True)
    moderator_email = UnicodeAttribute(null=True)
    capacity = NumberAttribute(null=True)


class Meetup(Model):
    Meta = _meta("meetups")
    id = UnicodeAttribute(hash_key=True)
    listing = UnicodeAttribute(default=TOUR_LISTING)
    title = UnicodeAttribute()
    kind = UnicodeAttribute()
    province = UnicodeAttribute(null=True)
    city = UnicodeAttribute(null=True)
    venue = UnicodeAttribute(null=True)
    host_name = UnicodeAttribute()
    host_email = UnicodeAttribute(null=True)
    starts_at = UnicodeAttribute()
    ends_at = UnicodeAttribute()
    mode = UnicodeAttribute()
    join_url = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    capacity = NumberAttribute()
    confirmed = NumberAttribute(default=0)
    waitlist_enabled = BooleanAttribute(default=False)
    waitlist_length = NumberAttribute(default=0)  # people waiting now
    # The line (see Registration's `W#` entries): the last ticket given out, how many were promoted
    # from its front, and an optional limit on its length. A join sets `waitlist_seq` to n+1
    # conditioned on it being n, in the join's own transaction.
    waitlist_seq = NumberAttribute(default=0)
    waitlist_promoted = NumberAttribute(default=0)
    waitlist_max_length = NumberAttribute(null=True)
    # Turns at the line while processes contend for `waitlist_seq` (a ticket lock): a contended
    # joiner takes turn `line_next` (an atomic add) and joins once `line_serving` reaches it; its
    # join moves `line_serving` on. Joins outside the turns need `line_next == line_serving`.
    line_next = NumberAttribute(null=True)
    line_serving = NumberAttribute(null=True)
    line_abandoned = NumberSetAttribute(null=True)  # turns whose joiners gave up waiting: skipped at once
    state = UnicodeAttribute(default=MeetupState.OPEN)  # open | closed | cancelled (set by admins)
    follows = UnicodeAttribute(null=True)
    chain_id = UnicodeAttribute(null=True)
    demo = BooleanAttribute(default=False)
    # A follow-up meetup made by a handover: set until its new host accepts (the same transaction
    # removes it); sign-up is conditioned on its absence. Announced, not yet open.
    awaiting_host = BooleanAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    # Set by the retention job once its registrations' personal data (and the host's address) are erased.
    personal_data_erased_at = UnicodeAttribute(null=True)
    # Raised by every change of time, place, mode or join details: the SEQUENCE of its invitations.
    calendar_sequence = NumberAttribute(default=0)
    # Reminders: minutes before the start (unset: the configured default), and those done
    # ("confirmed:1440", "waitlisted:1440"), so a run does not read the people again.
    reminder_offsets = ListAttribute(of=NumberAttribute, null=True)
    reminders_done = ListAttribute(of=UnicodeAttribute, null=True)
    tables = ListAttribute(of=ThemeTable, null=True)  # its theme tables, in the order shown
    table_change_until = UnicodeAttribute(null=True)  # people may change table until then

    by_start = MeetupsByStart()
    by_province = MeetupsByProvince()
    by_chain = MeetupsByChain()


# --- registrations ---------------------------------------------------------------------------

REGISTRATION_PREFIX = "R#"
EMAIL_GUARD_PREFIX = "E#"
WAITLIST_KEY = "LINE"  # the legacy one-item line (LegacyWaitlist), only read by the migration
WAITLIST_PREFIX = "W#"  # W#<ticket>: one waiting person
DEPARTURE_PREFIX = "D#"  # D#<ticket>: a waiting person who left the line (not promoted)
TICKET_DIGITS = 12


def ticket_key(prefix: str, ticket: int) -> str:
    return f"{prefix}{int(ticket):0{TICKET_DIGITS}d}"


# A meetup's items are spread over three partition keys: one key takes 1,000 write units/s, and
# a sign-up writes its registration, its address guard and (waiting) its line entry, each a
# transactional write of 2 units. Together in one key they would cap a meetup at 166 sign-ups/s;
# apart, each key takes 2 units per sign-up (the registrations' key 4 when a theme table's seat
# is taken with it): at least 250 sign-ups/s into one meetup.
def line_partition(meetup_id: str) -> str:
    """The key of a meetup's line: its `W#` entries and `D#` departures."""
    return f"{meetup_id}#line"


def guard_partition(meetup_id: str) -> str:
    """The key of a meetup's address guards (`E#`)."""
    return f"{meetup_id}#guards"


ERASURE_DUE = "due"  # the one value of `erase_due`: keeps `by_erasure` sparse
ERASURE_AUDIT_PARTITION = "#erasures"  # never a meetup id ('#' is not in one)
ERASURE_AUDIT_PREFIX = "X#"


class RegistrationsByEmail(GlobalSecondaryIndex):
    """Finds an address's registrations (erasure, "mail me my links") without a Scan: keyed by a
    hash of the normalised address (chalicelib.privacy.address_hash), never the address."""
    Meta = _index_meta("by_email", KeysOnlyProjection())
    email_hash = UnicodeAttribute(hash_key=True)


class RegistrationsByErasure(GlobalSecondaryIndex):
    """Cancelled registrations whose personal data is still there, by when it must go (sparse)."""
    Meta = _index_meta("by_erasure", KeysOnlyProjection())
    erase_due = UnicodeAttribute(hash_key=True)
    erase_after = UnicodeAttribute(range_key=True)


class Registration(Model):
    """A sign-up; sort key `R#<id>` in the meetup's partition. Once erased (`erased_at`), only
    what the counts need stays: status, role, municipality, language and the times."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    status = UnicodeAttribute()  # confirmed | waitlisted | cancelled
    name = UnicodeAttribute(null=True)  # null once erased
    email = UnicodeAttribute(null=True)  # null once erased
    email_hash = UnicodeAttribute(null=True)
    role = UnicodeAttribute()
    organisation = UnicodeAttribute(null=True)
    municipality = UnicodeAttribute(null=True)
    theme = UnicodeAttribute(null=True)
    language = UnicodeAttribute(default="nl")
    follow_up_opt_in = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    promoted_at = UnicodeAttribute(null=True)
    cancelled_at = UnicodeAttribute(null=True)
    # Consent: when the privacy statement (which version) was accepted; the follow-up opt-in apart.
    consent_at = UnicodeAttribute(null=True)
    consent_version = UnicodeAttribute(null=True)
    follow_up_consent_at = UnicodeAttribute(null=True)
    follow_up_withdrawn_at = UnicodeAttribute(null=True)
    link_sent_at = UnicodeAttribute(null=True)  # the manage link last mailed again (at most every 10 min)
    erase_due = UnicodeAttribute(null=True)  # set while cancelled and not yet erased: `by_erasure`
    erase_after = UnicodeAttribute(null=True)
    erased_at = UnicodeAttribute(null=True)
    joined_at = UnicodeAttribute(null=True)  # the first click on the personal join link
    table_id = UnicodeAttribute(null=True)  # the theme table: chosen, or given by the spread rule
    table_given = BooleanAttribute(null=True)  # true when the spread rule chose it
    waitlist_ticket = NumberAttribute(null=True)  # while (or once) waitlisted: its place in the sequence

    by_email = RegistrationsByEmail()
    by_erasure = RegistrationsByErasure()


class WaitlistEntry(Model):
    """One waiting person: sort key `W#<ticket>` (zero-padded) in the meetup's partition, so a
    Query of `W#` returns the line in order, first in line first. Put in the join's transaction
    (the ticket comes from the meetup's `waitlist_seq`), deleted by the promotion or departure."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    registration_id = UnicodeAttribute()
    ticket = NumberAttribute()
    expires_at = TTLAttribute(null=True)  # the meetup's end + the retention period


class Departure(Model):
    """A waiting person who left the line (cancelled, erased): sort key `D#<ticket>`. Positions
    count the departures ahead of a ticket: position = ticket - promoted - departures ahead."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    expires_at = TTLAttribute(null=True)  # the meetup's end + the retention period


class LegacyWaitlist(Model):
    """The old line: one item per meetup (sort key `LINE`) holding a list of registration ids.
    Only `chalicelib.migrate_waitlists` reads it, to convert it into `W#` entries."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=WAITLIST_KEY)
    line = ListAttribute(of=UnicodeAttribute, default=list)


class TableSeats(Model):
    """The seats of one theme table: sort key `T#<table id>` in the meetup's partition. A seat is
    taken in the same transaction that puts a person at the table, conditioned on
    `seated < capacity`, so the database never seats more than the table holds."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    table_id = UnicodeAttribute()
    capacity = NumberAttribute()
    seated = NumberAttribute(default=0)


class EmailGuard(Model):
    """Holds one active registration per (meetup, lower-cased email): sort key `E#<sha256>`.

    Created in the sign-up transaction with `attribute_not_exists`, deleted on cancellation,
    so the database itself refuses a second active place for the same address."""
    Meta = _meta("registrations")
    meetup_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    registration_id = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)  # the meetup's end + the retention period (the job deletes it too)


class ErasureRecord(Model):
    """The audit trail of erasures: when, by whom, what; the address only as its hash."""
    Meta = _meta("registrations")
    partition = UnicodeAttribute(hash_key=True, attr_name="meetup_id", default=ERASURE_AUDIT_PARTITION)
    sk = UnicodeAttribute(range_key=True)  # X#<stamp>#<random>
    address_hash = UnicodeAttribute(null=True)  # not `email_hash`: an audit record stays out of `by_email`
    registration_id = UnicodeAttribute(null=True)
    actor = UnicodeAttribute()
    reason = UnicodeAttribute()  # request | retention
    erased = JSONAttribute(default=dict)
    at = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


# --- activity log (read by the digest, by time) -------------------------------------------------

# A day's changes are spread over this many partitions (`<day>#<shard>`), the shard taken from
# the record's random suffix: one partition takes 1,000 write units/s, so a single day key would
# cap the country at about 500 changes/s (a change is a transactional write, 2 units).
ACTIVITY_SHARDS = 8


def activity_keys(now) -> dict:
    """The keys of a new activity record written at `now`: {"day": "<UTC day>#<shard>", "sk"}."""
    suffix = secrets.token_hex(4)
    return {"day": f"{now.strftime('%Y-%m-%d')}#{int(suffix, 16) % ACTIVITY_SHARDS}",
            "sk": f"{clock.stamp(now)}#{suffix}"}


def activity_partitions(day: str) -> list[str]:
    """Every partition of one UTC day ("YYYY-MM-DD"): a reader of a day queries them all."""
    return [f"{day}#{shard}" for shard in range(ACTIVITY_SHARDS)]


class Activity(Model):
    """One change, written in the same transaction as the change. Partitioned by UTC day and
    shard (activity_keys); sorted by time within a partition."""
    Meta = _meta("activity")
    day = UnicodeAttribute(hash_key=True)  # "<UTC day>#<shard>"
    sk = UnicodeAttribute(range_key=True)  # <stamp>#<id>
    type = UnicodeAttribute()
    meetup_id = UnicodeAttribute()
    province = UnicodeAttribute(null=True)
    details = CompactJSONAttribute(default=dict)
    expires_at = TTLAttribute(null=True)


# --- mail outbox ------------------------------------------------------------------------------

# Pending messages are spread over this many `due` values of the sparse `by_due` index (by their
# id): one value would be one partition taking every queued message of the country (1,000 index
# writes/s, and each message is written into it and removed from it).
OUTBOX_DUE_SHARDS = 8
OUTBOX_DUE_KEYS = tuple(f"due#{shard}" for shard in range(OUTBOX_DUE_SHARDS))


def outbox_due_key(message_id: str) -> str:
    """The `due` value of a pending message: its shard of `by_due`, fixed by its id."""
    return OUTBOX_DUE_KEYS[zlib.crc32(message_id.encode()) % OUTBOX_DUE_SHARDS]

class OutboxByDue(GlobalSecondaryIndex):
    Meta = _index_meta("by_due", KeysOnlyProjection())  # keys only: a message's body is not copied
    due = UnicodeAttribute(hash_key=True)
    next_attempt_at = UnicodeAttribute(range_key=True)


class OutboxByRecipient(GlobalSecondaryIndex):
    """Queued mail of an address (erasure), by the hash of the address; sparse: a message leaves it
    when it is sent or given up, which also removes its content and address."""
    Meta = _index_meta("by_recipient", KeysOnlyProjection())
    recipient_hash = UnicodeAttribute(hash_key=True)


class OutboxMessage(Model):
    Meta = _meta("outbox")
    id = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute(default=OutboxState.PENDING)  # pending | sending | sent | failed | suppressed
    due = UnicodeAttribute(null=True)  # outbox_due_key(id) while pending: keeps `by_due` sparse
    next_attempt_at = UnicodeAttribute(null=True)
    lease_until = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    recipient = UnicodeAttribute(null=True)  # removed, with `context`, once sent or given up
    recipient_hash = UnicodeAttribute(null=True)
    template = UnicodeAttribute()
    language = UnicodeAttribute(default="nl")
    context = CompactJSONAttribute(default=dict)
    last_error = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    sent_at = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_due = OutboxByDue()
    by_recipient = OutboxByRecipient()


# --- handovers --------------------------------------------------------------------------------

class AuditEntry(MapAttribute):
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    note = UnicodeAttribute(null=True)


class Handover(Model):
    """Keyed by the outgoing meetup: the key itself allows one handover per meetup."""
    Meta = _meta("handovers")
    from_meetup_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute()
    to_meetup_id = UnicodeAttribute()
    status = UnicodeAttribute(default=HandoverStatus.PROPOSED)  # proposed | accepted | completed
    audit = ListAttribute(of=AuditEntry, default=list)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    request_key = UnicodeAttribute(null=True)  # hash of Idempotency-Key + body of the creating request
    invitations_queued = NumberAttribute(null=True)  # set once the follow-up invitations are queued


# --- organisers -------------------------------------------------------------------------------

class OrganisersByFrequency(GlobalSecondaryIndex):
    Meta = _index_meta("by_frequency")
    frequency = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class OrganisersByEmail(GlobalSecondaryIndex):
    Meta = _index_meta("by_email", KeysOnlyProjection())
    email_hash = UnicodeAttribute(hash_key=True)


class Organiser(Model):
    Meta = _meta("organisers")
    id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    email_hash = UnicodeAttribute(null=True)
    name = UnicodeAttribute()
    scope_kind = UnicodeAttribute()  # all | province | meetup
    scope_value = UnicodeAttribute(null=True)
    frequency = UnicodeAttribute()  # daily | weekly
    language = UnicodeAttribute(default="nl")
    created_at = UnicodeAttribute()
    covered_until = UnicodeAttribute()  # changes up to here were in a digest
    last_period = UnicodeAttribute(null=True)
    claimed_period = UnicodeAttribute(null=True)
    claim_until = UnicodeAttribute(null=True)
    last_sent_at = UnicodeAttribute(null=True)  # when the last digest was sent (not: skipped)

    by_frequency = OrganisersByFrequency()
    by_email = OrganisersByEmail()


# --- background jobs ----------------------------------------------------------------------------

JOB_UNFINISHED = "open"  # the one value of `unfinished`: keeps `by_unfinished` sparse


class JobsByUnfinished(GlobalSecondaryIndex):
    """Queued and running jobs, least recently touched first: the schedule resumes stalled ones."""
    Meta = _index_meta("by_unfinished", KeysOnlyProjection())
    unfinished = UnicodeAttribute(hash_key=True)
    updated_at = UnicodeAttribute(range_key=True)


class Job(Model):
    """Bulk work an admin request started (chalicelib/jobs.py): resumable from `cursor`, run by
    whoever holds the lease (`lease_until`, also the claim's token)."""
    Meta = _meta("jobs")
    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()  # meetup_cancelled | promotions | invitations
    meetup_id = UnicodeAttribute()
    params = JSONAttribute(default=dict)
    state = UnicodeAttribute(default=JobState.QUEUED)  # queued | running | done | failed
    unfinished = UnicodeAttribute(null=True)  # JOB_UNFINISHED while queued or running
    done = NumberAttribute(default=0)
    total = NumberAttribute(null=True)
    cursor = UnicodeAttribute(null=True)  # the last registration sk processed
    pages = NumberAttribute(default=0)
    lease_until = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)  # failed runs in a row
    error = JSONAttribute(null=True)  # {"code", "nl", "en"} once failed
    actor = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_unfinished = JobsByUnfinished()


# --- admin tokens -----------------------------------------------------------------------------

class AdminToken(Model):
    """Only the SHA-256 of a token is stored."""
    Meta = _meta("admin_tokens")
    token_hash = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = UnicodeAttribute()


# --- suppressed addresses (hard bounces and complaints, from SES) -----------------------------------

class Suppression(Model):
    """An address no mail goes to any more: SES reported a permanent bounce or a complaint.
    Keyed by the SHA-256 of the normalised address (chalicelib.suppression.address_key): the
    table never holds the address itself."""
    Meta = _meta("suppressions")
    address_hash = UnicodeAttribute(hash_key=True)
    reason = UnicodeAttribute()  # bounce | complaint
    detail = UnicodeAttribute(null=True)  # SES's bounce subtype or complaint feedback type
    suppressed_at = UnicodeAttribute()
    events = NumberAttribute(default=1)


# --- outcomes, the admin's tag list, the youth council (one table, `outcomes`) ---------------------

OUTCOME_STATE_KEY = "STATE"
OUTCOME_ITEM_PREFIX = "I#"
OUTCOME_AUDIT_PREFIX = "A#"
CONFIG_PARTITION = "#config"  # never a meetup id ('#' is not in one)
TAGS_KEY = "TAGS"
COUNCIL_PARTITION = "#council"
COUNCIL_CODE_PREFIX = "C#"
IDEAS_PREFIX = "IDEAS#"  # + the province's slug, or "landelijk": one partition per province
IDEA_PREFIX = "I#"
IDEA_AUDIT_PREFIX = "A#"


class OutcomeState(Model):
    """Whether a meetup's outcomes are final: one item in the meetup's partition (`pk` = meetup id).
    Finalising is one conditional update (status <> final); every draft edit is a transaction
    that checks this item is not final."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=OUTCOME_STATE_KEY)
    status = UnicodeAttribute(default=OutcomeStatus.DRAFT)  # draft | final
    finalised_at = UnicodeAttribute(null=True)
    finalised_by = UnicodeAttribute(null=True)
    links_sent_at = UnicodeAttribute(null=True)  # the scheduled job mailed the host and moderators


class OutcomeItem(Model):
    """A key condition or a concrete solution of one table of a meetup: `I#<table id>#<item id>`."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True)  # the meetup id: a meetup's outcomes are one Query
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    table_id = UnicodeAttribute()
    kind = UnicodeAttribute()  # condition | solution
    title = UnicodeAttribute()
    explanation = UnicodeAttribute(null=True)
    actors = ListAttribute(of=UnicodeAttribute, default=list)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class OutcomeAudit(Model):
    """Who changed what of a meetup's outcomes, when: `A#<stamp>#<random>`. No email addresses:
    the actor is "host", "moderator <table id>" or "admin <token name>"."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()  # added | changed | removed | finalised | reopened
    item_id = UnicodeAttribute(null=True)
    table_id = UnicodeAttribute(null=True)
    changes = JSONAttribute(null=True)  # {field: {"before", "after"}}


class TagList(Model):
    """The fixed list of theme tags the admin maintains."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True, default=CONFIG_PARTITION)
    sk = UnicodeAttribute(range_key=True, default=TAGS_KEY)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    updated_at = UnicodeAttribute(null=True)


class CouncilCode(Model):
    """A youth council code: only its SHA-256 is stored (like admin tokens)."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True, default=COUNCIL_PARTITION)
    sk = UnicodeAttribute(range_key=True)  # C#<sha256 of the code>
    label = UnicodeAttribute(null=True)  # the admin's note, e.g. "jeugdraad 2027"; never a child's name
    created_at = UnicodeAttribute()
    revoked_at = UnicodeAttribute(null=True)


class Idea(Model):
    """An idea of the youth council. Holds nothing that identifies a child: no name, address,
    IP, user agent, council code, nor a time finer than the day."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True)  # IDEAS#<province slug | landelijk>
    sk = UnicodeAttribute(range_key=True)  # I#<id>
    id = UnicodeAttribute()
    title = UnicodeAttribute()
    text = UnicodeAttribute()
    age_band = UnicodeAttribute()  # 12-13 | 14-15 | 16
    province = UnicodeAttribute(null=True)
    tag = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=IdeaStatus.PENDING)  # pending | approved | rejected
    submitted_on = UnicodeAttribute()  # the date only


class IdeaAudit(Model):
    """An admin's decision on or edit of an idea: `A#<idea id>#<stamp>`; which fields were edited,
    never the removed text."""
    Meta = _meta("outcomes")
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UnicodeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()  # approved | rejected | edited
    fields = ListAttribute(of=UnicodeAttribute, null=True)


ALL_MODELS = (Meetup, Registration, WaitlistEntry, Departure, LegacyWaitlist, EmailGuard, TableSeats, ErasureRecord,
              Activity, OutboxMessage, Handover, Organiser, AdminToken, Suppression, OutcomeState, OutcomeItem,
              OutcomeAudit, TagList, CouncilCode, Idea, IdeaAudit, Job)
