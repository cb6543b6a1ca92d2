"""Prometheus metrics, on the default registry that Synapse's metrics listener exposes.

Created once per process (module import), so that several module instances in one test process
do not register the same name twice.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TAGS_RECORDED = Counter(
    "servership_tags_recorded_total",
    "Participation tags newly recorded (first local join, or start-up backfill)",
    ["source"],
)
DISCOVERY_REQUESTS = Counter(
    "servership_discovery_requests_total",
    "discover_common_rooms requests answered, by outcome (ok or the Matrix errcode)",
    ["outcome"],
)
INVITES_CHECKED = Counter(
    "servership_invites_checked_total",
    "Invites checked, by endpoint (v3, spec) and outcome (ok, warned, or the errcode)",
    ["endpoint", "outcome"],
)
INVITES_SENT = Counter(
    "servership_invites_sent_total",
    "Invites to remote users sent by us, by protocol (msc4329)",
    ["protocol"],
)
KNOCKS_RECEIVED = Counter(
    "servership_knocks_received_total",
    "m.server.knock EDUs received, by outcome (recorded, invalid, disabled)",
    ["outcome"],
)
KNOCK_DECISIONS = Counter(
    "servership_knock_decisions_total",
    "Knocks on our rooms decided through the admin API (accepted, refused, denied by the core)",
    ["decision"],
)
KNOCK_ACCEPTANCES = Counter(
    "servership_knock_acceptances_total",
    "org.servership.knock.accepted EDUs received, by outcome (accepted, ignored)",
    ["outcome"],
)
GATED_JOINS = Counter(
    "servership_gated_joins_total",
    "Remote joins into gated rooms, by decision (allowed, refused)",
    ["decision"],
)
AUDITS = Counter(
    "servership_audits_total",
    "Discovery audits run, by verdict (consistent, hidden_branch_suspected, "
    "removed_by_other_server, inconclusive) or failed (the audit itself could not run)",
    ["result"],
)
AUDITS_PENDING = Gauge(
    "servership_audits_pending",
    "Audits waiting in the queue (background-tasks process)",
)
AUDIT_REMOVED = Counter(
    "servership_audit_removed_by_other_total",
    "Peers that recognised a room and were, in our view, kicked or banned by another server",
)
AUDIT_REQUESTS = Counter(
    "servership_audit_requests_total",
    "discover_common_rooms requests sent to peers, by outcome (ok, error)",
    ["outcome"],
)
AUDIT_UNEXPLAINED = Counter(
    "servership_audit_unexplained_total",
    "Peers that recognised a room but have no membership in it (possible hidden branch)",
)
AUDIT_LAST_UNEXPLAINED = Gauge(
    "servership_audit_last_unexplained",
    "Unexplained participants found by the most recent audit",
)
JOINS_REFUSED = Counter(
    "servership_joins_refused_total",
    "Remote joins refused, by path (make_join, send_join, send, federated) and reason code",
    ["path", "reason"],
)
JOIN_RULES_REFUSED = Counter(
    "servership_join_rules_refused_total",
    "Local join-rule changes refused because the room version does not know the rule",
)
KNOCKS_PURGED = Counter(
    "servership_knocks_purged_total",
    "Expired knocks deleted by the scheduled purge (purged), and purges that failed (failed)",
    ["outcome"],
)
PEEK_REQUESTS = Counter(
    "servership_peek_requests_total",
    "Peek requests of local users, by outcome (joined, renewed, refused reason, join_failed...)",
    ["outcome"],
)
PEEK_LEAVES = Counter(
    "servership_peek_leaves_total",
    "Leaves of our pseudouser from peeked rooms, by outcome (left, failed)",
    ["outcome"],
)
PEEK_SESSIONS = Gauge(
    "servership_peek_sessions",
    "Open peek sessions of local users",
)
PEEK_LURES_IGNORED = Counter(
    "servership_peek_lures_ignored_total",
    "Remote invites of our pseudouser, which never make this server join",
)
S2S_INVITES = Counter(
    "servership_s2s_invites_total",
    "Remote invites of our pseudouser, by outcome (accepted, or the reason it was rejected)",
    ["outcome"],
)
S2S_NEGOTIATION_EVENTS = Counter(
    "servership_s2s_negotiation_events_total",
    "m.s2s.upgrade* events from peers, by outcome (handled, refused, not_a_pseudouser)",
    ["outcome"],
)
S2S_UPGRADES = Counter(
    "servership_s2s_upgrades_total",
    "s2s room upgrades (upgraded, failed) and tombstones followed (followed)",
    ["outcome"],
)
