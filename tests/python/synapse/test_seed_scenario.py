"""MSC4358's seed scenario on five real Synapses and the rogue homeserver (``harness/scenario.py``).

Blue (rogue) shows Purple branches of its rooms without the members who are really there;
Purple's audit, which runs by itself after each first join, must say so: in its log, in a
Prometheus metric, in a server notice to the admin, and in the admin audit API.
"""

from __future__ import annotations

import re
import time

import pytest
import servership

from harness.lab import free_port
from harness.rogue import RogueHomeserver
from harness.scenario import AUDIT_API, DISCOVER, SeedScenario, wait_until

# The ``seed`` fixture (conftest.py) starts the servers and plays the story up to Purple's joins.

@pytest.fixture(scope="module")
def hidden_report(seed: SeedScenario) -> dict:
    assert seed.hidden is not None
    return seed.audit_report(seed.hidden.room_id)


@pytest.fixture(scope="module")
def removed_report(seed: SeedScenario) -> dict:
    assert seed.removed is not None
    return seed.audit_report(seed.removed.room_id)


def names(seed: SeedScenario, *who: str) -> set[str]:
    return {seed[w].server_name for w in who}


# -- the attack: Purple is shown a branch without Green and Yellow ----------------------------


def test_hidden_branch_reported_by_the_admin_api(seed: SeedScenario, hidden_report: dict) -> None:
    assert hidden_report["verdict"] == "hidden_branch_suspected", hidden_report
    assert set(hidden_report["unexplained"]) == names(seed, "Green", "Yellow"), hidden_report


def test_hidden_branch_reported_in_the_log(seed: SeedScenario, hidden_report: dict) -> None:
    assert seed.hidden is not None
    log = seed.purple.log_text()
    lines = [line for line in log.splitlines()
             if "found unexplained participants" in line and seed.hidden.room_id in line]
    assert lines, seed.purple.tail()
    for name in ("Green", "Yellow"):
        assert seed[name].server_name in lines[-1]


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?")
    match = re.search(r"^" + pattern + r" ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_hidden_branch_reported_in_a_metric(seed: SeedScenario, hidden_report: dict) -> None:
    text = seed.purple.metrics_text()
    assert _metric(text, "servership_audit_unexplained_total") >= 2, text[-3000:]
    assert _metric(text, "servership_audits_total", 'result="hidden_branch_suspected"') >= 1


def test_hidden_branch_reported_to_the_admin_by_server_notice(seed: SeedScenario,
                                                              hidden_report: dict) -> None:
    admin = seed.admin
    assert seed.hidden is not None

    def notice(synced: dict) -> str | None:
        rooms = synced.get("rooms", {})
        for room_id in rooms.get("invite", {}):  # the server notices room invites the admin
            admin.call("POST", f"/_matrix/client/v3/join/{room_id}", {})
        for room in rooms.get("join", {}).values():
            for ev in room.get("timeline", {}).get("events", []):
                body = ev.get("content", {}).get("body", "")
                if seed.hidden.room_id in body and "HIDDEN BRANCH" in body:
                    return str(body)
        return None

    bodies: list[str] = []

    def arrived(synced: dict) -> bool:
        text = notice(synced)
        if text is not None:
            bodies.append(text)
        return text is not None

    admin.wait_for(arrived, timeout=30, what="the server notice")
    body = bodies[0]
    for name in ("Green", "Yellow"):
        assert seed[name].server_name in body


def test_gray_who_really_left_and_was_invited_back_is_explained(
        seed: SeedScenario, hidden_report: dict) -> None:
    explained = {e["server"]: e for e in hidden_report["explained"]}
    assert seed["Gray"].server_name in explained, hidden_report
    assert seed["Gray"].server_name not in hidden_report["unexplained"]


def test_white_never_in_the_room_does_not_recognise_it(seed: SeedScenario,
                                                       hidden_report: dict) -> None:
    assert seed["White"].server_name in hidden_report["not_recognising"], hidden_report


def test_black_that_does_not_answer_is_failed(seed: SeedScenario, hidden_report: dict) -> None:
    failed = {f["server"] for f in hidden_report["failed"]}
    assert seed.black.server_name in failed, hidden_report


def test_only_peers_met_elsewhere_are_asked(seed: SeedScenario, hidden_report: dict) -> None:
    asked = set(hidden_report["asked"])
    lobby = names(seed, "Green", "Yellow", "Gray", "White") | {seed.black.server_name}
    assert asked == lobby, hidden_report
    assert seed.blue.server_name not in asked and seed.purple.server_name not in asked


# -- the variant: Green and Yellow shown kicked and banned by Blue ------------------------------


def test_kicked_and_banned_by_blue_are_removed_by_another_server(seed: SeedScenario,
                                                                  removed_report: dict) -> None:
    assert removed_report["verdict"] == "removed_by_other_server", removed_report
    removed = {r["server"]: r for r in removed_report["removed"]}
    assert set(removed) == names(seed, "Green", "Yellow"), removed_report
    blue_user = seed.blue.user_id("blue")
    assert removed[seed["Green"].server_name]["membership"] == "leave"
    assert removed[seed["Yellow"].server_name]["membership"] == "ban"
    for entry in removed.values():
        assert entry["removed_by"] == [blue_user], entry
    assert not removed_report["unexplained"]


def test_green_and_yellow_never_heard_of_their_removal(seed: SeedScenario,
                                                       removed_report: dict) -> None:
    assert seed.removed is not None
    for name in ("green", "yellow"):
        user = seed.users[name]
        synced = user.sync()
        assert seed.removed.room_id in synced["rooms"]["join"], f"{name} is still joined"


# -- bounds and persistence ---------------------------------------------------------------------


def test_a_second_join_to_an_audited_room_queues_no_second_audit(seed: SeedScenario,
                                                                  hidden_report: dict) -> None:
    assert seed.hidden is not None
    room = seed.hidden.room_id
    other = seed.purple.register(f"second{int(time.time() * 1000) % 100000}")
    other.join(room, via=seed.blue.server_name)
    time.sleep(3)  # three drain periods of the queue
    log = seed.purple.log_text()
    assert log.count(f"servership audit of {room}: asking") == 1, seed.purple.tail()


def test_pending_audit_waits_for_the_hourly_bound_and_survives_a_restart(
        seed: SeedScenario, hidden_report: dict, removed_report: dict) -> None:
    purple = seed.purple
    # Two audits ran this hour: a bound of 2 keeps the next one queued.
    seed.timings["restart_purple_1"] = purple.reconfigure(
        audit={**purple.module_config["audit"], "max_audits_per_hour": 2})
    room = seed.blue.create_room("12", name="later")
    seed.purple_joins(room)
    status = lambda: seed.admin.call("GET", f"{AUDIT_API}?room_id={room.room_id}")[1]  # noqa: E731
    wait_until(lambda: status().get("state") == "pending", 20, "the audit to be queued")
    time.sleep(2.5)
    assert status().get("state") == "pending", status()
    seed.timings["restart_purple_2"] = purple.reconfigure(
        audit={**purple.module_config["audit"], "max_audits_per_hour": 20})
    report = seed.audit_report(room.room_id)
    assert report["room_id"] == room.room_id
    assert report["verdict"] in ("consistent", "inconclusive"), report


def test_admin_audit_of_an_unknown_room_is_404(seed: SeedScenario) -> None:
    status, body = seed.admin.call("GET", f"{AUDIT_API}?room_id=!nowhere:{seed.blue.server_name}")
    assert status == 404 and body["errcode"] == "M_NOT_FOUND", body
    status, body = seed.admin.call("POST", AUDIT_API, {"room_id": "!nowhere:x"})
    assert status == 404 and body["errcode"] == "M_NOT_FOUND", body


# -- tags for real joins only ------------------------------------------------------------------


def test_invites_and_rejected_invites_plant_no_tag_even_after_a_restart(
        seed: SeedScenario) -> None:
    white = seed["White"]
    user = seed.users["white"]
    rejected = seed.blue.create_room("12", name="rejected")
    ignored = seed.blue.create_room("12", name="ignored")
    for room in (rejected, ignored):
        status, answer = seed.blue.invite(room, user.user_id)
        assert status == 200, answer
    user.wait_for(lambda s: rejected.room_id in s.get("rooms", {}).get("invite", {}),
                  what="the invite")
    user.ok("POST", f"/_matrix/client/v3/rooms/{rejected.room_id}/leave", {})
    wait_until(lambda: rejected.members().get(user.user_id) == "leave", 20, "the rejection")
    seed.timings["restart_white"] = white.restart()
    wait_until(lambda: "servership: backfilled" in white.log_text().split("Received SIGTERM")[-1],
               30, "White's start-up backfill")
    for room in (rejected, ignored):
        assert not seed.recognises(white, room.room_id), room.room_id


# -- budgets and who may ask ------------------------------------------------------------------


def test_a_server_that_shares_no_room_gets_no_answer(seed: SeedScenario) -> None:
    ca, cert, key = seed.lab.certs or (None, None, None)
    assert ca is not None and cert is not None and key is not None
    stranger = RogueHomeserver("Stranger", cert, key, ca, free_port())
    stranger.start()
    try:
        assert seed.hidden is not None
        green = seed["Green"]
        tag = servership.participation_tag(green.server_name, seed.hidden.room_id)
        status, body = stranger.request(green, "POST", DISCOVER,
                                        {"room_participation_tags": [tag]})
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", (status, body)
        # Blue shares Blue's rooms with Green: it is answered.
        status, body = seed.blue.request(green, "POST", DISCOVER,
                                         {"room_participation_tags": [tag]})
        assert status == 200 and body["recognised_tags"] == [tag], (status, body)
    finally:
        stranger.stop()


def test_origin_spellings_share_one_budget_across_a_restart(seed: SeedScenario) -> None:
    """Blue asks Green under several spellings of its own name. Synapse authenticates the case
    variants (and refuses a trailing dot); all of them must draw on one budget, which a restart
    of Green does not reset."""
    green = seed["Green"]
    blue = seed.blue
    assert seed.removed is not None
    room = seed.removed.room_id
    # Green's budget is 10,000 tags an hour per origin; each request carries 1,000. Four rounds
    # of three spellings ask 12,000: more than one budget, less than three.
    tags = [servership.participation_tag(green.server_name, room)] + [
        servership.participation_tag(green.server_name, f"!filler{i}:x") for i in range(999)]
    spellings = [None, f"LOCALHOST:{blue.port}", f"LocalHost:{blue.port}"]
    outcomes = []
    for spelling in spellings * 4:
        status, body = blue.request(green, "POST", DISCOVER, {"room_participation_tags": tags},
                                    origin_name=spelling)
        outcomes.append((spelling, status))
    answered = sum(len(tags) for _, status in outcomes if status == 200)
    assert answered <= 10_000, outcomes
    assert any(status == 429 for _, status in outcomes), outcomes
    assert all(status in (200, 429) for _, status in outcomes), outcomes
    for spelling in (f"localhost.:{blue.port}", f"LOCALHOST.:{blue.port}"):
        status, body = blue.request(green, "POST", DISCOVER, {"room_participation_tags": tags},
                                    origin_name=spelling)
        assert status in (400, 401), (spelling, status, body)  # Synapse refuses these itself
    seed.timings["restart_green"] = green.restart()
    status, body = blue.request(green, "POST", DISCOVER, {"room_participation_tags": tags})
    assert status == 429 and body["errcode"] == "M_LIMIT_EXCEEDED", (status, body)


# -- the rogue homeserver's scripted answers, as a real Synapse uses them ------------------------


def _timeline_bodies(user: "object", room_id: str) -> list[dict]:
    status, body = user.call(  # type: ignore[attr-defined]
        "GET", f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=100")
    assert status == 200, body
    return list(body.get("chunk", []))


def test_purple_reads_only_the_branch_it_is_shown(seed: SeedScenario,
                                                  hidden_report: dict) -> None:
    assert seed.hidden is not None
    events = _timeline_bodies(seed.users["purple"], seed.hidden.room_id)
    members = {e.get("state_key") for e in events if e.get("type") == "m.room.member"}
    assert seed.users["green"].user_id not in members
    assert seed.users["yellow"].user_id not in members
    for event in events:
        assert event["event_id"] in seed.hidden.branches["newcomers"], event


def test_missing_events_are_fetched_from_the_branch(seed: SeedScenario,
                                                     hidden_report: dict) -> None:
    room = seed.hidden
    assert room is not None
    first = room.send("m.room.message", {"msgtype": "m.text", "body": "for newcomers 1"},
                      branch="newcomers", forward=False)
    second = room.send("m.room.message", {"msgtype": "m.text", "body": "for newcomers 2"},
                       branch="newcomers", forward=False)
    before = len(seed.blue.received)
    status, answer = seed.blue.send_transaction(seed.purple, [room.event(second)])
    assert status == 200, answer
    purple = seed.users["purple"]

    def both() -> bool:
        ids = {e["event_id"] for e in _timeline_bodies(purple, room.room_id)}
        return first in ids and second in ids

    wait_until(both, 20, "Purple to fetch the missing event")
    asked = [r.path for r in seed.blue.received[before:]]
    assert any("/get_missing_events/" in p or "/event/" in p or "/backfill/" in p
               for p in asked), asked
