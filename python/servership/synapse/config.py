"""The module's configuration: parsed once at start-up, every error names the bad key.

The reference for every key is ``docs/synapse.md``. Keys are written there and in error
messages with the ``servership.`` prefix, e.g. ``servership.discovery.max_tags_per_request``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import _compat

PREFIX = "servership"

_SERVER_NAME = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_USER_ID = re.compile(r"^@[^:]+:.+$")
_ROOM_ID = re.compile(r"^![^\s]+$")


@dataclass(frozen=True)
class DiscoveryConfig:
    """MSC4358: the ``discover_common_rooms`` endpoint and its limits."""

    enabled: bool = True
    stable_path: bool = False
    max_tags_per_request: int = 1000
    budget_tags: int = 10_000
    budget_window_seconds: int = 3600
    #: Answer only origins that share at least one room with us (see docs/protocol.md).
    require_shared_room: bool = True


@dataclass(frozen=True)
class InvitesConfig:
    """MSC4329 invite endpoint and MSC4311 checks of spec invites."""

    enabled: bool = True
    stable_v3_path: bool = False
    mode: str = "warn"  # for spec (v1/v2) invites: "warn" or "reject"
    send_msc4329: bool = False  # send our invites with the create event (fallback: v2)
    #: The bound on fetching the keys an MSC4329 invite's ``state`` needs (seconds, in all).
    key_fetch_seconds: int = 5


@dataclass(frozen=True)
class KnocksConfig:
    """MSC4099 server knocks and gated rooms."""

    enabled: bool = True
    expiry_seconds: int = 7 * 24 * 3600
    gated_rooms: tuple[str, ...] = ()
    max_per_origin: int = 20  # new knocks per origin per origin_window_seconds
    origin_window_seconds: int = 3600
    purge_interval_seconds: int = 3600


@dataclass(frozen=True)
class AuditConfig:
    """MSC4358 audits after a local user joins a room."""

    enabled: bool = False
    max_peers: int = 20
    spread_seconds: int = 300
    request_timeout_seconds: int = 30
    notify_admin: str | None = None
    #: How often the background-tasks process looks for due audits.
    poll_seconds: int = 10
    #: Audits run per hour at most (the rest wait in the queue).
    max_audits_per_hour: int = 20


@dataclass(frozen=True)
class MembersRoomVersionConfig:
    """The members room version (issue 14) applied in Synapse's own event auth."""

    #: Off by default: with it on, the module wraps two functions of Synapse's event auth.
    enabled: bool = False


@dataclass(frozen=True)
class PeekingConfig:
    """MSC1777 peeking for local users through this server's pseudouser (``peeking.py``)."""

    #: Off by default: with it on, local users can make this server join remote rooms.
    enabled: bool = False
    #: A peek session ends this long after it was opened or last renewed.
    session_seconds: int = 300
    #: Open sessions per local user (each is one room).
    max_sessions_per_user: int = 10
    #: Rooms this server peeks into at once (joins of its pseudouser kept for peekers).
    max_rooms: int = 100
    #: Servers named in one request's ``via`` list.
    max_via: int = 10
    #: Events one read returns at most.
    max_events: int = 100
    #: How often the background-tasks process ends expired sessions and leaves idle rooms.
    check_interval_seconds: int = 30


@dataclass(frozen=True)
class S2SConfig:
    """MSC3348 s2s rooms driven by the module (``s2s_rooms.py``)."""

    #: Off by default: with it on, remote invites of our pseudouser to s2s rooms are accepted.
    enabled: bool = False
    #: The core's ``ServerUserPolicy`` an invite of our pseudouser must pass (``s2s_only``,
    #: ``either`` or ``peeking``; under ``peeking`` no invite is ever accepted).
    policy: str = "s2s_only"
    #: s2s rooms our pseudouser stays joined to at most (a remote server cannot make us join more).
    max_rooms: int = 100
    #: What this server offers in an upgrade negotiation: (room version, rating); the members
    #: room version, or a room version Synapse knows.
    versions: tuple[tuple[str, int], ...] = (("org.servership.v12.members.1", 10),)
    #: Versions older than this are never offered (downgrade protection); ``None``: no floor.
    floor: str | None = None
    #: How often unfinished negotiations are ticked (loss repair, time-out).
    tick_seconds: int = 5


@dataclass(frozen=True)
class StoreConfig:
    """Where servership keeps its tags, knocks, budgets and audit queue."""

    #: ``sqlite`` (the default: the file ``store_path``) or ``postgres``.
    backend: str = "sqlite"
    #: For ``postgres``: a libpq connection string; ``None`` reuses Synapse's own ``database:``
    #: settings (it must run on ``psycopg2``), so no second password is configured.
    dsn: str | None = None


@dataclass(frozen=True)
class ServershipConfig:
    """Everything the module needs, validated."""

    #: The SQLite file (backend ``sqlite``); ``None`` with ``store.backend: postgres``.
    store_path: str | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    invites: InvitesConfig = field(default_factory=InvitesConfig)
    knocks: KnocksConfig = field(default_factory=KnocksConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    members_room_version: MembersRoomVersionConfig = field(
        default_factory=MembersRoomVersionConfig
    )
    peeking: PeekingConfig = field(default_factory=PeekingConfig)
    s2s: S2SConfig = field(default_factory=S2SConfig)
    pseudousers: bool = False
    allow_untested_synapse: bool = False
    denied_servers: tuple[str, ...] = ()  # server globs refused as pseudousers (members.py)
    denied_rooms: tuple[str, ...] = ()


def _err(key: str, what: str) -> Exception:
    return _compat.ConfigError(f"{PREFIX}.{key} {what}")


def _section(raw: Any, key: str) -> Mapping[str, Any]:
    """A sub-mapping; ``true``/``false`` are accepted as ``{enabled: ...}`` shorthands."""
    if raw is None:
        return {}
    if isinstance(raw, bool):
        return {"enabled": raw}
    if not isinstance(raw, Mapping):
        raise _err(key, "must be a mapping or true/false")
    return raw


def _known(section: Mapping[str, Any], key: str, allowed: set[str]) -> None:
    for name in section:
        if name not in allowed:
            where = f"{key}.{name}" if key else str(name)
            raise _err(where, f"is not a known setting (known: {', '.join(sorted(allowed))})")


def _bool(section: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
    value = section.get(name, default)
    if not isinstance(value, bool):
        raise _err(f"{key}.{name}" if key else name, "must be true or false")
    return value


def _positive(section: Mapping[str, Any], key: str, name: str, default: int) -> int:
    value = section.get(name, default)
    # bool is an int subclass; "true" is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _err(f"{key}.{name}", "must be a positive integer")
    return value


def _non_negative(section: Mapping[str, Any], key: str, name: str, default: int) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _err(f"{key}.{name}", "must be a non-negative integer")
    return value


def _store_path(raw: Mapping[str, Any], synapse_db_paths: list[str]) -> str:
    value = raw.get("store_path")
    if value is None:
        raise _err("store_path", "is required (a file path for servership's own SQLite store)")
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _err("store_path", "must be a non-empty file path")
    if value == ":memory:":
        raise _err("store_path", "must be a file: tags must survive restarts")
    path = os.path.abspath(value)
    for db in synapse_db_paths:
        if db and os.path.abspath(db) == path:
            raise _err(
                "store_path",
                "must not be Synapse's own database file; use a separate file such as "
                "/var/lib/synapse/servership.db",
            )
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        raise _err("store_path", f"is in a directory that does not exist: {parent}")
    return path


#: The libpq keywords servership's PostgreSQL client understands, taken from Synapse's
#: ``database.args`` (psycopg2 passes them to libpq); the rest (``cp_min``, ``cp_max``...) are
#: Synapse's own.
_LIBPQ_KEYS = {
    "host": "host",
    "hostaddr": "hostaddr",
    "port": "port",
    "user": "user",
    "password": "password",
    "database": "dbname",
    "dbname": "dbname",
    "options": "options",
    "application_name": "application_name",
    "connect_timeout": "connect_timeout",
    "keepalives": "keepalives",
    "keepalives_idle": "keepalives_idle",
    "target_session_attrs": "target_session_attrs",
}
#: ``sslmode`` values that work without TLS (servership's client has none yet).
_PLAIN_SSLMODES = {"disable", "allow", "prefer"}


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dsn_from_synapse_args(args: Mapping[str, Any]) -> str:
    """A libpq ``key=value`` connection string from Synapse's ``database.args`` (psycopg2).

    ``database`` becomes ``dbname``; ``cp_*`` and other pool settings are dropped; a missing
    ``host`` is the Debian socket directory ``/var/run/postgresql`` and a missing ``user`` the
    operating-system user, as libpq would pick. TLS (``sslmode`` ``require``/``verify-*``) is
    refused: servership's client does not speak it yet, so ``store.dsn`` must be given instead.
    """
    pairs: dict[str, str] = {}
    for key, value in args.items():
        if key == "sslmode":
            if str(value) not in _PLAIN_SSLMODES:
                raise _err(
                    "store.backend",
                    f"postgres cannot reuse Synapse's database settings with sslmode={value}: "
                    "servership's PostgreSQL client has no TLS yet; give store.dsn instead",
                )
            continue
        name = _LIBPQ_KEYS.get(str(key))
        if name is None or value is None:
            continue
        pairs[name] = str(value)
    pairs.setdefault("host", "/var/run/postgresql")
    if "user" not in pairs:
        import getpass

        pairs["user"] = getpass.getuser()
    if "dbname" not in pairs:
        raise _err("store.backend", "postgres: Synapse's database.args has no database name")
    return " ".join(f"{k}={_libpq_quote(v)}" for k, v in sorted(pairs.items()))


def _looks_like_dsn(value: str) -> bool:
    if value.startswith(("postgresql://", "postgres://")):
        return True
    first = value.split(None, 1)[0] if value.split() else ""
    return "=" in first and first.split("=", 1)[0] in set(_LIBPQ_KEYS.values()) | {"sslmode"}


def _store(raw: Mapping[str, Any]) -> StoreConfig:
    section = raw.get("store")
    if section is None:
        return StoreConfig()
    if not isinstance(section, Mapping):
        raise _err("store", "must be a mapping such as {backend: postgres}")
    _known(section, "store", {"backend", "dsn"})
    backend = section.get("backend", "sqlite")
    if backend not in ("sqlite", "postgres"):
        raise _err("store.backend", "must be sqlite or postgres")
    dsn = section.get("dsn")
    if dsn is not None:
        if backend != "postgres":
            raise _err("store.dsn", "is only for store.backend: postgres")
        if not isinstance(dsn, str) or "\0" in dsn or not _looks_like_dsn(dsn.strip()):
            raise _err(
                "store.dsn",
                "must be a PostgreSQL connection string (postgresql://user@host/db or "
                "host=... dbname=...)",
            )
        dsn = dsn.strip()
    return StoreConfig(backend=backend, dsn=dsn)


def parse(raw: Any, synapse_db_paths: list[str] | None = None) -> ServershipConfig:
    """Validate the ``config:`` mapping from ``homeserver.yaml``.

    ``synapse_db_paths`` are Synapse's SQLite database files, which ``store_path`` must not
    name (two SQLite libraries in one process must never share a file).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _compat.ConfigError(f"{PREFIX} config must be a mapping")
    _known(
        raw,
        "",
        {
            "store_path",
            "store",
            "discovery",
            "invites",
            "knocks",
            "gated_rooms",
            "pseudousers",
            "denied_servers",
            "denied_rooms",
            "audit",
            "members_room_version",
            "peeking",
            "s2s",
            "allow_untested_synapse",
        },
    )
    store = _store(raw)
    if store.backend == "sqlite":
        store_path: str | None = _store_path(raw, synapse_db_paths or [])
    elif raw.get("store_path") is not None:
        raise _err("store_path", "is for store.backend: sqlite; remove it with backend postgres")
    else:
        store_path = None

    d = _section(raw.get("discovery"), "discovery")
    _known(
        d,
        "discovery",
        {"enabled", "stable_path", "max_tags_per_request", "budget_tags", "budget_window_seconds",
         "require_shared_room"},
    )
    discovery = DiscoveryConfig(
        enabled=_bool(d, "discovery", "enabled", True),
        stable_path=_bool(d, "discovery", "stable_path", False),
        max_tags_per_request=_positive(d, "discovery", "max_tags_per_request", 1000),
        budget_tags=_positive(d, "discovery", "budget_tags", 10_000),
        budget_window_seconds=_positive(d, "discovery", "budget_window_seconds", 3600),
        require_shared_room=_bool(d, "discovery", "require_shared_room", True),
    )
    if discovery.budget_tags < discovery.max_tags_per_request:
        raise _err(
            "discovery.budget_tags",
            "must be at least discovery.max_tags_per_request, or no full request could pass",
        )

    i = _section(raw.get("invites"), "invites")
    _known(i, "invites", {"enabled", "stable_v3_path", "mode", "send_msc4329",
                          "key_fetch_seconds"})
    mode = i.get("mode", "warn")
    if mode not in ("warn", "reject"):
        raise _err("invites.mode", 'must be "warn" or "reject"')
    invites = InvitesConfig(
        enabled=_bool(i, "invites", "enabled", True),
        stable_v3_path=_bool(i, "invites", "stable_v3_path", False),
        mode=mode,
        send_msc4329=_bool(i, "invites", "send_msc4329", False),
        key_fetch_seconds=_positive(i, "invites", "key_fetch_seconds", 5),
    )

    k = _section(raw.get("knocks"), "knocks")
    _known(
        k,
        "knocks",
        {
            "enabled",
            "expiry_seconds",
            "max_per_origin",
            "origin_window_seconds",
            "purge_interval_seconds",
        },
    )
    gated_raw = raw.get("gated_rooms", [])
    if not isinstance(gated_raw, list):
        raise _err("gated_rooms", "must be a list of room IDs")
    for index, room in enumerate(gated_raw):
        if not isinstance(room, str) or not _ROOM_ID.match(room):
            raise _err(f"gated_rooms[{index}]", "must be a room ID starting with '!'")
    knocks = KnocksConfig(
        enabled=_bool(k, "knocks", "enabled", True),
        expiry_seconds=_positive(k, "knocks", "expiry_seconds", 7 * 24 * 3600),
        gated_rooms=tuple(dict.fromkeys(gated_raw)),
        max_per_origin=_non_negative(k, "knocks", "max_per_origin", 20),
        origin_window_seconds=_positive(k, "knocks", "origin_window_seconds", 3600),
        purge_interval_seconds=_positive(k, "knocks", "purge_interval_seconds", 3600),
    )
    denied_servers = _strings(raw, "denied_servers", lambda s: 0 < len(s) <= 65536, "a server glob")
    denied_rooms = _strings(raw, "denied_rooms", lambda s: bool(_ROOM_ID.match(s)), "a room ID")

    a = _section(raw.get("audit"), "audit")
    _known(
        a,
        "audit",
        {"enabled", "max_peers", "spread_seconds", "request_timeout_seconds", "notify_admin",
         "poll_seconds", "max_audits_per_hour"},
    )
    notify = a.get("notify_admin")
    if notify is not None and (not isinstance(notify, str) or not _USER_ID.match(notify)):
        raise _err("audit.notify_admin", 'must be a user ID like "@admin:example.org"')
    audit = AuditConfig(
        enabled=_bool(a, "audit", "enabled", False),
        max_peers=_positive(a, "audit", "max_peers", 20),
        spread_seconds=_non_negative(a, "audit", "spread_seconds", 300),
        request_timeout_seconds=_positive(a, "audit", "request_timeout_seconds", 30),
        notify_admin=notify,
        poll_seconds=_positive(a, "audit", "poll_seconds", 10),
        max_audits_per_hour=_positive(a, "audit", "max_audits_per_hour", 20),
    )
    if audit.enabled and not discovery.enabled:
        raise _err("audit.enabled", "needs discovery.enabled (audits use the same tags)")

    m = _section(raw.get("members_room_version"), "members_room_version")
    _known(m, "members_room_version", {"enabled"})
    members_room_version = MembersRoomVersionConfig(
        enabled=_bool(m, "members_room_version", "enabled", False)
    )

    peeking = _peeking(raw, members_room_version)
    s2s = _s2s(raw, members_room_version)

    allow_untested = _bool(raw, "", "allow_untested_synapse", False)
    _check_synapse(allow_untested, invites, members_room_version)
    if peeking.enabled:
        problem = _compat.peeking_problem()
        if problem is not None:
            raise _err(
                "peeking.enabled",
                f"needs Synapse's pagination internals as this module knows them, and this "
                f"Synapse differs ({problem}); set it to false on this Synapse",
            )

    if s2s.enabled:
        problem = _compat.s2s_problem()
        if problem is not None:
            raise _err("s2s.enabled", f"needs Synapse's room creation and upgrade internals as "
                       f"this module knows them, and this Synapse differs ({problem}); set it "
                       "to false on this Synapse")
        for index, (version, _rating) in enumerate(s2s.versions):
            if version != MEMBERS_VERSION and _compat.synapse_room_version(version) is None:
                raise _err(f"s2s.versions[{index}].version",
                           f"{version!r} is neither the members room version nor a room "
                           "version this Synapse knows")

    return ServershipConfig(
        store_path=store_path,
        store=store,
        discovery=discovery,
        invites=invites,
        knocks=knocks,
        audit=audit,
        members_room_version=members_room_version,
        peeking=peeking,
        s2s=s2s,
        pseudousers=_bool(raw, "", "pseudousers", False),
        allow_untested_synapse=allow_untested,
        denied_servers=denied_servers,
        denied_rooms=denied_rooms,
    )


def _peeking(raw: Mapping[str, Any], members: MembersRoomVersionConfig) -> PeekingConfig:
    p = _section(raw.get("peeking"), "peeking")
    _known(p, "peeking", {"enabled", "session_seconds", "max_sessions_per_user", "max_rooms",
                          "max_via", "max_events", "check_interval_seconds"})
    peeking = PeekingConfig(
        enabled=_bool(p, "peeking", "enabled", False),
        session_seconds=_positive(p, "peeking", "session_seconds", 300),
        max_sessions_per_user=_positive(p, "peeking", "max_sessions_per_user", 10),
        max_rooms=_positive(p, "peeking", "max_rooms", 100),
        max_via=_positive(p, "peeking", "max_via", 10),
        max_events=_positive(p, "peeking", "max_events", 100),
        check_interval_seconds=_positive(p, "peeking", "check_interval_seconds", 30),
    )
    if peeking.max_via > 50:
        raise _err("peeking.max_via", "must be at most 50 (each server may be tried in turn)")
    if peeking.max_events > 1000:
        raise _err("peeking.max_events", "must be at most 1000")
    if peeking.enabled and not members.enabled:
        # Only the members room version lets a pseudouser in without a user of its server
        # (peekable), and only its residents' event auth keeps the rule for everyone.
        raise _err("peeking.enabled", "needs members_room_version.enabled (peeking joins "
                   "rooms of the members room version only)")
    return peeking


#: The members room version's identifier, as negotiations name it.
MEMBERS_VERSION = "org.servership.v12.members.1"
_S2S_POLICIES = ("s2s_only", "either", "peeking")


def _s2s(raw: Mapping[str, Any], members: MembersRoomVersionConfig) -> S2SConfig:
    s = _section(raw.get("s2s"), "s2s")
    _known(s, "s2s", {"enabled", "policy", "max_rooms", "versions", "floor", "tick_seconds"})
    policy = s.get("policy", "s2s_only")
    if policy not in _S2S_POLICIES:
        raise _err("s2s.policy", f"must be one of {', '.join(_S2S_POLICIES)}")
    raw_versions = s.get("versions", [{"version": MEMBERS_VERSION, "rating": 10}])
    if not isinstance(raw_versions, list) or not 1 <= len(raw_versions) <= 64:
        raise _err("s2s.versions", "must be a list of 1 to 64 {version, rating} mappings")
    versions: list[tuple[str, int]] = []
    for index, entry in enumerate(raw_versions):
        key = f"s2s.versions[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != {"version", "rating"}:
            raise _err(key, "must be a mapping with exactly version and rating")
        version, rating = entry["version"], entry["rating"]
        if not isinstance(version, str) or not re.fullmatch(r"[a-z0-9.-]{1,32}", version):
            raise _err(f"{key}.version", "must be a room version ([a-z0-9.-], at most 32)")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 1000:
            raise _err(f"{key}.rating", "must be a whole number from 0 to 1000")
        if any(v == version for v, _ in versions):
            raise _err(f"{key}.version", f"{version!r} is listed twice")
        versions.append((version, rating))
    floor = s.get("floor")
    if floor is not None and (not isinstance(floor, str)
                              or not re.fullmatch(r"[a-z0-9.-]{1,32}", floor)):
        raise _err("s2s.floor", "must be a room version ([a-z0-9.-], at most 32)")
    s2s = S2SConfig(
        enabled=_bool(s, "s2s", "enabled", False),
        policy=policy,
        max_rooms=_positive(s, "s2s", "max_rooms", 100),
        versions=tuple(versions),
        floor=floor,
        tick_seconds=_positive(s, "s2s", "tick_seconds", 5),
    )
    if s2s.enabled and not members.enabled:
        raise _err("s2s.enabled", "needs members_room_version.enabled (s2s rooms are rooms of "
                   "the members room version: rule f lets their pseudousers join)")
    return s2s


def _check_synapse(
    allow_untested: bool, invites: InvitesConfig, members: MembersRoomVersionConfig
) -> None:
    """The running Synapse fits: inside the tested range (or ``allow_untested_synapse``), and
    with the internals of every feature switched on. Here, not in the module's ``__init__``,
    because Synapse reports a config error from ``parse_config`` as one clean line naming the
    key, and an exception from ``__init__`` as a traceback."""
    untested = _compat.untested_synapse()
    if untested is not None:
        if not allow_untested:
            raise _err(
                "allow_untested_synapse",
                f"is false and {untested}: use a Synapse in that range, or set "
                f"{PREFIX}.allow_untested_synapse: true to try this one",
            )
        _compat.logger.warning(
            "servership: %s; continuing because allow_untested_synapse is set "
            "(features whose Synapse internals are missing still refuse to start)",
            untested,
        )
    if invites.send_msc4329:
        problem = _compat.invite_sending_problem()
        if problem is not None:
            raise _err(
                "invites.send_msc4329",
                f"needs Synapse's invite-sending internals as of 1.158, which this Synapse "
                f"lacks ({problem}); set it to false on this Synapse",
            )
    if members.enabled:
        problem = _compat.members_auth_problem()
        if problem is not None:
            raise _err(
                "members_room_version.enabled",
                f"needs Synapse's event auth functions as this module knows them, and this "
                f"Synapse differs ({problem}); set it to false on this Synapse",
            )


def check_store_path(store_path: str, synapse_db_paths: list[str]) -> str:
    """``store_path`` checked against Synapse's own database files, which ``parse_config``
    cannot see (the module calls this from ``__init__``)."""
    return _store_path({"store_path": store_path}, synapse_db_paths)


def _strings(raw: Mapping[str, Any], key: str, ok: Any, what: str) -> tuple[str, ...]:
    """A list of strings, each passing ``ok``; errors name the index."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise _err(key, f"must be a list of {what}s")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not ok(item):
            raise _err(f"{key}[{index}]", f"must be {what}")
    return tuple(dict.fromkeys(value))


def server_name_ok(name: str) -> bool:
    """A rough server-name shape check for values we log or send (the core does the real one)."""
    return bool(_SERVER_NAME.match(name))
