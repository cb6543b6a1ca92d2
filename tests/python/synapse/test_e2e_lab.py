"""End-to-end: two real Synapses with the servership module, things that need no core.

Run: ``pytest tests/python/synapse/test_e2e_lab.py`` with matrix-synapse installed.
"""

from __future__ import annotations

import uuid

from harness.lab import Lab, LabError

DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"
DISCOVER_STABLE = "/_matrix/federation/v1/discover_common_rooms"


def _assert_reached_handler(status: int, body: object) -> None:
    """Our handler answered (not Synapse's router or authenticator): a real answer from the
    core, possibly a Matrix error about the body, never Synapse's 401/404."""
    assert status not in (401, 404, 501), body
    assert status == 200 or body.get("errcode") not in (None, "M_UNRECOGNIZED"), body


def test_both_servers_load_the_module(lab: Lab) -> None:
    for hs in (lab.a, lab.b):
        assert "servership loaded" in hs.log_text(), hs.tail()


def test_federated_invite_and_join(lab: Lab) -> None:
    alice = lab.a.register(f"alice{uuid.uuid4().hex[:6]}")
    bob = lab.b.register(f"bob{uuid.uuid4().hex[:6]}")
    room = alice.create_room(preset="private_chat")
    alice.invite(room, bob.user_id)
    bob.wait_for(lambda s: room in s.get("rooms", {}).get("invite", {}), what="invite")
    bob.join(room, via=lab.a.server_name)
    alice.ok("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
             {"msgtype": "m.text", "body": "hello over federation"})
    synced = bob.wait_for(
        lambda s: any(
            e.get("content", {}).get("body") == "hello over federation"
            for e in s.get("rooms", {}).get("join", {}).get(room, {})
            .get("timeline", {}).get("events", [])
        ),
        what="message",
    )
    assert room in synced["rooms"]["join"]


def test_discovery_unsigned_request_is_rejected_by_synapse(lab: Lab) -> None:
    status, body = lab.federation_request(None, lab.b, "POST", DISCOVER,
                                          {"room_participation_tags": []})
    assert status == 401, body
    assert body["errcode"] == "M_UNAUTHORIZED"


def test_discovery_signed_request_reaches_handler(lab: Lab) -> None:
    status, body = lab.federation_request(lab.a, lab.b, "POST", DISCOVER,
                                          {"room_participation_tags": []})
    _assert_reached_handler(status, body)


def test_discovery_stable_path_only_where_enabled(lab: Lab) -> None:
    status, body = lab.federation_request(lab.b, lab.a, "POST", DISCOVER_STABLE,
                                          {"room_participation_tags": []})
    _assert_reached_handler(status, body)
    status, body = lab.federation_request(lab.a, lab.b, "POST", DISCOVER_STABLE,
                                          {"room_participation_tags": []})
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED", body


def test_invite_paths_are_routed_and_authenticated(lab: Lab) -> None:
    room = "!nonexistent:" + lab.a.server_name
    body = {"event": {}, "invite_room_state": [], "state": []}
    for prefix in ("/_matrix/federation/unstable/org.matrix.msc4329",
                   "/_matrix/federation/unstable/org.matrix.msc0000"):
        path = f"{prefix}/invite/{room.replace('!', '%21').replace(':', '%3A')}"
        status, answer = lab.federation_request(None, lab.b, "PUT", path, body)
        assert status == 401, (path, answer)
        status, answer = lab.federation_request(lab.a, lab.b, "PUT", path, body)
        _assert_reached_handler(status, answer)


def test_v3_invite_path_is_off_by_default(lab: Lab) -> None:
    path = "/_matrix/federation/v3/invite/%21x%3Alocalhost"
    body = {"event": {}, "invite_room_state": [], "state": []}
    # B keeps the default (off): Synapse has no such route.
    status, answer = lab.federation_request(lab.a, lab.b, "PUT", path, body)
    assert status == 404 and answer["errcode"] == "M_UNRECOGNIZED", answer
    # A turned it on: unsigned is refused by Synapse's authenticator, signed reaches us.
    status, answer = lab.federation_request(None, lab.a, "PUT", path, body)
    assert status == 401, answer
    status, answer = lab.federation_request(lab.b, lab.a, "PUT", path, body)
    _assert_reached_handler(status, answer)


def test_signature_from_wrong_key_is_rejected(lab: Lab) -> None:
    # Signed with B's key but claiming to be A: Synapse's keyring must refuse it.
    import signedjson.key

    from harness.lab import x_matrix_header, client_request

    forged = signedjson.key.generate_signing_key("forged")
    header = x_matrix_header(forged, lab.a.server_name, lab.b.server_name, "POST", DISCOVER,
                             {"room_participation_tags": []})
    status, body = client_request("POST", lab.b.federation_url + DISCOVER,
                                  {"room_participation_tags": []},
                                  headers={"Authorization": header},
                                  ssl_context=lab.ssl_context())
    assert status == 401, body


def test_lab_refuses_taken_port(lab: Lab) -> None:
    hs = lab.a
    try:
        hs_copy = type(hs)(hs.name, hs.directory, hs.client_port, hs.federation_port, hs.ca_path)
        hs_copy.config = hs.config
        hs_copy.start()
    except LabError as exc:
        assert "taken" in str(exc)
    else:  # pragma: no cover - would leave a process behind
        hs_copy.stop()
        raise AssertionError("lab started a second server on a taken port")
