//! Promotion of `state` events into `invite_room_state` (MSC4329) against forged state: only
//! events that verify (signatures, hashes) and pass the room version's authorization rules
//! against the state built so far are promoted, at most one per `(type, state_key)`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Instant;

use servership::event;
use servership::invite::{self, InviteCheck, KeyRing};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

const ORIGIN: &str = "origin.example";
const RECEIVER: &str = "receiver.example";
const ALICE: &str = "@alice:origin.example";
const BOB: &str = "@bob:origin.example";
const MALLORY: &str = "@mallory:evil.example";
const INVITEE: &str = "@carol:receiver.example";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed("ed25519:p1", &[seed; 32]).unwrap()
}

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

fn server_of(user: &str) -> &str {
    user.split_once(':').unwrap().1
}

/// A room's history, built event by event with real signatures from each sender's server.
struct History {
    version: RoomVersion,
    room_id: String,
    create: Object,
    create_id: String,
    keys: HashMap<String, SigningKey>,
    last: String,
    depth: i64,
}

impl History {
    fn new(version: &str) -> History {
        Self::with_create_content(version, "{}")
    }

    fn with_create_content(version: &str, extra: &str) -> History {
        let version = RoomVersion::from_id(version).unwrap();
        let mut keys = HashMap::new();
        keys.insert(ORIGIN.to_owned(), key(1));
        keys.insert("evil.example".to_owned(), key(2));
        keys.insert("matrix.org".to_owned(), key(3));
        let v12 = version.id == "12";
        let mut content = obj(extra);
        content.insert("room_version".into(), version.id.into());
        if !version.auth.implicit_room_creator {
            content.insert("creator".into(), ALICE.into());
        }
        let mut create = Object::new();
        create.insert("type".into(), "m.room.create".into());
        create.insert("state_key".into(), "".into());
        create.insert("sender".into(), ALICE.into());
        create.insert("content".into(), Value::Object(content));
        create.insert("origin_server_ts".into(), Value::Int(1_700_000_000_000));
        create.insert("depth".into(), Value::Int(1));
        create.insert("prev_events".into(), Value::Array(vec![]));
        create.insert("auth_events".into(), Value::Array(vec![]));
        if !v12 {
            create.insert("room_id".into(), format!("!hist:{ORIGIN}").into());
        }
        event::sign_event(&mut create, ORIGIN, keys.get(ORIGIN).unwrap(), version).unwrap();
        let create_id = event::event_id(&create, version).unwrap();
        let room_id = if v12 {
            event::room_id_from_create_event(&create).unwrap()
        } else {
            format!("!hist:{ORIGIN}")
        };
        History {
            version,
            room_id,
            create,
            last: create_id.clone(),
            create_id,
            keys,
            depth: 1,
        }
    }

    fn id(&self, e: &Object) -> String {
        event::event_id(e, self.version).unwrap()
    }

    /// An event by `sender`, naming `auth` (and the create event before v12) as auth events.
    fn event(
        &mut self,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: &str,
        auth: &[&Object],
    ) -> Object {
        let mut ids: Vec<String> = Vec::new();
        if self.version.id != "12" {
            ids.push(self.create_id.clone());
        }
        ids.extend(auth.iter().map(|e| self.id(e)));
        self.raw(sender, kind, state_key, content, ids)
    }

    fn raw(
        &mut self,
        sender: &str,
        kind: &str,
        state_key: Option<&str>,
        content: &str,
        auth_ids: Vec<String>,
    ) -> Object {
        self.depth += 1;
        let mut e = Object::new();
        e.insert("type".into(), kind.into());
        if let Some(k) = state_key {
            e.insert("state_key".into(), k.into());
        }
        e.insert("sender".into(), sender.into());
        e.insert("room_id".into(), self.room_id.as_str().into());
        e.insert("content".into(), Value::Object(obj(content)));
        e.insert(
            "origin_server_ts".into(),
            Value::Int(1_700_000_000_000 + self.depth),
        );
        e.insert("depth".into(), Value::Int(self.depth));
        e.insert(
            "prev_events".into(),
            Value::Array(vec![self.last.as_str().into()]),
        );
        e.insert(
            "auth_events".into(),
            Value::Array(auth_ids.into_iter().map(Value::from).collect()),
        );
        let server = server_of(sender);
        event::sign_event(&mut e, server, self.keys.get(server).unwrap(), self.version).unwrap();
        self.last = self.id(&e);
        e
    }

    fn ring(&self) -> KeyRing {
        let mut ring = KeyRing::new();
        for (server, k) in &self.keys {
            ring.add(server, k.verify_key());
        }
        ring
    }

    /// The invite of `INVITEE` by alice, naming `auth`.
    fn invite(&mut self, auth: &[&Object]) -> Object {
        self.event(
            ALICE,
            "m.room.member",
            Some(INVITEE),
            r#"{"membership":"invite"}"#,
            auth,
        )
    }

    fn check(&self, invite: &Object, state: &[&Object], keys: bool) -> InviteCheck {
        let mut all = vec![&self.create];
        all.extend_from_slice(state);
        let body = invite::build_invite_request(
            invite,
            &self.create,
            &all[1..].iter().map(|e| (*e).clone()).collect::<Vec<_>>(),
            &[],
        )
        .unwrap()
        .body;
        let ring = self.ring();
        invite::check_invite(
            &self.room_id,
            &body,
            RECEIVER,
            ORIGIN,
            keys.then_some(&ring),
        )
        .unwrap()
    }
}

/// The usual beginning: the creator's join, power levels (bob at 50), join rules.
struct Room {
    h: History,
    join: Object,
    pl: Object,
    jr: Object,
}

fn room(version: &str) -> Room {
    let mut h = History::new(version);
    let join = h.event(
        ALICE,
        "m.room.member",
        Some(ALICE),
        r#"{"membership":"join"}"#,
        &[],
    );
    let users = if h.version.privileged_creators {
        format!(r#"{{"{BOB}":50}}"#)
    } else {
        format!(r#"{{"{ALICE}":100,"{BOB}":50}}"#)
    };
    let pl = h.event(
        ALICE,
        "m.room.power_levels",
        Some(""),
        &format!(r#"{{"users":{users},"state_default":50,"events":{{"m.room.name":50}}}}"#),
        &[&join],
    );
    let jr = h.event(
        ALICE,
        "m.room.join_rules",
        Some(""),
        r#"{"join_rule":"invite"}"#,
        &[&join, &pl],
    );
    Room { h, join, pl, jr }
}

fn reason<'a>(check: &'a InviteCheck, id: &str) -> &'a str {
    check
        .dropped
        .iter()
        .find(|d| d.event_id.as_deref() == Some(id))
        .map(|d| d.reason.as_str())
        .unwrap_or_else(|| panic!("{id} was not dropped: promoted {:?}", check.promoted))
}

fn promoted_types(check: &InviteCheck) -> Vec<String> {
    check
        .invite_room_state
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.get("type").unwrap().as_str().unwrap(),
                e.get("state_key").unwrap().as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn an_honest_history_is_promoted_in_every_room_version_from_3() {
    for v in ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"] {
        let mut r = room(v);
        let name = r.h.event(
            ALICE,
            "m.room.name",
            Some(""),
            r#"{"name":"Plans"}"#,
            &[&r.join, &r.pl],
        );
        let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
        let check = r.h.check(&invite, &[&r.join, &r.pl, &r.jr, &name], true);
        assert_eq!(check.promoted.len(), 4, "v{v}: {:?}", check.dropped);
        assert!(check.dropped.is_empty(), "v{v}: {:?}", check.dropped);
        assert_eq!(
            promoted_types(&check),
            [
                format!("m.room.member {ALICE}"),
                "m.room.power_levels ".into(),
                "m.room.join_rules ".into(),
                "m.room.name ".into(),
                "m.room.create ".into()
            ],
            "v{v}"
        );
    }
}

#[test]
fn without_keys_only_the_create_event_is_promoted_and_the_answer_says_why() {
    let mut r = room("12");
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let check = r.h.check(&invite, &[&r.join, &r.pl, &r.jr], false);
    assert!(check.promoted.is_empty());
    assert_eq!(promoted_types(&check), ["m.room.create "]);
    assert_eq!(check.dropped.len(), 3);
    for d in &check.dropped {
        assert!(d.reason.contains("no verify keys were given"), "{d:?}");
    }
}

#[test]
fn garbage_signatures_are_not_promoted() {
    // The attack from issue 11: a v3 invite carrying two m.room.name events "from"
    // @admin:matrix.org with signatures that are not signatures.
    let mut r = room("3");
    let mut names = Vec::new();
    for n in ["Official", "Support"] {
        let mut e = r.h.event(
            "@admin:matrix.org",
            "m.room.name",
            Some(""),
            &format!(r#"{{"name":"{n}"}}"#),
            &[],
        );
        e.insert(
            "signatures".into(),
            Value::Object(obj(r#"{"matrix.org":{"ed25519:p1":"Zm9yZ2Vk"}}"#)),
        );
        names.push(e);
    }
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    for keys in [false, true] {
        let check = r.h.check(&invite, &[&names[0], &names[1]], keys);
        assert!(
            check.promoted.is_empty(),
            "keys={keys}: {:?}",
            check.promoted
        );
        assert_eq!(promoted_types(&check), ["m.room.create "]);
        for e in &names {
            let why = reason(&check, &r.h.id(e));
            if keys {
                assert!(why.contains("signature"), "{why}");
            } else {
                assert!(why.contains("no verify keys"), "{why}");
            }
        }
    }
}

#[test]
fn events_from_a_user_who_never_joined_are_not_promoted() {
    for v in ["3", "11", "12"] {
        let mut r = room(v);
        // Properly signed by evil.example, whose key we hold; mallory never joined.
        let name = r.h.event(
            MALLORY,
            "m.room.name",
            Some(""),
            r#"{"name":"Free crypto"}"#,
            &[&r.pl],
        );
        let pl = r.h.event(
            MALLORY,
            "m.room.power_levels",
            Some(""),
            &format!(r#"{{"users":{{"{MALLORY}":100}}}}"#),
            &[&r.pl],
        );
        let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
        let check =
            r.h.check(&invite, &[&r.join, &r.pl, &r.jr, &name, &pl], true);
        assert_eq!(check.promoted.len(), 3, "v{v}: {:?}", check.dropped);
        for e in [&name, &pl] {
            let why = reason(&check, &r.h.id(e));
            assert!(why.contains("sender_not_joined"), "v{v}: {why}");
        }
    }
}

#[test]
fn a_v12_join_rules_event_with_empty_auth_events_is_not_a_complete_chain() {
    let mut r = room("12");
    let jr = r.h.raw(
        ALICE,
        "m.room.join_rules",
        Some(""),
        r#"{"join_rule":"public"}"#,
        vec![],
    );
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    // Alone: alice is not joined in the state built so far.
    let check = r.h.check(&invite, &[&jr], true);
    assert!(check.promoted.is_empty());
    assert!(reason(&check, &r.h.id(&jr)).contains("sender_not_joined"));
    // With her join and the power levels in state: it leaves them out.
    let check = r.h.check(&invite, &[&r.join, &r.pl, &jr], true);
    assert_eq!(check.promoted.len(), 2, "{:?}", check.dropped);
    assert!(
        reason(&check, &r.h.id(&jr)).contains("leaves out"),
        "{:?}",
        check.dropped
    );
}

#[test]
fn a_join_for_the_invitee_sent_by_someone_else_is_not_promoted() {
    for v in ["3", "12"] {
        let mut r = room(v);
        let forced = r.h.event(
            ALICE,
            "m.room.member",
            Some(INVITEE),
            r#"{"membership":"join"}"#,
            &[&r.join, &r.pl, &r.jr],
        );
        let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
        let check = r.h.check(&invite, &[&r.join, &r.pl, &r.jr, &forced], true);
        let why = reason(&check, &r.h.id(&forced));
        assert!(
            why.contains("membership_not_allowed") && why.contains("cannot join"),
            "v{v}: {why}"
        );
    }
}

#[test]
fn an_auth_chain_through_a_message_event_is_not_promoted() {
    let mut r = room("12");
    let message = r.h.event(
        ALICE,
        "m.room.message",
        None,
        r#"{"body":"hi","msgtype":"m.text"}"#,
        &[&r.join, &r.pl],
    );
    let name = r.h.event(
        ALICE,
        "m.room.name",
        Some(""),
        r#"{"name":"x"}"#,
        &[&r.join, &r.pl, &message],
    );
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let check = r.h.check(&invite, &[&r.join, &r.pl, &message, &name], true);
    assert_eq!(check.promoted.len(), 2, "{:?}", check.dropped);
    assert!(reason(&check, &r.h.id(&message)).contains("not a state event"));
    assert!(
        reason(&check, &r.h.id(&name)).contains("not in state"),
        "{:?}",
        check.dropped
    );
}

#[test]
fn at_most_one_event_per_type_and_state_key() {
    let mut r = room("11");
    let first = r.h.event(
        ALICE,
        "m.room.name",
        Some(""),
        r#"{"name":"first"}"#,
        &[&r.join, &r.pl],
    );
    let second = r.h.event(
        ALICE,
        "m.room.name",
        Some(""),
        r#"{"name":"second"}"#,
        &[&r.join, &r.pl],
    );
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let check = r.h.check(&invite, &[&r.join, &r.pl, &first, &second], true);
    let names: Vec<&Value> = check
        .invite_room_state
        .iter()
        .filter(|e| e.get("type").unwrap().as_str() == Some("m.room.name"))
        .collect();
    assert_eq!(names.len(), 1);
    assert_eq!(
        names[0]
            .get("content")
            .unwrap()
            .get("name")
            .unwrap()
            .as_str(),
        Some("second")
    );
    assert!(reason(&check, &r.h.id(&first)).contains("superseded"));
}

#[test]
fn auth_events_must_be_exactly_the_selection_of_the_state_built_so_far() {
    let mut r = room("12");
    // Leaves out the power levels (which would otherwise let anyone set state at level 0).
    let no_pl = r.h.event(
        ALICE,
        "m.room.topic",
        Some(""),
        r#"{"topic":"t"}"#,
        &[&r.join],
    );
    // Names an extra event the selection does not name for a topic.
    let extra = r.h.event(
        ALICE,
        "m.room.topic",
        Some(""),
        r#"{"topic":"u"}"#,
        &[&r.join, &r.pl, &r.jr],
    );
    // Names the create event, which v12 forbids.
    let with_create = {
        let ids = vec![r.h.create_id.clone(), r.h.id(&r.join), r.h.id(&r.pl)];
        r.h.raw(
            ALICE,
            "m.room.avatar",
            Some(""),
            r#"{"url":"mxc://a/b"}"#,
            ids,
        )
    };
    // Names the same event twice.
    let twice = {
        let ids = vec![r.h.id(&r.join), r.h.id(&r.pl), r.h.id(&r.pl)];
        r.h.raw(ALICE, "m.room.canonical_alias", Some(""), r#"{}"#, ids)
    };
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let check = r.h.check(
        &invite,
        &[&r.join, &r.pl, &r.jr, &no_pl, &extra, &with_create, &twice],
        true,
    );
    assert_eq!(check.promoted.len(), 3, "{:?}", check.dropped);
    assert!(reason(&check, &r.h.id(&no_pl)).contains("leaves out"));
    assert!(reason(&check, &r.h.id(&extra)).contains("does not name"));
    // Refused as a malformed PDU before its ID is computed (as Synapse's event_from_pdu_json).
    let at = check
        .dropped
        .iter()
        .find(|d| d.place == "state[6]")
        .unwrap();
    assert!(at.reason.contains("forbids"), "{at:?}");
    assert!(reason(&check, &r.h.id(&twice)).contains("two events"));
}

#[test]
fn an_auth_event_that_was_replaced_is_not_current() {
    let mut r = room("11");
    let pl2 = r.h.event(
        ALICE,
        "m.room.power_levels",
        Some(""),
        &format!(r#"{{"users":{{"{ALICE}":100,"{BOB}":0}}}}"#),
        &[&r.join, &r.pl],
    );
    // Authorised by the old power levels, but sent after the new ones in the history.
    let name = r.h.event(
        ALICE,
        "m.room.name",
        Some(""),
        r#"{"name":"old"}"#,
        &[&r.join, &r.pl],
    );
    let invite = r.h.invite(&[&r.join, &pl2, &r.jr]);
    let check =
        r.h.check(&invite, &[&r.join, &r.pl, &r.jr, &pl2, &name], true);
    assert!(reason(&check, &r.h.id(&r.pl)).contains("superseded"));
    assert!(
        reason(&check, &r.h.id(&name)).contains("no longer the current"),
        "{:?}",
        check.dropped
    );
    assert!(check.promoted.contains(&r.h.id(&pl2)));
}

#[test]
fn power_levels_cannot_be_raised_beyond_the_senders_own() {
    for v in ["6", "12"] {
        let mut r = room(v);
        let invite_bob = r.h.event(
            ALICE,
            "m.room.member",
            Some(BOB),
            r#"{"membership":"invite"}"#,
            &[&r.join, &r.pl, &r.jr],
        );
        let bob_join = r.h.event(
            BOB,
            "m.room.member",
            Some(BOB),
            r#"{"membership":"join"}"#,
            &[&r.pl, &r.jr, &invite_bob],
        );
        let users = if r.h.version.privileged_creators {
            format!(r#"{{"{BOB}":100}}"#)
        } else {
            format!(r#"{{"{ALICE}":100,"{BOB}":100}}"#)
        };
        let grab = r.h.event(
            BOB,
            "m.room.power_levels",
            Some(""),
            &format!(r#"{{"users":{users}}}"#),
            &[&r.pl, &bob_join],
        );
        // Bob may set the name (level 50), not the join rules' own level list.
        let name = r.h.event(
            BOB,
            "m.room.name",
            Some(""),
            r#"{"name":"bob's"}"#,
            &[&r.pl, &bob_join],
        );
        let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
        let check = r.h.check(
            &invite,
            &[&r.join, &r.pl, &r.jr, &invite_bob, &bob_join, &grab, &name],
            true,
        );
        let why = reason(&check, &r.h.id(&grab));
        assert!(why.contains("insufficient_power"), "v{v}: {why}");
        assert!(
            check.promoted.contains(&r.h.id(&name)),
            "v{v}: {:?}",
            check.dropped
        );
        assert!(
            check.promoted.contains(&r.h.id(&bob_join)),
            "v{v}: {:?}",
            check.dropped
        );
    }
}

#[test]
fn too_many_auth_or_prev_events_are_refused() {
    let mut r = room("12");
    let mut ids: Vec<String> = (0..11).map(|i| format!("$fake{i}")).collect();
    ids.insert(0, r.h.id(&r.join));
    let many =
        r.h.raw(ALICE, "m.room.topic", Some(""), r#"{"topic":"x"}"#, ids);
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let check = r.h.check(&invite, &[&r.join, &many], true);
    let dropped = check
        .dropped
        .iter()
        .find(|d| d.place == "state[2]")
        .unwrap();
    assert!(dropped.reason.contains("at most 10"), "{dropped:?}");
}

/// The quadratic body from issue 11: 14 events that each list the create event 1,300 times
/// (about 878 KB). It must cost about what parsing costs, not quadratic time.
#[test]
fn the_hostile_auth_chain_body_is_linear() {
    let mut r = room("11");
    let mut events = Vec::new();
    for i in 0..14 {
        let ids: Vec<String> = std::iter::repeat_n(r.h.create_id.clone(), 1300).collect();
        events.push(r.h.raw(
            ALICE,
            "m.room.topic",
            Some(&format!("t{i}")),
            r#"{"topic":"x"}"#,
            ids,
        ));
    }
    let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
    let refs: Vec<&Object> = events.iter().collect();
    let started = Instant::now();
    let check = r.h.check(&invite, &refs, true);
    let took = started.elapsed();
    assert!(check.promoted.is_empty());
    assert_eq!(check.dropped.len(), 14);
    assert!(
        check
            .dropped
            .iter()
            .all(|d| d.reason.contains("at most 10")),
        "{:?}",
        check.dropped[0]
    );
    // Debug builds are slow; the bound only catches a return to quadratic work.
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
}

/// Checks an invite sent by `origin` (not [`ORIGIN`]) for the history's room.
fn check_from(h: &History, origin: &str, invite: &Object, state: &[&Object]) -> InviteCheck {
    let body = invite::build_invite_request(
        invite,
        &h.create,
        &state.iter().map(|e| (*e).clone()).collect::<Vec<_>>(),
        &[],
    )
    .unwrap()
    .body;
    invite::check_invite(&h.room_id, &body, RECEIVER, origin, Some(&h.ring())).unwrap()
}

#[test]
fn creator_servers_are_proven_only_by_the_inviters_own_verified_join() {
    for v in ["3", "10", "11", "12"] {
        let mut r = room(v);
        let invite = r.h.invite(&[&r.join, &r.pl, &r.jr]);
        let check = r.h.check(&invite, &[&r.join, &r.pl, &r.jr], true);
        assert_eq!(
            check.inviter_membership.as_deref(),
            Some(r.h.id(&r.join).as_str())
        );
        assert_eq!(check.proven_creator_servers(), [ORIGIN.to_owned()], "v{v}");
        let json = check.to_json();
        assert_eq!(
            json.get("proven_creator_servers")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Without keys the join cannot be verified, so nothing is proven.
        let unkeyed = r.h.check(&invite, &[&r.join, &r.pl, &r.jr], false);
        assert_eq!(unkeyed.inviter_membership, None);
        assert!(unkeyed.proven_creator_servers().is_empty());
        assert_eq!(unkeyed.creator_servers, [ORIGIN.to_owned()]);
        assert_eq!(
            unkeyed.to_json().get("inviter_membership"),
            Some(&Value::Null)
        );
    }
}

#[test]
fn a_replayed_create_event_proves_nothing_about_a_server_outside_the_room() {
    // The replay from issue 11: evil.example sends alice's genuine create event (and even her
    // genuine join) with an invite of its own to a room it never joined.
    for v in ["3", "11", "12"] {
        let mut r = room(v);
        let invite = r.h.event(
            MALLORY,
            "m.room.member",
            Some(INVITEE),
            r#"{"membership":"invite"}"#,
            &[&r.join, &r.pl, &r.jr],
        );
        let check = check_from(&r.h, "evil.example", &invite, &[&r.join, &r.pl, &r.jr]);
        assert_eq!(check.creator_servers, [ORIGIN.to_owned()], "v{v}");
        assert_eq!(check.inviter_membership, None, "v{v}");
        assert!(check.proven_creator_servers().is_empty(), "v{v}");
        let bare = check_from(&r.h, "evil.example", &invite, &[]);
        assert!(bare.proven_creator_servers().is_empty(), "v{v}");
    }
}

#[test]
fn a_join_the_invite_does_not_name_or_that_was_superseded_proves_nothing() {
    let mut r = room("12");
    // The invite names only the power levels and join rules, not alice's join.
    let invite = r.h.invite(&[&r.pl, &r.jr]);
    let check = r.h.check(&invite, &[&r.join, &r.pl, &r.jr], true);
    assert!(check.promoted.contains(&r.h.id(&r.join)));
    assert_eq!(check.inviter_membership, None);

    // Bob joins and leaves; an invite naming his old join is not proof he is in the room.
    let mut r = room("12");
    let jr = r.h.event(
        ALICE,
        "m.room.join_rules",
        Some(""),
        r#"{"join_rule":"public"}"#,
        &[&r.join, &r.pl],
    );
    let bob_join = r.h.event(
        BOB,
        "m.room.member",
        Some(BOB),
        r#"{"membership":"join"}"#,
        &[&r.pl, &jr],
    );
    let bob_leave = r.h.event(
        BOB,
        "m.room.member",
        Some(BOB),
        r#"{"membership":"leave"}"#,
        &[&r.pl, &bob_join],
    );
    let invite = r.h.event(
        BOB,
        "m.room.member",
        Some(INVITEE),
        r#"{"membership":"invite"}"#,
        &[&r.pl, &jr, &bob_join],
    );
    let check =
        r.h.check(&invite, &[&r.join, &r.pl, &jr, &bob_join, &bob_leave], true);
    assert!(
        check.promoted.contains(&r.h.id(&bob_leave)),
        "{:?}",
        check.dropped
    );
    assert_eq!(check.inviter_membership, None);
    // Without the leave, the same join is proof.
    let check = r.h.check(&invite, &[&r.join, &r.pl, &jr, &bob_join], true);
    assert_eq!(
        check.inviter_membership.as_deref(),
        Some(r.h.id(&bob_join).as_str())
    );
}

#[test]
fn an_origin_cannot_prove_itself_in_with_a_join_it_signed_itself() {
    // evil.example signs a join for its own user in alice's invite-only room, with the genuine
    // create, power levels and join rules, and names it in its invite: the auth rules refuse
    // the join (nobody invited mallory), so it is not promoted and proves nothing.
    for v in ["3", "11", "12"] {
        let mut r = room(v);
        let join = r.h.event(
            MALLORY,
            "m.room.member",
            Some(MALLORY),
            r#"{"membership":"join"}"#,
            &[&r.pl, &r.jr],
        );
        let invite = r.h.event(
            MALLORY,
            "m.room.member",
            Some(INVITEE),
            r#"{"membership":"invite"}"#,
            &[&r.pl, &r.jr, &join],
        );
        let check = check_from(
            &r.h,
            "evil.example",
            &invite,
            &[&r.join, &r.pl, &r.jr, &join],
        );
        assert!(!check.promoted.contains(&r.h.id(&join)), "v{v}");
        assert_eq!(check.inviter_membership, None, "v{v}");
        assert!(check.proven_creator_servers().is_empty(), "v{v}");
        // Leaving the join rules out does not help: no join rules is not "public".
        let join = r.h.event(
            MALLORY,
            "m.room.member",
            Some(MALLORY),
            r#"{"membership":"join"}"#,
            &[&r.pl],
        );
        let invite = r.h.event(
            MALLORY,
            "m.room.member",
            Some(INVITEE),
            r#"{"membership":"invite"}"#,
            &[&r.pl, &join],
        );
        let check = check_from(&r.h, "evil.example", &invite, &[&r.join, &r.pl, &join]);
        let why = reason(&check, &r.h.id(&join));
        assert!(
            !why.contains("not in state"),
            "v{v}: dropped for the wrong reason: {why}"
        );
        assert_eq!(check.inviter_membership, None, "v{v}");
    }
}
