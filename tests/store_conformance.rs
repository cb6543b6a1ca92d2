//! The store conformance suite: every property of the stores (tags, budgets, the audit queue,
//! knocks), run once per backend: `sqlite::*` on a temporary file, `postgres::*` in a fresh schema
//! of the database named by `SERVERSHIP_TEST_POSTGRES` (a libpq connection string).
//!
//! Durability across restarts and `kill -9`, several processes on one store, freshness without
//! reopening, bounded waits on a busy store, and binding to one server name.
//!
//! With `SERVERSHIP_TEST_POSTGRES` unset at build time, the `postgres::*` tests are compiled as
//! ignored, so `cargo test` reports them as not run; with `CI=true` they always run, and fail
//! without the variable (`build.rs` decides).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use servership::discovery::{Budget, participation_tag};
use servership::store::{AuditQueue, KnockLimits, KnockStore, Location, StoreBudget, TagStore};

const SERVER: &str = "green.example:8448";
/// Set in a re-executed copy of this test binary to make [`child_entry`] act as a writer.
const CHILD_ENV: &str = "SERVERSHIP_TAG_STORE_CHILD";
/// Set in a re-executed copy to make [`budget_child_entry`] charge a shared budget.
const BUDGET_CHILD_ENV: &str = "SERVERSHIP_BUDGET_CHILD";
/// The PostgreSQL database the `postgres::*` tests use.
const POSTGRES_ENV: &str = "SERVERSHIP_TEST_POSTGRES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store for one test: a temporary directory, or a PostgreSQL schema of its own
/// (through `search_path`). Removed when dropped.
struct Fixture {
    location: Location,
    dir: Option<PathBuf>,
    schema: Option<(String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(name: &str) -> String {
    format!(
        "{}_{}_{}_{}",
        name.replace('-', "_"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// The base connection string, or a failure that says how to give one.
fn postgres_url() -> String {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{POSTGRES_ENV} is unset: the PostgreSQL backend cannot be tested \
             (set it to a connection string, e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
        ),
    }
}

/// `url` with `search_path` set to `schema`, in URL or `key=value` form.
fn with_search_path(url: &str, schema: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    } else {
        format!("{url} options='-csearch_path={schema}'")
    }
}

impl Fixture {
    fn new(backend: Backend, name: &str) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("servership-store-{}", unique(name)));
                std::fs::create_dir_all(&dir).unwrap();
                Fixture {
                    location: Location::Sqlite(dir.join("store.sqlite")),
                    dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = postgres_url();
                let schema = format!("t_{}", unique(name)).to_lowercase();
                let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).unwrap();
                admin
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .unwrap();
                Fixture {
                    location: Location::parse(&with_search_path(&base, &schema)).unwrap(),
                    dir: None,
                    schema: Some((base, schema)),
                }
            }
        }
    }

    fn location(&self) -> Location {
        self.location.clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((base, schema)) = &self.schema
            && let Ok(mut admin) = ::postgres::Client::connect(base, ::postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

/// The location as text a child process parses back (the full connection string, for
/// PostgreSQL).
fn spelled(location: &Location) -> String {
    match location {
        Location::Sqlite(path) => path.display().to_string(),
        Location::Postgres(url) => url.expose().to_owned(),
    }
}

/// Holds the store's write lock (SQLite) or the row a charge or knock needs (PostgreSQL) until
/// dropped, as another process in the middle of a long transaction would.
enum Blocker {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

impl Blocker {
    /// `lock_sql` is what PostgreSQL runs inside its open transaction.
    fn hold(fixture: &Fixture, lock_sql: &str) -> Blocker {
        match &fixture.location {
            Location::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                Blocker::Sqlite(c)
            }
            Location::Postgres(url) => {
                let mut c = ::postgres::Client::connect(url.expose(), ::postgres::NoTls).unwrap();
                c.batch_execute(&format!("BEGIN; {lock_sql}")).unwrap();
                Blocker::Postgres(c)
            }
        }
    }

    fn release(self) {
        match self {
            Blocker::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            Blocker::Postgres(mut c) => c.batch_execute("ROLLBACK").unwrap(),
        }
    }
}

fn room(prefix: &str, i: usize) -> String {
    format!("!{prefix}{i}:example.org")
}

/// Starts this test binary again as a writer child: it records `count` rooms named
/// `!<prefix><i>:example.org` one acknowledged write at a time and prints `acked <room>` after each.
fn spawn_writer(path: &Location, prefix: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}\t{prefix}\t{count}", spelled(path)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The writer side of the multi-process tests; does nothing unless started by [`spawn_writer`].
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\t');
    let path = parts.next().unwrap();
    let prefix = parts.next().unwrap();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let store = TagStore::open(Location::parse(path).unwrap(), SERVER).unwrap();
    let stdout = std::io::stdout();
    for i in 0..count {
        let r = room(prefix, i);
        store.record_join(&r, i as i64).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "acked {r}").unwrap();
        out.flush().unwrap();
    }
}

/// The room in an `acked <room>` line. The test harness may print `test child_entry ... ` on the
/// same line as the first acknowledgement, so the marker is searched for, not expected first.
fn acked_in(line: &str) -> Option<String> {
    line.find("acked ").map(|at| line[at + 6..].to_owned())
}

/// Collects the rooms a child acknowledged.
fn acked_rooms(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| acked_in(&l))
        .collect()
}

#[test]
fn stores_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TagStore>();
    assert_send_sync::<KnockStore>();
    assert_send_sync::<AuditQueue>();
    assert_send_sync::<StoreBudget>();
}

fn record_join_is_idempotent_and_keeps_first_time(b: Backend) {
    let dir = Fixture::new(b, "idempotent");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert!(store.is_empty().unwrap());
    assert!(store.record_join("!a:example.org", 1000).unwrap());
    assert!(!store.record_join("!a:example.org", 2000).unwrap());
    assert_eq!(store.first_joined("!a:example.org").unwrap(), Some(1000));
    assert_eq!(store.len().unwrap(), 1);
    assert!(
        store
            .contains_tag(&participation_tag(SERVER, "!a:example.org"))
            .unwrap()
    );
    assert!(
        !store
            .contains_tag(&participation_tag("other.example", "!a:example.org"))
            .unwrap()
    );
    assert!(!store.contains_room("!b:example.org").unwrap());
    assert_eq!(
        store.rooms().unwrap(),
        vec![("!a:example.org".to_owned(), 1000)]
    );
}

fn invalid_room_ids_are_refused_and_backfill_is_all_or_nothing(b: Backend) {
    let dir = Fixture::new(b, "invalid");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    let err = store.record_join("no-bang:example.org", 1).unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_INVALID_PARAM");
    assert!(err.message().starts_with("room_id: "), "{}", err.message());
    let long = format!("!{}", "x".repeat(300));
    let err = store.backfill(&["!ok:example.org", &long], 1).unwrap_err();
    assert!(
        err.message().starts_with("room_ids[1]: "),
        "{}",
        err.message()
    );
    assert!(store.record_join("!nul\0:example.org", 1).is_err());
    assert_eq!(store.len().unwrap(), 0);
}

fn backfill_adds_only_new_rooms_in_one_call(b: Backend) {
    let dir = Fixture::new(b, "backfill");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    store.record_join(&room("r", 3), 5).unwrap();
    let rooms: Vec<String> = (0..1000).map(|i| room("r", i)).collect();
    assert_eq!(store.backfill(&rooms, 77).unwrap(), 999);
    assert_eq!(store.backfill(&rooms, 78).unwrap(), 0);
    assert_eq!(store.len().unwrap(), 1000);
    assert_eq!(store.first_joined(&room("r", 3)).unwrap(), Some(5));
    assert_eq!(store.first_joined(&room("r", 4)).unwrap(), Some(77));
    let tags = store.tagger().tag_all(&rooms);
    assert!(store.recognise(&tags).unwrap().iter().all(|&b| b));
}

fn restart_keeps_every_tag(b: Backend) {
    let dir = Fixture::new(b, "restart");
    let rooms: Vec<String> = (0..3000).map(|i| room("restart", i)).collect();
    {
        let store = TagStore::open(dir.location(), SERVER).unwrap();
        store.backfill(&rooms[..2000], 1).unwrap();
        for (i, r) in rooms[2000..].iter().enumerate() {
            store.record_join(r, 2 + i as i64).unwrap();
        }
    }
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 3000);
    let listed = store.rooms().unwrap();
    assert_eq!(listed.len(), 3000);
    assert_eq!(
        listed.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
        rooms
    );
    let tags = store.tagger().tag_all(&rooms);
    assert!(store.recognise(&tags).unwrap().iter().all(|&b| b));
    // Reopen once more after more writes: still everything.
    store.record_join("!late:example.org", 9).unwrap();
    drop(store);
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 3001);
    assert!(store.contains_room("!late:example.org").unwrap());
}

fn the_store_is_bound_to_its_server_name(b: Backend) {
    let dir = Fixture::new(b, "bound");
    drop(TagStore::open(dir.location(), SERVER).unwrap());
    let err = TagStore::open(dir.location(), "green.example").unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_INVALID_PARAM");
    assert!(
        err.message().contains("belongs to server"),
        "{}",
        err.message()
    );
    assert!(TagStore::open(dir.location(), SERVER).is_ok());
    assert!(TagStore::open(dir.location(), "").is_err());
}

fn a_second_handle_sees_new_tags_without_reopening(b: Backend) {
    let dir = Fixture::new(b, "fresh");
    let a = TagStore::open(dir.location(), SERVER).unwrap();
    let b = TagStore::open(dir.location(), SERVER).unwrap();
    assert!(!b.contains_room("!x:example.org").unwrap());
    a.record_join("!x:example.org", 1).unwrap();
    assert!(b.contains_room("!x:example.org").unwrap());
    let rooms: Vec<String> = (0..5000).map(|i| room("fresh", i)).collect();
    a.backfill(&rooms, 2).unwrap();
    assert_eq!(b.len().unwrap(), 5001);
    let tags = b.tagger().tag_all(&rooms);
    assert!(b.recognise(&tags).unwrap().iter().all(|&x| x));
    // And the other way round, interleaved.
    for i in 0..50 {
        b.record_join(&room("back", i), 3).unwrap();
        a.record_join(&room("forth", i), 3).unwrap();
        assert!(a.contains_room(&room("back", i)).unwrap());
        assert!(b.contains_room(&room("forth", i)).unwrap());
    }
    assert_eq!(a.len().unwrap(), 5101);
    assert_eq!(b.len().unwrap(), 5101);
}

fn another_process_writes_are_seen_without_reopening(b: Backend) {
    let dir = Fixture::new(b, "otherproc");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 0);
    let mut child = spawn_writer(&dir.location(), "p", 200);
    let acked = acked_rooms(&mut child);
    assert!(child.wait().unwrap().success());
    assert_eq!(acked.len(), 200);
    assert_eq!(store.len().unwrap(), 200);
    for r in &acked {
        assert!(store.contains_room(r).unwrap(), "{r} missing");
    }
}

fn threads_sharing_one_store_lose_nothing(b: Backend) {
    let dir = Fixture::new(b, "threads");
    let store = Arc::new(TagStore::open(dir.location(), SERVER).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..300 {
                    store.record_join(&room(&format!("t{t}-"), i), 1).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.len().unwrap(), 1200);
}

fn kill_9_right_after_acknowledged_writes_loses_nothing(b: Backend) {
    let dir = Fixture::new(b, "kill9");
    // Create the file first so the child spends its time writing.
    drop(TagStore::open(dir.location(), SERVER).unwrap());
    let mut child = spawn_writer(&dir.location(), "k", 1_000_000);
    let stdout = child.stdout.take().unwrap();
    let (first_ack, acked_once) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for room in BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| acked_in(&l))
        {
            if acked.is_empty() {
                let _ = first_ack.send(());
            }
            acked.push(room);
        }
        acked
    });
    // Kill at a "random" moment 0 to 500 ms after the first acknowledgement, not after a fixed
    // time: on a loaded machine the child's start-up (connecting, migrating, loading the index)
    // alone can take longer than a fixed delay, and then there is nothing to check.
    let started = acked_once.recv_timeout(Duration::from_secs(60));
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 500;
    if started.is_ok() {
        std::thread::sleep(Duration::from_millis(u64::from(jitter)));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer must have been killed, not finished"
    );
    let acked = reader.join().unwrap();
    assert!(
        !acked.is_empty(),
        "the writer acknowledged nothing before the kill"
    );
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    for r in &acked {
        assert!(store.contains_room(r).unwrap(), "acknowledged {r} was lost");
    }
    let stored = store.len().unwrap();
    // At most the one write in flight when the kill came may be stored without an acknowledgement.
    assert!(
        stored == acked.len() || stored == acked.len() + 1,
        "{stored} vs {}",
        acked.len()
    );
}

fn two_processes_writing_10000_rooms_each_lose_nothing(b: Backend) {
    let dir = Fixture::new(b, "twoproc");
    let mut a = spawn_writer(&dir.location(), "a", 10_000);
    let mut b = spawn_writer(&dir.location(), "b", 10_000);
    let out_a = a.stdout.take().unwrap();
    let reader_a = std::thread::spawn(move || {
        BufReader::new(out_a)
            .lines()
            .map_while(Result::ok)
            .filter(|l| acked_in(l).is_some())
            .count()
    });
    let acked_b = acked_rooms(&mut b);
    let acked_a = reader_a.join().unwrap();
    assert!(a.wait().unwrap().success(), "writer a failed");
    assert!(b.wait().unwrap().success(), "writer b failed");
    assert_eq!(acked_a, 10_000);
    assert_eq!(acked_b.len(), 10_000);
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 20_000);
    let all: Vec<String> = (0..10_000)
        .flat_map(|i| [room("a", i), room("b", i)])
        .collect();
    let tags = store.tagger().tag_all(&all);
    assert!(store.recognise(&tags).unwrap().iter().all(|&x| x));
    assert_eq!(store.rooms().unwrap().len(), 20_000);
}

fn index_stays_compact(b: Backend) {
    let dir = Fixture::new(b, "compact");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    let rooms: Vec<String> = (0..50_000).map(|i| room("c", i)).collect();
    store.backfill(&rooms, 1).unwrap();
    for i in 0..100 {
        store.record_join(&room("d", i), 1).unwrap();
    }
    // At most 16 bytes a tag, plus the bucket bounds (65,537 u32s) that every index of more than
    // a thousand tags holds; `discovery::index`'s own test checks 16 bytes a tag at 10^6 tags.
    let bounds = 65_537 * 4;
    let len = store.len().unwrap();
    assert!(
        store.index_bytes() <= 16 * len + bounds,
        "{} bytes for {len} tags",
        store.index_bytes()
    );
    drop(store);
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    let len = store.len().unwrap();
    assert!(
        store.index_bytes() <= 15 * len + bounds,
        "{} bytes for {len} tags after reopening",
        store.index_bytes()
    );
}

// --- shared budgets (store::StoreBudget) -----------------------------------------------------

/// Budget of the shared-budget tests: 1000 tags per (practically endless) window.
const BUDGET: u64 = 1000;
const WINDOW: u64 = 3_600_000;

/// Starts this test binary again to charge one tag `count` times to `origin` (in the spellings
/// given, round robin); it prints `charged` or `refused` per attempt.
fn spawn_charger(path: &Location, origins: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "budget_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            BUDGET_CHILD_ENV,
            format!("{}\t{origins}\t{count}", spelled(path)),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The charging side of the multi-process budget test; does nothing unless started by
/// [`spawn_charger`].
#[test]
fn budget_child_entry() {
    let Ok(spec) = std::env::var(BUDGET_CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\t');
    let path = parts.next().unwrap();
    let origins: Vec<&str> = parts.next().unwrap().split(',').collect();
    let count: usize = parts.next().unwrap().parse().unwrap();
    let budget = StoreBudget::open(Location::parse(path).unwrap(), BUDGET, WINDOW).unwrap();
    let stdout = std::io::stdout();
    for i in 0..count {
        let outcome = match budget.charge(origins[i % origins.len()], 1, 10) {
            Ok(()) => "charged",
            Err(e) if e.errcode().as_str() == "M_LIMIT_EXCEEDED" => "refused",
            Err(e) => panic!("charge failed: {e}"),
        };
        let mut out = stdout.lock();
        writeln!(out, "budget {outcome}").unwrap();
        out.flush().unwrap();
    }
}

/// (charged, refused) lines of a charger child.
fn charge_counts(child: &mut Child) -> (usize, usize) {
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    (count("budget charged"), count("budget refused"))
}

fn two_budget_handles_on_one_file_share_one_budget(b: Backend) {
    let dir = Fixture::new(b, "budget-handles");
    let a = StoreBudget::open(dir.location(), 100, 1000).unwrap();
    let b = StoreBudget::open(dir.location(), 100, 1000).unwrap();
    a.charge("asker.example", 60, 5).unwrap();
    assert_eq!(b.remaining("asker.example", 6).unwrap(), 40);
    let err = b.charge("ASKER.example:8448", 41, 7).unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_LIMIT_EXCEEDED");
    assert_eq!(err.status(), 429);
    assert_eq!(err.retry_after_ms(), Some(998));
    b.charge("asker.example.", 40, 7).unwrap();
    assert_eq!(a.remaining("asker.example", 8).unwrap(), 0);
    // Other origins are untouched; the window ends for everyone at once.
    assert_eq!(a.remaining("other.example", 8).unwrap(), 100);
    assert_eq!(a.remaining("asker.example", 1005).unwrap(), 100);
    a.charge("asker.example", 100, 1005).unwrap();
    // A clock slightly behind (another worker) does not restart the window.
    assert!(b.charge("asker.example", 1, 1000).is_err());
}

fn a_reopened_budget_keeps_its_used_count(b: Backend) {
    let dir = Fixture::new(b, "budget-reopen");
    {
        let budget = StoreBudget::open(dir.location(), 100, 60_000).unwrap();
        budget.charge("asker.example", 70, 1).unwrap();
    }
    let budget = StoreBudget::open(dir.location(), 100, 60_000).unwrap();
    assert_eq!(budget.remaining("asker.example", 2).unwrap(), 30);
    assert!(budget.charge("asker.example", 31, 2).is_err());
    // The budget lives next to the tags without disturbing them.
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    store.record_join("!r:example.org", 1).unwrap();
    assert_eq!(budget.remaining("asker.example", 2).unwrap(), 30);
}

fn ended_windows_are_purged_a_few_at_a_time(b: Backend) {
    let dir = Fixture::new(b, "budget-purge");
    let budget = StoreBudget::open(dir.location(), 10, 100).unwrap();
    for i in 0..50 {
        budget.charge(&format!("s{i}.example"), 1, 0).unwrap();
    }
    assert_eq!(budget.stored_origins().unwrap(), 50);
    // A still-open window is never purged.
    budget.charge("late.example", 1, 99).unwrap();
    assert_eq!(budget.stored_origins().unwrap(), 51);
    // Every charge after the windows ended removes a bounded number of them.
    budget.charge("new.example", 1, 100).unwrap();
    let after_one = budget.stored_origins().unwrap();
    assert!(
        (44..51).contains(&after_one),
        "{after_one} rows after one charge"
    );
    for _ in 0..10 {
        budget.charge("new.example", 0, 150).unwrap();
    }
    assert_eq!(budget.stored_origins().unwrap(), 2, "late and new remain");
}

fn a_busy_budget_store_fails_within_bounded_time(b: Backend) {
    let dir = Fixture::new(b, "budget-busy");
    let budget = StoreBudget::open(dir.location(), 10, 1000).unwrap();
    budget.charge("asker.example", 1, 1).unwrap();
    let blocker = Blocker::hold(
        &dir,
        "SELECT * FROM servership_discovery_budgets WHERE origin = 'asker.example' FOR UPDATE",
    );
    let started = std::time::Instant::now();
    let err = budget.charge("asker.example", 1, 1).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.errcode().as_str(), "M_UNKNOWN", "{err}");
    assert_eq!(err.status(), 500);
    // SQLite retries for about a second; PostgreSQL waits for its 2 s lock timeout.
    let (least, most) = match b {
        Backend::Sqlite => (900, 1600),
        Backend::Postgres => (1900, 4500),
    };
    assert!(took < Duration::from_millis(most), "waited {took:?}");
    assert!(
        took >= Duration::from_millis(least),
        "gave up after only {took:?}"
    );
    blocker.release();
    budget.charge("asker.example", 1, 1).unwrap();
    assert_eq!(budget.remaining("asker.example", 2).unwrap(), 8);
}

fn two_processes_draw_on_one_budget(b: Backend) {
    let dir = Fixture::new(b, "budget-procs");
    drop(StoreBudget::open(dir.location(), BUDGET, WINDOW).unwrap());
    // 2 x 700 charges of one tag against 1000: exactly 1000 succeed, whoever wins the races.
    let mut a = spawn_charger(&dir.location(), "asker.example,ASKER.example", 700);
    let mut b = spawn_charger(&dir.location(), "asker.example:8448,asker.example.", 700);
    let reader_a = std::thread::spawn(move || {
        let counts = charge_counts(&mut a);
        (counts, a.wait().unwrap().success())
    });
    let counts_b = charge_counts(&mut b);
    assert!(b.wait().unwrap().success(), "charger b failed");
    let (counts_a, ok_a) = reader_a.join().unwrap();
    assert!(ok_a, "charger a failed");
    assert_eq!(counts_a.0 + counts_a.1, 700);
    assert_eq!(counts_b.0 + counts_b.1, 700);
    assert_eq!(
        counts_a.0 + counts_b.0,
        BUDGET as usize,
        "{counts_a:?} {counts_b:?}"
    );
    let budget = StoreBudget::open(dir.location(), BUDGET, WINDOW).unwrap();
    assert_eq!(budget.remaining("asker.example", 11).unwrap(), 0);
}

// --- the audit queue (store::AuditQueue) ------------------------------------------------------

fn audit_queue_orders_due_rooms_and_finishes_once(b: Backend) {
    let dir = Fixture::new(b, "queue");
    let q = AuditQueue::open(dir.location()).unwrap();
    assert!(q.enqueue("!b:example.org", 200, 1).unwrap());
    assert!(q.enqueue("!a:example.org", 100, 1).unwrap());
    assert!(q.enqueue("!c:example.org", 300, 1).unwrap());
    assert!(
        !q.enqueue("!a:example.org", 50, 2).unwrap(),
        "one audit per room"
    );
    assert_eq!(q.due(99, 10).unwrap(), Vec::<String>::new());
    assert_eq!(
        q.due(250, 10).unwrap(),
        ["!a:example.org", "!b:example.org"]
    );
    assert_eq!(q.due(1000, 1).unwrap(), ["!a:example.org"]);
    assert_eq!(q.state("!a:example.org").unwrap(), Some("pending"));
    assert_eq!(q.state("!z:example.org").unwrap(), None);

    assert!(q.postpone("!a:example.org", 400).unwrap());
    assert_eq!(
        q.due(350, 10).unwrap(),
        ["!b:example.org", "!c:example.org"]
    );
    assert!(q.finish("!b:example.org", 500, "consistent").unwrap());
    assert!(
        !q.finish("!b:example.org", 600, "consistent").unwrap(),
        "already done"
    );
    assert!(!q.postpone("!b:example.org", 700).unwrap());
    assert_eq!(q.state("!b:example.org").unwrap(), Some("done"));
    assert_eq!(
        q.outcome("!b:example.org").unwrap(),
        Some(("consistent".into(), 500))
    );
    assert!(
        !q.enqueue("!b:example.org", 800, 800).unwrap(),
        "a done room is not queued again"
    );
    assert_eq!(
        q.pending().unwrap(),
        vec![
            ("!c:example.org".to_owned(), 300),
            ("!a:example.org".to_owned(), 400)
        ]
    );
    assert!(
        q.finish("!a:example.org", 900, "hidden_branch_suspected")
            .unwrap()
    );
    assert_eq!(q.finished_since(0).unwrap(), 2);
    assert_eq!(q.finished_since(600).unwrap(), 1);
    assert_eq!(q.finished_since(901).unwrap(), 0);

    assert_eq!(
        q.enqueue("bad", 1, 1).unwrap_err().errcode().as_str(),
        "M_INVALID_PARAM"
    );
    assert!(q.finish("!c:example.org", 1, "").is_err());
    assert!(q.finish("!c:example.org", 1, "a\nb").is_err());
    assert!(q.finish("!c:example.org", 1, &"x".repeat(300)).is_err());
    assert_eq!(q.state("!c:example.org").unwrap(), Some("pending"));
}

fn audit_queue_keeps_the_report_and_counts_attempts(b: Backend) {
    let dir = Fixture::new(b, "queue-report");
    let q = AuditQueue::open(dir.location()).unwrap();
    assert!(q.enqueue("!r:example.org", 10, 1).unwrap());
    assert_eq!(q.attempts("!r:example.org").unwrap(), 0);
    assert!(q.postpone("!r:example.org", 20).unwrap());
    assert!(q.postpone("!r:example.org", 30).unwrap());
    assert_eq!(q.attempts("!r:example.org").unwrap(), 2);
    assert_eq!(q.report("!r:example.org").unwrap(), None, "not done yet");
    let report = r#"{"verdict":"hidden_branch_suspected"}"#;
    assert!(
        q.finish_with_report(
            "!r:example.org",
            40,
            "hidden_branch_suspected",
            Some(report)
        )
        .unwrap()
    );
    drop(q);
    // Another handle (another process, a restart) reads the same report.
    let again = AuditQueue::open(dir.location()).unwrap();
    assert_eq!(
        again.report("!r:example.org").unwrap().as_deref(),
        Some(report)
    );
    assert_eq!(
        again.outcome("!r:example.org").unwrap(),
        Some(("hidden_branch_suspected".to_owned(), 40))
    );
    assert_eq!(again.attempts("!never:example.org").unwrap(), 0);
    let huge = "x".repeat(5 * 1024 * 1024);
    assert!(again.enqueue("!big:example.org", 1, 1).unwrap());
    let err = again
        .finish_with_report("!big:example.org", 2, "consistent", Some(&huge))
        .unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_TOO_LARGE");
    assert_eq!(again.state("!big:example.org").unwrap(), Some("pending"));
}

fn audit_queue_survives_a_restart_and_is_shared_by_handles(b: Backend) {
    let dir = Fixture::new(b, "queue-restart");
    {
        let q = AuditQueue::open(dir.location()).unwrap();
        for i in 0..20 {
            q.enqueue(&room("q", i), i as i64, 0).unwrap();
        }
        q.finish(&room("q", 0), 5, "consistent").unwrap();
    }
    let a = AuditQueue::open(dir.location()).unwrap();
    let b = AuditQueue::open(dir.location()).unwrap();
    assert_eq!(a.pending().unwrap().len(), 19);
    assert_eq!(a.state(&room("q", 0)).unwrap(), Some("done"));
    // Two handles queueing the same room give one row.
    assert!(a.enqueue("!same:example.org", 1, 1).unwrap());
    assert!(!b.enqueue("!same:example.org", 2, 2).unwrap());
    assert_eq!(b.pending().unwrap().len(), 20);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.location();
            std::thread::spawn(move || {
                let q = AuditQueue::open(path).unwrap();
                (0..50)
                    .filter(|i| q.enqueue(&room("race", *i), 1, 1).unwrap())
                    .count()
            })
        })
        .collect();
    let added: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(added, 50);
    assert_eq!(a.pending().unwrap().len(), 70);
}

fn record_join_and_queue_audit_queues_once_and_only_new_rooms(b: Backend) {
    let dir = Fixture::new(b, "join-queue");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    let q = AuditQueue::open(store.location()).unwrap();
    store.record_join("!old:example.org", 1).unwrap();
    assert!(
        !store
            .record_join_and_queue_audit("!old:example.org", 2, 100)
            .unwrap()
    );
    assert_eq!(
        q.state("!old:example.org").unwrap(),
        None,
        "a known room is not audited"
    );
    assert!(
        store
            .record_join_and_queue_audit("!new:example.org", 10, 100)
            .unwrap()
    );
    assert!(
        !store
            .record_join_and_queue_audit("!new:example.org", 20, 200)
            .unwrap()
    );
    assert_eq!(
        q.pending().unwrap(),
        vec![("!new:example.org".to_owned(), 100)]
    );
    assert_eq!(store.first_joined("!new:example.org").unwrap(), Some(10));
    assert!(store.contains_room("!new:example.org").unwrap());
    // Once audited, joining again queues nothing.
    q.finish("!new:example.org", 150, "consistent").unwrap();
    assert!(
        !store
            .record_join_and_queue_audit("!new:example.org", 30, 300)
            .unwrap()
    );
    assert!(q.pending().unwrap().is_empty());
    let err = store.record_join_and_queue_audit("nope", 1, 1).unwrap_err();
    assert!(err.message().starts_with("room_id: "), "{}", err.message());
    // A restart keeps both.
    drop((store, q));
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert!(
        store
            .record_join_and_queue_audit("!third:example.org", 40, 400)
            .unwrap()
    );
    let q = AuditQueue::open(dir.location()).unwrap();
    assert_eq!(
        q.pending().unwrap(),
        vec![("!third:example.org".to_owned(), 400)]
    );
    assert_eq!(q.state("!new:example.org").unwrap(), Some("done"));
}

// --- knocks (store::KnockStore) ----------------------------------------------------------------

fn knocks(dir: &Fixture) -> KnockStore {
    KnockStore::open(dir.location(), Duration::from_secs(3600)).unwrap()
}

fn a_knock_repeated_1000_times_is_stored_once(b: Backend) {
    let dir = Fixture::new(b, "knock-repeat");
    let s = knocks(&dir);
    for i in 0..1000 {
        s.record_at("!r:hs.example", "remote.example", 1_000 + i)
            .unwrap();
    }
    assert_eq!(s.row_count().unwrap(), 1);
    let k = s
        .get_at("!r:hs.example", "remote.example", 2_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        (k.first_seen_ms, k.last_seen_ms, k.times),
        (1_000, 1_999, 1000)
    );
    // An older sighting arriving late does not move last_seen back.
    let k = s
        .record_at("!r:hs.example", "remote.example", 1_500)
        .unwrap();
    assert_eq!((k.last_seen_ms, k.times), (1_999, 1001));
    s.record_at("!r:hs.example", "other.example", 3_000)
        .unwrap();
    assert_eq!(s.for_room_at("!r:hs.example", 3_000).unwrap().len(), 2);
}

fn expired_knocks_are_not_returned_and_can_be_purged(b: Backend) {
    let dir = Fixture::new(b, "knock-expiry");
    let s = knocks(&dir);
    let hour = 3_600_000;
    s.record_at("!r:hs.example", "old.example", 0).unwrap();
    s.record_at("!r:hs.example", "new.example", hour).unwrap();
    assert!(
        s.get_at("!r:hs.example", "old.example", hour)
            .unwrap()
            .is_some(),
        "exactly at expiry still valid"
    );
    assert!(
        s.get_at("!r:hs.example", "old.example", hour + 1)
            .unwrap()
            .is_none()
    );
    let listed: Vec<String> = s
        .for_room_at("!r:hs.example", hour + 1)
        .unwrap()
        .into_iter()
        .map(|k| k.server)
        .collect();
    assert_eq!(listed, ["new.example"]);
    assert_eq!(s.purge_expired_at(hour + 1).unwrap(), 1);
    assert_eq!(s.row_count().unwrap(), 1);
    s.record_at("!r:hs.example", "new.example", 3 * hour)
        .unwrap();
    let k = s
        .get_at("!r:hs.example", "new.example", 3 * hour)
        .unwrap()
        .unwrap();
    assert_eq!((k.first_seen_ms, k.times), (3 * hour, 1));
    assert!(s.remove("!r:hs.example", "new.example").unwrap());
    assert!(!s.remove("!r:hs.example", "new.example").unwrap());
    // Purging many goes in batches and removes them all.
    for i in 0..2500 {
        s.record_at(&format!("!p{i}:hs.example"), &format!("s{i}.example"), 0)
            .unwrap();
    }
    assert_eq!(s.purge_expired_batch_at(10 * hour, 1000).unwrap(), 1000);
    assert_eq!(s.purge_expired_at(10 * hour).unwrap(), 1500);
    assert_eq!(s.row_count().unwrap(), 0);
}

fn knock_store_survives_reopening_and_is_shared(b: Backend) {
    let dir = Fixture::new(b, "knock-reopen");
    {
        let s = knocks(&dir);
        s.record_at("!r:hs.example", "remote.example", 5).unwrap();
    }
    let s = knocks(&dir);
    let other = knocks(&dir);
    assert_eq!(
        s.get_at("!r:hs.example", "remote.example", 10)
            .unwrap()
            .unwrap()
            .times,
        1
    );
    other
        .record_at("!r:hs.example", "remote.example", 11)
        .unwrap();
    assert_eq!(
        s.get_at("!r:hs.example", "remote.example", 12)
            .unwrap()
            .unwrap()
            .times,
        2
    );
}

fn one_origin_cannot_flood_the_knock_store(b: Backend) {
    let dir = Fixture::new(b, "knock-flood");
    let s = knocks(&dir);
    let cap = KnockLimits::default().max_per_origin;
    let mut refused = 0;
    for i in 0..100 {
        match s.record_at(&format!("!r{i}:hs.example"), "flood.example", 1_000 + i) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.errcode().as_str(), "M_LIMIT_EXCEEDED");
                assert_eq!(e.retry_after_ms(), Some(3_601_000 - (1_000 + i) as u64));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 100 - i64::from(cap));
    assert_eq!(s.row_count().unwrap(), i64::from(cap));
    assert_eq!(
        s.record_at("!r0:hs.example", "flood.example", 2_000)
            .unwrap()
            .times,
        2
    );
    assert!(
        s.record_at("!r0:hs.example", "polite.example", 2_000)
            .is_ok()
    );
    assert!(
        s.record_at("!later:hs.example", "flood.example", 3_601_000)
            .is_ok()
    );
    let strict = KnockStore::open_with_limits(
        dir.location(),
        Duration::from_secs(60),
        KnockLimits {
            max_per_origin: 0,
            window: Duration::from_secs(60),
        },
    )
    .unwrap();
    assert!(strict.record_at("!r:hs.example", "any.example", 0).is_err());
}

fn threads_knocking_at_once_respect_the_cap(b: Backend) {
    // Eight threads (eight connections on PostgreSQL) race new knocks from one origin: the cap
    // holds exactly, because the check and the insert are one serialised transaction.
    let dir = Fixture::new(b, "knock-race");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let location = dir.location();
            std::thread::spawn(move || {
                let s = KnockStore::open(location, Duration::from_secs(3600)).unwrap();
                (0..10)
                    .filter(|i| {
                        match s.record_at(&format!("!t{t}-{i}:hs.example"), "racer.example", 5) {
                            Ok(_) => true,
                            Err(e) if e.errcode().as_str() == "M_LIMIT_EXCEEDED" => false,
                            Err(e) => panic!("{e}"),
                        }
                    })
                    .count()
            })
        })
        .collect();
    let recorded: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(recorded, KnockLimits::default().max_per_origin as usize);
}

fn a_busy_store_fails_a_knock_within_bounded_time(b: Backend) {
    let dir = Fixture::new(b, "knock-busy");
    let s = knocks(&dir);
    s.record_at("!r:hs.example", "remote.example", 0).unwrap();
    let blocker = Blocker::hold(
        &dir,
        "SELECT pg_advisory_xact_lock(hashtextextended('servership_knocks:remote.example', 0))",
    );
    let started = std::time::Instant::now();
    let e = s
        .record_at("!r:hs.example", "remote.example", 1)
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.errcode().as_str(), "M_UNKNOWN");
    let (least, most) = match b {
        Backend::Sqlite => (250, 1100),
        Backend::Postgres => (1900, 4500),
    };
    assert!(waited < Duration::from_millis(most), "{waited:?}");
    assert!(
        waited >= Duration::from_millis(least),
        "it did wait: {waited:?}"
    );
    blocker.release();
    assert_eq!(
        s.record_at("!r:hs.example", "remote.example", 2)
            .unwrap()
            .times,
        2
    );
}

// --- hostile text and racing opens --------------------------------------------------------------

fn hostile_room_ids_and_server_names_are_data_not_sql(b: Backend) {
    let dir = Fixture::new(b, "hostile");
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    let nasty = [
        "!a'); DROP TABLE servership_participation_tags; --:x",
        "!b\"; DELETE FROM participation_tags; --:x",
        "!c' OR '1'='1:x",
        "!$1 $2 ?1 :x",
        "!\\x00\\':x",
        "!ünï©ødé 🎉:x",
        "!%s%n%d:x",
    ];
    for r in nasty {
        assert!(store.record_join(r, 7).unwrap(), "{r}");
    }
    assert_eq!(store.len().unwrap(), nasty.len());
    let reopened = TagStore::open(dir.location(), SERVER).unwrap();
    for r in nasty {
        assert!(reopened.contains_room(r).unwrap(), "{r}");
        assert_eq!(reopened.first_joined(r).unwrap(), Some(7), "{r}");
    }
    assert_eq!(reopened.first_joined("!x' OR '1'='1").unwrap(), None);
    // NUL never reaches the database: refused where it would be stored, absent where looked up.
    assert!(store.first_joined("!a\0:x").unwrap().is_none());
    let s = knocks(&dir);
    let server = "evil.example'); DROP TABLE servership_server_knocks; --";
    s.record_at(nasty[0], server, 1).unwrap();
    assert_eq!(
        s.get_at(nasty[0], server, 2).unwrap().unwrap().server,
        server
    );
    assert_eq!(
        s.record_at("!r:x", "nul\0.example", 1)
            .unwrap_err()
            .errcode()
            .as_str(),
        "M_INVALID_PARAM"
    );
    assert!(s.get_at("!r:x", "nul\0.example", 1).unwrap().is_none());
    let budget = StoreBudget::open(dir.location(), 10, 1000).unwrap();
    budget.charge(server, 3, 1).unwrap();
    budget.charge("nul\0.example", 3, 1).unwrap();
    assert_eq!(budget.remaining(server, 2).unwrap(), 7);
    assert_eq!(budget.remaining("nul\0.example", 2).unwrap(), 7);
    let q = AuditQueue::open(dir.location()).unwrap();
    assert!(q.enqueue(nasty[1], 1, 1).unwrap());
    assert!(
        q.finish_with_report(nasty[1], 2, "consistent", Some("{\"a\":\"'; --\"}"))
            .unwrap()
    );
    assert_eq!(
        q.report(nasty[1]).unwrap().as_deref(),
        Some("{\"a\":\"'; --\"}")
    );
    assert!(
        q.finish_with_report(nasty[2], 2, "x", Some("a\0b"))
            .is_err()
    );
    assert_eq!(
        store.len().unwrap(),
        nasty.len(),
        "the table is still there"
    );
}

fn processes_opening_a_new_store_at_once_migrate_it_once(b: Backend) {
    let dir = Fixture::new(b, "migrate-race");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let location = dir.location();
            std::thread::spawn(move || {
                // Every component, in a different order per thread.
                let open_tags = || TagStore::open(location.clone(), SERVER).map(drop);
                let open_knocks =
                    || KnockStore::open(location.clone(), Duration::from_secs(1)).map(drop);
                let open_audits = || AuditQueue::open(location.clone()).map(drop);
                let open_budget = || StoreBudget::open(location.clone(), 1, 1).map(drop);
                if i % 2 == 0 {
                    open_tags()
                        .and(open_knocks())
                        .and(open_audits())
                        .and(open_budget())
                } else {
                    open_budget()
                        .and(open_audits())
                        .and(open_knocks())
                        .and(open_tags())
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = TagStore::open(dir.location(), SERVER).unwrap();
    assert!(store.record_join("!after:x", 1).unwrap());
}

// --- PostgreSQL only ------------------------------------------------------------------------------

fn copying_an_sqlite_store_into_postgres_is_complete_and_idempotent(b: Backend) {
    assert_eq!(b, Backend::Postgres);
    let src = Fixture::new(Backend::Sqlite, "copy-src");
    let dst = Fixture::new(Backend::Postgres, "copy-dst");
    let Location::Postgres(url) = dst.location() else {
        unreachable!()
    };
    let Location::Sqlite(path) = src.location() else {
        unreachable!()
    };
    {
        let tags = TagStore::open(src.location(), SERVER).unwrap();
        let rooms: Vec<String> = (0..2500).map(|i| room("copy", i)).collect();
        tags.backfill(&rooms, 11).unwrap();
        tags.record_join_and_queue_audit("!audited:x", 12, 99)
            .unwrap();
        tags.record_join_and_queue_audit("!pending:x", 13, 100)
            .unwrap();
        let q = AuditQueue::open(src.location()).unwrap();
        q.finish_with_report("!audited:x", 50, "consistent", Some("{}"))
            .unwrap();
        q.postpone("!pending:x", 200).unwrap();
        let k = knocks(&src);
        k.record_at("!k:x", "knocker.example", 5).unwrap();
        k.record_at("!k:x", "knocker.example", 6).unwrap();
    }
    let first = servership::store::copy_sqlite_to_postgres(&path, &url).unwrap();
    assert_eq!((first.tags_read, first.tags_copied), (2502, 2502));
    assert_eq!((first.audits_read, first.audits_copied), (2, 2));
    assert_eq!((first.knocks_read, first.knocks_copied), (1, 1));
    let again = servership::store::copy_sqlite_to_postgres(&path, &url).unwrap();
    assert_eq!((again.tags_read, again.tags_copied), (2502, 0));
    assert_eq!(again.audits_copied + again.knocks_copied, 0);

    let tags = TagStore::open(dst.location(), SERVER).unwrap();
    assert_eq!(tags.len().unwrap(), 2502);
    assert_eq!(tags.first_joined(&room("copy", 7)).unwrap(), Some(11));
    assert_eq!(tags.first_joined("!pending:x").unwrap(), Some(13));
    let listed = tags.rooms().unwrap();
    assert_eq!(
        listed.first().map(|(r, _)| r.as_str()),
        Some("!copy0:example.org")
    );
    assert_eq!(listed.last().map(|(r, _)| r.as_str()), Some("!pending:x"));
    let q = AuditQueue::open(dst.location()).unwrap();
    assert_eq!(
        q.outcome("!audited:x").unwrap(),
        Some(("consistent".into(), 50))
    );
    assert_eq!(q.report("!audited:x").unwrap().as_deref(), Some("{}"));
    assert_eq!(q.pending().unwrap(), vec![("!pending:x".to_owned(), 200)]);
    assert_eq!(q.attempts("!pending:x").unwrap(), 1);
    let k = knocks(&dst);
    assert_eq!(
        k.get_at("!k:x", "knocker.example", 7)
            .unwrap()
            .unwrap()
            .times,
        2
    );
    // A room joined on PostgreSQL after the copy is kept by a later copy too.
    tags.record_join("!new-on-pg:x", 300).unwrap();
    servership::store::copy_sqlite_to_postgres(&path, &url).unwrap();
    assert_eq!(tags.len().unwrap(), 2503);

    // A store of another server is refused before anything is written.
    let other = Fixture::new(Backend::Sqlite, "copy-other");
    drop(TagStore::open(other.location(), "other.example").unwrap());
    let Location::Sqlite(other_path) = other.location() else {
        unreachable!()
    };
    let err = servership::store::copy_sqlite_to_postgres(&other_path, &url).unwrap_err();
    assert!(err.message().contains("belongs to server"), "{err}");
    let missing = src.dir.as_ref().unwrap().join("missing.sqlite");
    assert!(servership::store::copy_sqlite_to_postgres(&missing, &url).is_err());
    assert!(!missing.exists(), "the source is never created");
}

fn postgres_tables_are_named_servership_and_versioned(b: Backend) {
    assert_eq!(b, Backend::Postgres);
    let dir = Fixture::new(b, "names");
    drop(TagStore::open(dir.location(), SERVER).unwrap());
    drop(knocks(&dir));
    drop(StoreBudget::open(dir.location(), 1, 1).unwrap());
    let Location::Postgres(url) = dir.location() else {
        unreachable!()
    };
    let mut c = ::postgres::Client::connect(url.expose(), ::postgres::NoTls).unwrap();
    let schema = &dir.schema.as_ref().unwrap().1;
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1
             ORDER BY 1",
            &[schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "servership_discovery_budgets",
            "servership_participation_tags",
            "servership_pending_audits",
            "servership_schema",
            "servership_server_knocks",
            "servership_tag_meta",
        ]
    );
    let versions: Vec<(String, i32)> = c
        .query(
            "SELECT component, version FROM servership_schema ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        versions,
        [
            ("audits".to_owned(), 1),
            ("budgets".to_owned(), 1),
            ("knocks".to_owned(), 1),
            ("tags".to_owned(), 1)
        ]
    );
    // A store migrated by a newer release is refused, not written with the old schema.
    c.execute(
        "UPDATE servership_schema SET version = 9 WHERE component = 'knocks'",
        &[],
    )
    .unwrap();
    let err = KnockStore::open(dir.location(), Duration::from_secs(1)).unwrap_err();
    assert!(err.message().contains("newer than this release"), "{err}");
}

// --- PostgreSQL down, slow or misnamed (no database needed) --------------------------------------

#[test]
fn an_unreachable_postgres_fails_to_open_within_seconds() {
    // Nothing listens on port 1: refused at once.
    let started = std::time::Instant::now();
    let err = TagStore::open(
        Location::parse("postgresql://servership@127.0.0.1:1/none").unwrap(),
        SERVER,
    )
    .unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_UNKNOWN");
    assert!(err.message().starts_with("storage error"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_postgres_that_accepts_but_never_answers_fails_within_seconds() {
    // A listener that accepts connections and then says nothing, as a hung server would.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let started = std::time::Instant::now();
    let err = KnockStore::open(
        Location::parse(&format!(
            "postgresql://servership:secret-pw@127.0.0.1:{port}/none"
        ))
        .unwrap(),
        Duration::from_secs(1),
    )
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.errcode().as_str(), "M_UNKNOWN");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(!err.message().contains("secret-pw"), "{err}");
    drop(keep);
}

#[test]
fn connection_strings_are_validated_and_never_shown_with_their_password() {
    for bad in [
        "postgresql://h:notaport/db",
        "host=h port=x",
        "postgresql://h/db?sslmode=bogus",
    ] {
        let err = Location::parse(bad).unwrap_err();
        assert_eq!(err.errcode().as_str(), "M_INVALID_PARAM", "{bad}");
    }
    let loc = Location::parse("host=127.0.0.1 port=1 user=u password=hunter2 dbname=d").unwrap();
    assert_eq!(loc.to_string(), "postgresql://u@127.0.0.1:1/d");
    assert!(!format!("{loc:?}").contains("hunter2"));
    let err = TagStore::open(loc, SERVER).unwrap_err();
    assert!(!err.message().contains("hunter2"), "{err}");
}

/// Each property, once per backend.
macro_rules! conformance {
    (both: [$($name:ident),* $(,)?], postgres_only: [$($pg:ident),* $(,)?]) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(
                    not(servership_test_postgres),
                    ignore = "SERVERSHIP_TEST_POSTGRES is unset: PostgreSQL backend not run"
                )]
                fn $name() {
                    super::$name(super::Backend::Postgres)
                }
            )*
            $(
                #[test]
                #[cfg_attr(
                    not(servership_test_postgres),
                    ignore = "SERVERSHIP_TEST_POSTGRES is unset: PostgreSQL backend not run"
                )]
                fn $pg() {
                    super::$pg(super::Backend::Postgres)
                }
            )*
        }
    };
}

conformance! {
    both: [
        record_join_is_idempotent_and_keeps_first_time,
        invalid_room_ids_are_refused_and_backfill_is_all_or_nothing,
        backfill_adds_only_new_rooms_in_one_call,
        restart_keeps_every_tag,
        the_store_is_bound_to_its_server_name,
        a_second_handle_sees_new_tags_without_reopening,
        another_process_writes_are_seen_without_reopening,
        threads_sharing_one_store_lose_nothing,
        kill_9_right_after_acknowledged_writes_loses_nothing,
        two_processes_writing_10000_rooms_each_lose_nothing,
        index_stays_compact,
        two_budget_handles_on_one_file_share_one_budget,
        a_reopened_budget_keeps_its_used_count,
        ended_windows_are_purged_a_few_at_a_time,
        a_busy_budget_store_fails_within_bounded_time,
        two_processes_draw_on_one_budget,
        audit_queue_orders_due_rooms_and_finishes_once,
        audit_queue_keeps_the_report_and_counts_attempts,
        audit_queue_survives_a_restart_and_is_shared_by_handles,
        record_join_and_queue_audit_queues_once_and_only_new_rooms,
        a_knock_repeated_1000_times_is_stored_once,
        expired_knocks_are_not_returned_and_can_be_purged,
        knock_store_survives_reopening_and_is_shared,
        one_origin_cannot_flood_the_knock_store,
        threads_knocking_at_once_respect_the_cap,
        a_busy_store_fails_a_knock_within_bounded_time,
        hostile_room_ids_and_server_names_are_data_not_sql,
        processes_opening_a_new_store_at_once_migrate_it_once,
    ],
    postgres_only: [
        copying_an_sqlite_store_into_postgres_is_complete_and_idempotent,
        postgres_tables_are_named_servership_and_versioned,
    ]
}
