"""Command line: ``python -m servership COMMAND``.

Commands:

- ``canonical``: JSON on stdin, its canonical form on stdout.
- ``event-id PDU_FILE --room-version N``: the event ID of a PDU.
- ``room-id CREATE_FILE``: the room ID a v12 ``m.room.create`` event starts.
- ``sign-json FILE --server S --key-file K``: signs a JSON object with a Synapse signing key
  file (first line ``ed25519 <version> <seed>``) and prints it as canonical JSON.
- ``verify-json FILE --server S --key-id K --public-key B64``: checks a JSON object's signature.
- ``verify PDU_FILE --room-version N --server S --key-id K --public-key B64``: checks a PDU's
  signature by ``S`` and its content hash.
- ``check-invite BODY_FILE --room-id R --receiver S --origin O [--keys KEYS_FILE]``: checks an
  MSC4329 invite request body and prints the result JSON (``KEYS_FILE``: verify keys grouped by
  server, ``{"origin": {"ed25519:1": {"key": "<b64>"}}}``; with it signatures are checked too).

``FILE`` may be ``-`` for stdin. Failures print the Matrix error body on stderr and exit with 1.
"""

from __future__ import annotations

import argparse
import sys

import servership


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _canonical(args: argparse.Namespace) -> None:
    sys.stdout.buffer.write(servership.canonicalize(_read(args.file)) + b"\n")


def _event_id(args: argparse.Namespace) -> None:
    print(servership.event_id(_read(args.file), args.room_version))


def _room_id(args: argparse.Namespace) -> None:
    print(servership.room_id_from_create_event(_read(args.file)))


def _sign_json(args: argparse.Namespace) -> None:
    with open(args.key_file, encoding="utf-8") as f:
        key = servership.SigningKey.from_synapse_key_line(f.readline())
    signed = servership.sign_json(_read(args.file), args.server, key)
    sys.stdout.buffer.write(servership.canonical_json(signed) + b"\n")


def _verify_json(args: argparse.Namespace) -> None:
    data = _read(args.file)
    key = servership.VerifyKey(args.key_id, args.public_key)
    servership.verify_json(data, args.server, key)
    print(f"OK: signed by {args.server} with {args.key_id}")


def _verify(args: argparse.Namespace) -> None:
    pdu = _read(args.file)
    key = servership.VerifyKey(args.key_id, args.public_key)
    servership.verify_event_signature(pdu, args.server, key, args.room_version)
    if not servership.check_content_hash(pdu):
        # A valid signature with a wrong content hash: the spec says to use the redacted event.
        print("signature OK, content hash MISMATCH: use the redacted event", file=sys.stderr)
        raise SystemExit(1)
    print(f"OK: signed by {args.server} with {args.key_id}; content hash matches")


def _check_invite(args: argparse.Namespace) -> None:
    keys = servership.KeyRing.from_json(_read(args.keys)) if args.keys else None
    check = servership.check_invite(args.room_id, _read(args.file), args.receiver, args.origin, keys)
    sys.stdout.buffer.write(check.to_json() + b"\n")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m servership", description="Matrix canonical JSON and signatures."
    )
    parser.add_argument("--version", action="version", version=servership.__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    canonical = commands.add_parser("canonical", help="canonical JSON of a file or stdin")
    canonical.add_argument("file", nargs="?", default="-", help="JSON file (default: stdin)")
    canonical.set_defaults(run=_canonical)

    event_id = commands.add_parser("event-id", help="event ID of a PDU")
    event_id.add_argument("file", help="PDU file, or - for stdin")
    event_id.add_argument("--room-version", required=True, help='e.g. "12"')
    event_id.set_defaults(run=_event_id)

    room_id = commands.add_parser("room-id", help="room ID a v12 create event starts")
    room_id.add_argument("file", help="m.room.create PDU file, or - for stdin")
    room_id.set_defaults(run=_room_id)

    sign = commands.add_parser("sign-json", help="sign a JSON object with a Synapse key file")
    sign.add_argument("file", help="JSON object file, or - for stdin")
    sign.add_argument("--server", required=True, help="the signing server's name")
    sign.add_argument("--key-file", required=True, help="Synapse signing key file")
    sign.set_defaults(run=_sign_json)

    verify = commands.add_parser("verify-json", help="verify a JSON object's signature")
    verify.add_argument("file", help="JSON object file, or - for stdin")
    verify.add_argument("--server", required=True, help="the server that signed it")
    verify.add_argument("--key-id", required=True, help="e.g. ed25519:1")
    verify.add_argument("--public-key", required=True, help="public key, base64")
    verify.set_defaults(run=_verify_json)

    verify_pdu = commands.add_parser("verify", help="verify a PDU's signature and content hash")
    verify_pdu.add_argument("file", help="PDU file, or - for stdin")
    verify_pdu.add_argument("--room-version", required=True, help='e.g. "12"')
    verify_pdu.add_argument("--server", required=True, help="the server that signed it")
    verify_pdu.add_argument("--key-id", required=True, help="e.g. ed25519:1")
    verify_pdu.add_argument("--public-key", required=True, help="public key, base64")
    verify_pdu.set_defaults(run=_verify)

    invite = commands.add_parser("check-invite", help="check an MSC4329 invite request body")
    invite.add_argument("file", help="request body file, or - for stdin")
    invite.add_argument("--room-id", required=True, help="the room ID from the request path")
    invite.add_argument("--receiver", required=True, help="our server name")
    invite.add_argument("--origin", required=True, help="the X-Matrix origin")
    invite.add_argument("--keys", help="verify keys file (JSON, grouped by server)")
    invite.set_defaults(run=_check_invite)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except servership.ServershipError as e:
        print(servership.canonical_json(e.matrix_error or {}).decode(), file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
