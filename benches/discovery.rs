//! MSC4358 speed: tagging, answering a full request against a large store, opening that store,
//! and the index's memory per tag.
//!
//! `cargo bench --bench discovery` (add `-- --quick` for a short run). The 1,000,000-tag store is
//! built once per run in the system temporary directory and removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use servership::discovery::{Requester, Responder, ResponderConfig, Tagger};
use servership::store::TagStore;

const SERVER: &str = "bench.example.org";
const STORE_TAGS: usize = 1_000_000;

fn room(i: usize) -> String {
    format!("!r{i:08}abcdefghij:example.org")
}

fn store_path() -> PathBuf {
    std::env::temp_dir().join(format!("servership-bench-{}", std::process::id()))
}

fn tagging(c: &mut Criterion) {
    let rooms: Vec<String> = (0..1000).map(room).collect();
    let tagger = Tagger::new(SERVER);
    let mut group = c.benchmark_group("tags");
    group.throughput(Throughput::Elements(rooms.len() as u64));
    group.bench_function("tag_all 1000 rooms (one core)", |b| {
        b.iter(|| black_box(tagger.tag_all(black_box(&rooms))))
    });
    group.finish();
}

fn large_store(c: &mut Criterion) {
    let dir = store_path();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tags.sqlite");
    {
        let store = TagStore::open(&file, SERVER).unwrap();
        let rooms: Vec<String> = (0..STORE_TAGS).map(room).collect();
        let started = Instant::now();
        let added = store.backfill(&rooms, 1).unwrap();
        println!(
            "backfill of {added} rooms in one call: {:.2} s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut group = c.benchmark_group("store of 1,000,000 tags");
    group.sample_size(10);
    group.bench_function("open", |b| {
        b.iter(|| black_box(TagStore::open(&file, SERVER).unwrap()))
    });

    let store = Arc::new(TagStore::open(&file, SERVER).unwrap());
    println!(
        "index memory: {} bytes for {} tags = {:.1} bytes per tag",
        store.index_bytes(),
        store.len().unwrap(),
        store.index_bytes() as f64 / store.len().unwrap() as f64
    );
    let config = ResponderConfig {
        budget_tags: u64::MAX,
        ..ResponderConfig::default()
    };
    let responder = Responder::new(Arc::clone(&store), config).unwrap();
    // Half the asked rooms are known to the store, half are not.
    let asked: Vec<String> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                room(i * 997)
            } else {
                format!("!unknown{i}:elsewhere.org")
            }
        })
        .collect();
    let requester = Requester::new(SERVER, &asked, 1000);
    let body = requester.request_body(0).unwrap();
    let answer = responder.respond(&body, "peer.example", 0).unwrap();
    assert_eq!(requester.map_response(0, &answer).unwrap().len(), 500);
    group.sample_size(50);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("respond to 1000 tags (bytes in, bytes out)", |b| {
        b.iter(|| {
            black_box(
                responder
                    .respond(black_box(&body), "peer.example", 0)
                    .unwrap(),
            )
        })
    });
    group.finish();
    drop(responder);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, tagging, large_store);
criterion_main!(benches);
