//! The tag store at the size of the largest servers (issue 13, item 6): open time, memory per tag
//! in the process, and the latency of a 1,000-tag `recognise`, on either backend.
//!
//!     cargo run --release --example store_scale -- LOCATION N
//!
//! LOCATION is an SQLite path or a PostgreSQL connection string; the store is filled with N rooms
//! `!scale<i>:bench.example` first if it holds fewer. Prints one Markdown table row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use servership::store::{Location, TagStore};

const SERVER: &str = "bench.example";

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn room(i: usize) -> String {
    format!("!scale{i}:bench.example")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, location, n] = args.as_slice() else {
        eprintln!("usage: store_scale LOCATION N");
        std::process::exit(2);
    };
    let location = Location::parse(location).unwrap();
    let n: usize = n.parse().unwrap();
    {
        let store = TagStore::open(location.clone(), SERVER).unwrap();
        let mut have = store.len().unwrap();
        let fill = Instant::now();
        while have < n {
            let end = (have + 100_000).min(n);
            let rooms: Vec<String> = (have..end).map(room).collect();
            store.backfill(&rooms, 1).unwrap();
            have = end;
        }
        if fill.elapsed().as_secs() > 1 {
            eprintln!("filled to {n} in {:.1} s", fill.elapsed().as_secs_f64());
        }
    }
    let before = rss_kib();
    let opened = Instant::now();
    let store = TagStore::open(location.clone(), SERVER).unwrap();
    let open_s = opened.elapsed().as_secs_f64();
    let after = rss_kib();
    let len = store.len().unwrap();
    assert!(len >= n, "{len} < {n}");
    // 500 stored tags and 500 never stored, different in every request.
    let mut latencies = Vec::with_capacity(1000);
    for r in 0..1000usize {
        let mut rooms: Vec<String> = (0..500)
            .map(|k| room((r * 7919 + k * 104_729) % n))
            .collect();
        rooms.extend((0..500).map(|k| format!("!absent{r}-{k}:bench.example")));
        let tags = store.tagger().tag_all(&rooms);
        let started = Instant::now();
        let known = store.recognise(&tags).unwrap();
        latencies.push(started.elapsed());
        assert_eq!(known.iter().filter(|&&k| k).count(), 500);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "| {} | {len} | {open_s:.1} s | {:.1} B (index) / {:.1} B (RSS) | {:.2} ms | {:.2} ms |",
        location.backend(),
        store.index_bytes() as f64 / len as f64,
        (after.saturating_sub(before) * 1024) as f64 / len as f64,
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
    );
}
