//! MSC4358 in one screen: a new joiner discovers that it was shown a hidden branch of a room.
//!
//! Blue, Green, Yellow and Bronze share a room. Gray was in it once and left; Teal was in it and
//! Blue's moderator kicked it. Blue, controlling the room's alias, shows a newcomer (Purple) a
//! branch of the room in which only Blue, Gray's join and leave, and Teal's join and kick appear.
//! Purple audits the room after joining: it asks servers it knows from other rooms whether they
//! recognise the room's participation tag, through the exact JSON bytes `discover_common_rooms`
//! carries, each server answering from its own SQLite tag store, and classifies every "yes"
//! against the membership history it was shown.
//!
//! Run with `cargo run --example demo`.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;

use servership::discovery::{Audit, PeerAnswer, Responder, ResponderConfig, RoomView};
use servership::store::TagStore;

const ROOM: &str = "!council:blue.example";

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("servership-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let now_ms: i64 = 1_750_000_000_000;

    // Which rooms each server has ever joined. Tags are recorded on first join and kept for ever,
    // so Gray still holds the council's tag after leaving it.
    let history: &[(&str, &[&str])] = &[
        ("blue.example", &[ROOM, "!lobby:green.example"]),
        (
            "green.example",
            &[ROOM, "!lobby:green.example", "!garden:yellow.example"],
        ),
        (
            "yellow.example",
            &[ROOM, "!lobby:green.example", "!garden:yellow.example"],
        ),
        ("bronze.example", &[ROOM, "!lobby:green.example"]),
        ("gray.example", &[ROOM, "!lobby:green.example"]),
        ("teal.example", &[ROOM, "!lobby:green.example"]),
        (
            "white.example",
            &["!lobby:green.example", "!garden:yellow.example"],
        ),
        ("purple.example", &["!lobby:green.example"]),
    ];
    println!(
        "Tag stores (one SQLite file per server) in {}:",
        dir.display()
    );
    let mut responders = BTreeMap::new();
    let mut stores = BTreeMap::new();
    for (server, rooms) in history {
        let path = dir.join(format!("{server}.sqlite"));
        let store = TagStore::open(&path, server)?;
        store.backfill(rooms, now_ms)?;
        println!(
            "  {server:<15} {} room(s)  {}",
            store.len()?,
            path.display()
        );
        let store = Arc::new(store);
        let responder = Responder::new(Arc::clone(&store), ResponderConfig::default())?;
        responders.insert(*server, responder);
        stores.insert(*server, store);
    }

    // Purple joins the council through Blue and records its own tag.
    if let Some(purple) = stores.get("purple.example") {
        purple.record_join(ROOM, now_ms + 1)?;
    }

    // What Blue's branch shows Purple, as (user, membership, sender) in the order received:
    // Blue, Gray joining and leaving, Teal joining and being kicked by Blue's moderator, Purple.
    let view = RoomView::from_history(
        ROOM,
        "purple.example",
        &[
            ("@blue:blue.example", "join", "@blue:blue.example"),
            ("@gray:gray.example", "join", "@gray:gray.example"),
            ("@gray:gray.example", "leave", "@gray:gray.example"),
            ("@teal:teal.example", "join", "@teal:teal.example"),
            ("@teal:teal.example", "leave", "@mod:blue.example"),
            ("@purple:purple.example", "join", "@purple:purple.example"),
        ],
        None::<&[&str]>,
    );
    // Peers Purple knows from the lobby, plus one that does not answer.
    let known_peers = [
        "blue.example",
        "green.example",
        "yellow.example",
        "bronze.example",
        "gray.example",
        "teal.example",
        "white.example",
        "black.example",
    ];
    let audit = Audit::plan(view, &known_peers, 20);
    println!(
        "\nPurple joined {ROOM} via Blue, sees only Blue, and asks: {}",
        audit.peers().join(", ")
    );

    let answers: Vec<(String, PeerAnswer)> = audit
        .peers()
        .iter()
        .map(|peer| {
            let answer = match responders.get(peer.as_str()) {
                // Bytes out, bytes back: exactly what the federation request would carry.
                Some(responder) => {
                    let body = audit.request_body(peer);
                    match responder.respond(&body, "purple.example", now_ms as u64) {
                        Ok(response) => audit.read_response(peer, &response),
                        Err(e) => PeerAnswer::Failed(e.to_string()),
                    }
                }
                None => PeerAnswer::Failed("timed out after 10 s".into()),
            };
            (peer.clone(), answer)
        })
        .collect();

    let report = audit.report(&answers);
    println!("\n{}\n", report.to_text());
    println!("As JSON:\n{}", String::from_utf8(report.to_json())?);
    Ok(())
}
