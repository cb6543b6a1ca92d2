"""What the Synapse under test can do, detected the way the module detects it (never from its
version number), so that one suite runs on every release in the tested range.

Where a feature is absent, the lab runs without it and the tests that need it are skipped with
the detected reason (visible in pytest's summary, never counted as a pass), while
``test_e2e_releases.py`` proves that switching the feature on is refused cleanly there.
"""

from __future__ import annotations

import synapse

from servership.synapse import _compat

#: The release under test, for messages.
SYNAPSE_VERSION = str(synapse.__version__)

#: Why this Synapse cannot send MSC4329 invites (its invite-sending internals predate 1.158),
#: or None where it can.
MSC4329_SENDING_PROBLEM = _compat.invite_sending_problem()

#: Whether this Synapse validates a v12 invite's ``invite_room_state`` itself (MSC4311, warns
#: only); where it does not, the module's warn mode checks and warns itself.
SYNAPSE_CHECKS_V12_INVITE_STATE = _compat.synapse_checks_invite_state(None, "12")


def _sends_full_invite_state() -> bool:
    # The event context is what lets Synapse find the full PDUs (MSC4311) it puts in an
    # outgoing invite's invite_room_state; releases without it send stripped state.
    import inspect

    from synapse.federation.federation_client import FederationClient

    return "context" in inspect.signature(FederationClient._do_send_invite).parameters


#: Whether this Synapse's invites carry full PDUs in ``invite_room_state`` (MSC4311).
SENDS_FULL_INVITE_STATE = _sends_full_invite_state()

#: Why this Synapse cannot run s2s rooms (its room creation and upgrade internals differ, or
#: its frozen events break v12 upgrades: 1.140-1.154), or None where it can.
S2S_PROBLEM = _compat.s2s_problem()
