//! The s2s upgrade negotiation (MSC3348) as a property: two machines driven against each other
//! over a hostile network, with random version lists, floors, most-preferred-only modes and
//! vendor methods, one or both sides opening, and events lost, duplicated, reordered and echoed
//! back to their sender. Whatever happens, both sides reach the same terminal outcome — the one
//! the choice rule predicts from the two advertised lists — within a bounded number of steps,
//! and only the initiator is told to upgrade, once.
//!
//! Loss is repaired the way the machine documents: a side calls `tick()` on a timer and delivers
//! its last event again; a finished side that had the last word delivers it again when the peer
//! repeats itself. Seeded, so a failure reproduces exactly (the seed is in the message).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

mod common;

use common::rng::Rng;
use servership::s2s::negotiation::{
    FailError, Incoming, Negotiation, NegotiationPolicy, Outcome, Outgoing, PROPOSAL, Step, VENDOR,
    VersionOffer, choose_version,
};

const VERSIONS: &[&str] = &[
    "1",
    "01",
    "9",
    "10",
    "10.1",
    "11",
    "12",
    "org.example.1",
    "org.matrix.hydra.11",
];
const METHODS: &[&str] = &["org.example.fast", "org.example.slow", "org.example.odd"];
const NAMES: &[&str] = &["a.example", "b.example", "m.example:8448", "z.example"];

fn random_policy(rng: &mut Rng) -> NegotiationPolicy {
    let mut versions: Vec<VersionOffer> = Vec::new();
    for _ in 0..rng.below(6) {
        let v = VERSIONS[rng.below(VERSIONS.len())];
        if versions.iter().all(|o| o.version != v) {
            let rating = i64::try_from(rng.below(8)).unwrap() - 2;
            versions.push(VersionOffer::new(v, rating));
        }
    }
    NegotiationPolicy {
        versions,
        most_preferred_only: rng.chance(30),
        floor: rng
            .chance(30)
            .then(|| VERSIONS[rng.below(VERSIONS.len())].to_owned()),
        vendor_methods: METHODS
            .iter()
            .filter(|_| rng.chance(40))
            .map(|m| (*m).to_owned())
            .collect(),
    }
}

#[derive(Clone, Debug)]
enum Opening {
    Standard,
    Vendor(String),
}

struct Side {
    name: String,
    policy: NegotiationPolicy,
    machine: Option<Negotiation>,
    /// Events this side sent, by ID, so `resend` can deliver the same event again.
    room: BTreeMap<String, Incoming>,
    next_id: usize,
    upgrades: Vec<String>,
    /// Errors for openings that arrived after this side had finished (the losing opening of a
    /// simultaneous pair, delayed past the end).
    late_openings: usize,
}

struct Net {
    /// In flight: (receiving side, event).
    queue: Vec<(usize, Incoming)>,
}

fn apply(sides: &mut [Side; 2], me: usize, step: Step, net: &mut Net, rng: &mut Rng) {
    let peer = 1 - me;
    let side = &mut sides[me];
    if let Some(out) = step.send {
        send(side, me, peer, &out, net, rng);
    }
    if let Some(id) = step.resend {
        let ev = side
            .room
            .get(&id)
            .cloned()
            .expect("resend names an event this side sent");
        net.queue.push((peer, ev));
    }
    side.upgrades.extend(step.upgrade);
}

fn send(side: &mut Side, me: usize, peer: usize, out: &Outgoing, net: &mut Net, rng: &mut Rng) {
    side.next_id += 1;
    let id = format!("${}{}", ["a", "b"][me], side.next_id);
    let ev = Incoming {
        event_id: id.clone(),
        event_type: out.event_type.clone(),
        sender: format!("@:{}", side.name),
        content: out.content.clone(),
    };
    side.machine
        .as_mut()
        .expect("a side that sends has a machine")
        .sent(&id)
        .unwrap();
    side.room.insert(id, ev.clone());
    net.queue.push((peer, ev.clone()));
    if rng.chance(30) {
        // The room echoes our own event back to us.
        net.queue.push((me, ev));
    }
}

fn deliver(sides: &mut [Side; 2], to: usize, ev: &Incoming, net: &mut Net, rng: &mut Rng) {
    let side = &mut sides[to];
    let result = match side.machine.as_mut() {
        Some(m) => m.handle(ev),
        None if matches!(ev.event_type.as_str(), PROPOSAL | VENDOR)
            && !ev.sender.ends_with(&format!(":{}", side.name)) =>
        {
            match Negotiation::respond(&side.policy, &side.name, ev) {
                Ok((m, step)) => {
                    side.machine = Some(m);
                    Ok(step)
                }
                Err(e) => Err(e),
            }
        }
        // Our own echo before we have a machine cannot happen; anything else is a bug.
        None => panic!("{} got {} before any opening", side.name, ev.event_type),
    };
    match result {
        Ok(step) => apply(sides, to, step, net, rng),
        Err(e) => {
            let finished = side
                .machine
                .as_ref()
                .is_some_and(|m| m.outcome().is_finished());
            assert!(
                finished && matches!(ev.event_type.as_str(), PROPOSAL | VENDOR),
                "{} refused {} {}: {}",
                side.name,
                ev.event_type,
                ev.event_id,
                e.message()
            );
            side.late_openings += 1;
        }
    }
}

fn same_list(a: &[VersionOffer], b: &[VersionOffer]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// What the protocol must end with, computed from the policies alone.
fn expected(initiator: &Side, opening: &Opening, responder: &Side) -> Outcome {
    match opening {
        Opening::Vendor(m) => {
            if responder.policy.vendor_methods.contains(m) {
                Outcome::Vendor(m.clone())
            } else {
                Outcome::Failed(FailError::InvalidMethod)
            }
        }
        Opening::Standard => {
            let a = initiator.policy.advertised();
            let b = responder.policy.advertised();
            if same_list(&a, &b) {
                Outcome::Agreed(choose_version(&a, &b).unwrap())
            } else {
                match choose_version(&a, &b) {
                    Some(v) => Outcome::Agreed(v),
                    None => Outcome::Failed(FailError::NoMatch),
                }
            }
        }
    }
}

/// Runs one random case; returns (steps taken, faults injected).
fn run(seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let i = rng.below(NAMES.len());
    let j = (i + 1 + rng.below(NAMES.len() - 1)) % NAMES.len();
    let mut sides = [
        Side {
            name: NAMES[i].to_owned(),
            policy: random_policy(&mut rng),
            machine: None,
            room: BTreeMap::new(),
            next_id: 0,
            upgrades: vec![],
            late_openings: 0,
        },
        Side {
            name: NAMES[j].to_owned(),
            policy: random_policy(&mut rng),
            machine: None,
            room: BTreeMap::new(),
            next_id: 0,
            upgrades: vec![],
            late_openings: 0,
        },
    ];
    if rng.chance(25) {
        // Twins: the same offers in another order (equal lists, and ties the rule must break
        // the same way whatever the order, such as "1" against "01").
        let mut twin = sides[0].policy.versions.clone();
        for k in (1..twin.len()).rev() {
            twin.swap(k, rng.below(k + 1));
        }
        if rng.chance(50) {
            for o in &mut twin {
                o.rating = 3;
            }
            for o in &mut sides[0].policy.versions {
                o.rating = 3;
            }
        }
        sides[1].policy.versions = twin;
    }
    let mut net = Net { queue: vec![] };
    // Who opens, and with what: side 0 always; side 1 too in a third of the cases.
    let both = rng.chance(33);
    let mut openings: [Option<Opening>; 2] = [None, None];
    for s in 0..2 {
        if s == 1 && !both {
            break;
        }
        let opening = if rng.chance(20) {
            Opening::Vendor(METHODS[rng.below(METHODS.len())].to_owned())
        } else {
            Opening::Standard
        };
        let peer = sides[1 - s].name.clone();
        let made = match &opening {
            Opening::Standard => Negotiation::initiate(&sides[s].policy, &sides[s].name, &peer),
            Opening::Vendor(m) => {
                Negotiation::initiate_vendor(&sides[s].policy, m, &sides[s].name, &peer)
            }
        };
        match made {
            Ok((m, out)) => {
                sides[s].machine = Some(m);
                openings[s] = Some(opening);
                send(&mut sides[s], s, 1 - s, &out, &mut net, &mut rng);
            }
            Err(_) => {
                // Only a policy that leaves nothing to propose may refuse to open.
                assert!(
                    matches!(opening, Opening::Standard) && sides[s].policy.advertised().is_empty(),
                    "seed {seed}: initiate refused a usable policy"
                );
            }
        }
    }
    // The effective initiator: the only opener, or the lower server name of two.
    let initiator = match (&openings[0], &openings[1]) {
        (None, None) => return (0, 0),
        (Some(_), None) => 0,
        (None, Some(_)) => 1,
        (Some(_), Some(_)) => usize::from(sides[1].name.as_bytes() < sides[0].name.as_bytes()),
    };
    let opening = openings[initiator].clone().unwrap();
    let want = expected(&sides[initiator], &opening, &sides[1 - initiator]);

    let mut losses = rng.below(5);
    let mut dups = rng.below(5);
    let faults = losses + dups;
    let bound = 60 + 25 * faults;
    let mut steps = 0;
    loop {
        let done = sides.iter().all(|s| {
            s.machine
                .as_ref()
                .is_some_and(|m| m.outcome().is_finished())
        });
        if done {
            break;
        }
        steps += 1;
        assert!(
            steps <= bound,
            "seed {seed}: no end after {bound} steps ({:?} / {:?})",
            sides[0].machine.as_ref().map(Negotiation::outcome),
            sides[1].machine.as_ref().map(Negotiation::outcome)
        );
        // Timers fire now and then, and always when nothing is in flight.
        if net.queue.is_empty() || rng.chance(10) {
            for s in 0..2 {
                if let Some(m) = sides[s].machine.as_mut() {
                    let step = m.tick();
                    apply(&mut sides, s, step, &mut net, &mut rng);
                }
            }
            continue;
        }
        // Reordering: any event in flight may go next.
        let k = rng.below(net.queue.len());
        if losses > 0 && rng.chance(25) {
            net.queue.remove(k);
            losses -= 1;
            continue;
        }
        if dups > 0 && rng.chance(25) {
            let copy = net.queue[k].clone();
            net.queue.push(copy);
            dups -= 1;
            continue;
        }
        let (to, ev) = net.queue.remove(k);
        deliver(&mut sides, to, &ev, &mut net, &mut rng);
    }
    // Drain what is still in flight: it must not change anything.
    let outcomes: Vec<Outcome> = sides
        .iter()
        .map(|s| s.machine.as_ref().unwrap().outcome())
        .collect();
    while let Some((to, ev)) = net.queue.pop() {
        deliver(&mut sides, to, &ev, &mut net, &mut rng);
        assert!(net.queue.len() < 100, "seed {seed}: answers never stop");
    }
    for (s, o) in sides.iter().zip(&outcomes) {
        assert_eq!(&s.machine.as_ref().unwrap().outcome(), o, "seed {seed}");
    }
    assert_eq!(outcomes[0], outcomes[1], "seed {seed}: the sides disagree");
    assert_eq!(
        outcomes[0], want,
        "seed {seed}: not what the choice rule says"
    );
    let upgrade_want: Vec<String> = match &want {
        Outcome::Agreed(v) => vec![v.clone()],
        _ => vec![],
    };
    assert_eq!(
        sides[initiator].upgrades, upgrade_want,
        "seed {seed}: the initiator upgrades once, exactly on agreement"
    );
    assert!(
        sides[1 - initiator].upgrades.is_empty(),
        "seed {seed}: the responder never upgrades"
    );
    (steps, faults)
}

#[test]
fn two_machines_always_end_the_same_whatever_the_network_does() {
    let mut worst = 0;
    let mut with_faults = 0;
    for case in 0..4000u64 {
        let (steps, faults) = run(0x5eed_0000 + case);
        worst = worst.max(steps);
        with_faults += usize::from(faults > 0);
    }
    // Most cases were hostile, and the bound held for all.
    assert!(with_faults > 3000, "{with_faults}");
    assert!(worst > 0);
}
