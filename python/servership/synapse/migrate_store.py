"""Copy servership's SQLite store into PostgreSQL, for a homeserver moving to
``store: {backend: postgres}``.

    python -m servership.synapse.migrate_store --from /var/lib/synapse/servership.db \\
        --synapse-config /etc/matrix-synapse/homeserver.yaml
    python -m servership.synapse.migrate_store --from servership.db --to postgresql://...

``--synapse-config`` reuses Synapse's ``database:`` settings (as ``store: {backend: postgres}``
does); ``--to`` takes a connection string (as ``store.dsn``). Tags keep their first-joined times
and order, the audit queue and knocks are copied; budget windows are not (they restart harmlessly).
Idempotent: rows already in PostgreSQL are kept, so it can run again, and after the module already
wrote to PostgreSQL. The SQLite file is only read. Prints what it copied as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from . import _compat, config


def _dsn_from_synapse_config(path: str) -> str:
    import yaml

    with open(path, encoding="utf-8") as f:
        hs = yaml.safe_load(f) or {}
    database = hs.get("database") if isinstance(hs, dict) else None
    if not isinstance(database, dict) or database.get("name") != "psycopg2":
        raise _compat.ConfigError(
            f"{path}: database.name is not psycopg2: Synapse does not run on PostgreSQL"
        )
    args = database.get("args") or {}
    if not isinstance(args, dict):
        raise _compat.ConfigError(f"{path}: database.args must be a mapping")
    return config.dsn_from_synapse_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servership.synapse.migrate_store",
        description="Copy servership's SQLite store into PostgreSQL (idempotent).",
    )
    parser.add_argument("--from", dest="source", required=True, help="the SQLite store file")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", help="a PostgreSQL connection string")
    target.add_argument(
        "--synapse-config", help="homeserver.yaml whose psycopg2 database to copy into"
    )
    args = parser.parse_args(argv)
    import servership

    try:
        dsn = args.to if args.to is not None else _dsn_from_synapse_config(args.synapse_config)
        report: dict[str, Any] = servership.copy_store_to_postgres(args.source, dsn)
    except (servership.ServershipError, _compat.ConfigError, OSError) as e:
        print(f"migrate_store: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
