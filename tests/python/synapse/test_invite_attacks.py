"""Invites as a rogue homeserver sends them (MSC4329): what reaches the invitee's client must
be only what the invitee's server could verify."""

from __future__ import annotations

from harness.scenario import SeedScenario


def _invite_state(seed: SeedScenario, user_key: str, room_id: str) -> list[dict]:
    user = seed.users[user_key]
    found: list[list[dict]] = []

    def arrived(synced: dict) -> bool:
        invite = synced.get("rooms", {}).get("invite", {}).get(room_id)
        if invite is not None:
            found.append(invite["invite_state"]["events"])
        return invite is not None

    user.wait_for(arrived, timeout=20, what="the invite")
    return found[0]


def test_forged_state_is_never_promoted_into_the_invite(seed: SeedScenario) -> None:
    """Blue invites White's user with MSC4329, putting in ``state`` its genuine room name and
    two m.room.name events that claim to come from @admin:matrix.org with garbage signatures.
    White's module fetches the signers' keys from Synapse's keyring: the genuine name is
    promoted into the invite, the forged ones never reach White's client."""
    blue = seed.blue
    room = blue.create_room("12", name="Genuine")
    state = room.state("main")
    # The genuine chain (Blue's join, power levels, join rules), so the forged events' auth
    # events are all present: only their signatures and the auth rules can stop them.
    chain = [room.event(state[key]) for key in (
        ("m.room.member", blue.user_id("blue")), ("m.room.power_levels", ""),
        ("m.room.join_rules", ""), ("m.room.name", ""))]
    auth = [state[("m.room.power_levels", "")], state[("m.room.member", blue.user_id("blue"))]]
    forged = [blue.forge(room, "m.room.name", {"name": f"Official support {i}"},
                         sender="@admin:matrix.org", auth_events=auth) for i in range(2)]
    status, answer = blue.invite_msc4329(room, seed.users["white"].user_id,
                                         extra_state=chain + forged)
    assert status == 200, answer
    shown = _invite_state(seed, "white", room.room_id)
    names = [e["content"].get("name") for e in shown if e.get("type") == "m.room.name"]
    assert names == ["Genuine"], shown  # Blue's own, verified with Blue's key: promoted
    assert not any(e.get("sender") == "@admin:matrix.org" for e in shown), shown
    assert [e["type"] for e in shown if e["type"] == "m.room.create"] == ["m.room.create"]
