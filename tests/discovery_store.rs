//! The permanent tag store: durability across restarts and `kill -9`, several processes on one
//! file, freshness without reopening, and binding to one server name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use servership::discovery::{Budget, participation_tag};
use servership::store::{AuditQueue, SqliteBudget, TagStore};

const SERVER: &str = "green.example:8448";
/// Set in a re-executed copy of this test binary to make [`child_entry`] act as a writer.
const CHILD_ENV: &str = "SERVERSHIP_TAG_STORE_CHILD";
/// Set in a re-executed copy to make [`budget_child_entry`] charge a shared budget.
const BUDGET_CHILD_ENV: &str = "SERVERSHIP_BUDGET_CHILD";

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "servership-tags-{}-{name}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("tags.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn room(prefix: &str, i: usize) -> String {
    format!("!{prefix}{i}:example.org")
}

/// Starts this test binary again as a writer child: it records `count` rooms named
/// `!<prefix><i>:example.org` one acknowledged write at a time and prints `acked <room>` after each.
fn spawn_writer(path: &Path, prefix: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}\t{prefix}\t{count}", path.display()))
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
    let store = TagStore::open(path, SERVER).unwrap();
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
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TagStore>();
}

#[test]
fn record_join_is_idempotent_and_keeps_first_time() {
    let dir = TempDir::new("idempotent");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
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

#[test]
fn invalid_room_ids_are_refused_and_backfill_is_all_or_nothing() {
    let dir = TempDir::new("invalid");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
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

#[test]
fn backfill_adds_only_new_rooms_in_one_call() {
    let dir = TempDir::new("backfill");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
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

#[test]
fn restart_keeps_every_tag() {
    let dir = TempDir::new("restart");
    let rooms: Vec<String> = (0..3000).map(|i| room("restart", i)).collect();
    {
        let store = TagStore::open(dir.file(), SERVER).unwrap();
        store.backfill(&rooms[..2000], 1).unwrap();
        for (i, r) in rooms[2000..].iter().enumerate() {
            store.record_join(r, 2 + i as i64).unwrap();
        }
    }
    let store = TagStore::open(dir.file(), SERVER).unwrap();
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
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 3001);
    assert!(store.contains_room("!late:example.org").unwrap());
}

#[test]
fn the_store_is_bound_to_its_server_name() {
    let dir = TempDir::new("bound");
    drop(TagStore::open(dir.file(), SERVER).unwrap());
    let err = TagStore::open(dir.file(), "green.example").unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_INVALID_PARAM");
    assert!(
        err.message().contains("belongs to server"),
        "{}",
        err.message()
    );
    assert!(TagStore::open(dir.file(), SERVER).is_ok());
    assert!(TagStore::open(dir.0.join("other.sqlite"), "").is_err());
}

#[test]
fn a_second_handle_sees_new_tags_without_reopening() {
    let dir = TempDir::new("fresh");
    let a = TagStore::open(dir.file(), SERVER).unwrap();
    let b = TagStore::open(dir.file(), SERVER).unwrap();
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

#[test]
fn another_process_writes_are_seen_without_reopening() {
    let dir = TempDir::new("otherproc");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 0);
    let mut child = spawn_writer(&dir.file(), "p", 200);
    let acked = acked_rooms(&mut child);
    assert!(child.wait().unwrap().success());
    assert_eq!(acked.len(), 200);
    assert_eq!(store.len().unwrap(), 200);
    for r in &acked {
        assert!(store.contains_room(r).unwrap(), "{r} missing");
    }
}

#[test]
fn threads_sharing_one_store_lose_nothing() {
    let dir = TempDir::new("threads");
    let store = Arc::new(TagStore::open(dir.file(), SERVER).unwrap());
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

#[test]
fn kill_9_right_after_acknowledged_writes_loses_nothing() {
    let dir = TempDir::new("kill9");
    // Create the file first so the child spends its time writing.
    drop(TagStore::open(dir.file(), SERVER).unwrap());
    let mut child = spawn_writer(&dir.file(), "k", 1_000_000);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| acked_in(&l))
            .collect::<Vec<_>>()
    });
    // A "random" moment between 150 and 650 ms in.
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 500;
    std::thread::sleep(Duration::from_millis(150 + u64::from(jitter)));
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
    let store = TagStore::open(dir.file(), SERVER).unwrap();
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

#[test]
fn two_processes_writing_10000_rooms_each_lose_nothing() {
    let dir = TempDir::new("twoproc");
    let mut a = spawn_writer(&dir.file(), "a", 10_000);
    let mut b = spawn_writer(&dir.file(), "b", 10_000);
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
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    assert_eq!(store.len().unwrap(), 20_000);
    let all: Vec<String> = (0..10_000)
        .flat_map(|i| [room("a", i), room("b", i)])
        .collect();
    let tags = store.tagger().tag_all(&all);
    assert!(store.recognise(&tags).unwrap().iter().all(|&x| x));
    assert_eq!(store.rooms().unwrap().len(), 20_000);
}

#[test]
fn index_stays_compact() {
    let dir = TempDir::new("compact");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    let rooms: Vec<String> = (0..50_000).map(|i| room("c", i)).collect();
    store.backfill(&rooms, 1).unwrap();
    for i in 0..100 {
        store.record_join(&room("d", i), 1).unwrap();
    }
    let per_tag = store.index_bytes() as f64 / store.len().unwrap() as f64;
    assert!(per_tag <= 64.0, "{per_tag} bytes per tag");
    drop(store);
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    let per_tag = store.index_bytes() as f64 / store.len().unwrap() as f64;
    assert!(per_tag <= 40.0, "{per_tag} bytes per tag after reopening");
}

// --- shared budgets (store::SqliteBudget) -----------------------------------------------------

/// Budget of the shared-budget tests: 1000 tags per (practically endless) window.
const BUDGET: u64 = 1000;
const WINDOW: u64 = 3_600_000;

/// Starts this test binary again to charge one tag `count` times to `origin` (in the spellings
/// given, round robin); it prints `charged` or `refused` per attempt.
fn spawn_charger(path: &Path, origins: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "budget_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            BUDGET_CHILD_ENV,
            format!("{}\t{origins}\t{count}", path.display()),
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
    let budget = SqliteBudget::open(path, BUDGET, WINDOW).unwrap();
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

#[test]
fn two_budget_handles_on_one_file_share_one_budget() {
    let dir = TempDir::new("budget-handles");
    let a = SqliteBudget::open(dir.file(), 100, 1000).unwrap();
    let b = SqliteBudget::open(dir.file(), 100, 1000).unwrap();
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

#[test]
fn a_reopened_budget_keeps_its_used_count() {
    let dir = TempDir::new("budget-reopen");
    {
        let budget = SqliteBudget::open(dir.file(), 100, 60_000).unwrap();
        budget.charge("asker.example", 70, 1).unwrap();
    }
    let budget = SqliteBudget::open(dir.file(), 100, 60_000).unwrap();
    assert_eq!(budget.remaining("asker.example", 2).unwrap(), 30);
    assert!(budget.charge("asker.example", 31, 2).is_err());
    // The budget lives next to the tags without disturbing them.
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    store.record_join("!r:example.org", 1).unwrap();
    assert_eq!(budget.remaining("asker.example", 2).unwrap(), 30);
}

#[test]
fn ended_windows_are_purged_a_few_at_a_time() {
    let dir = TempDir::new("budget-purge");
    let budget = SqliteBudget::open(dir.file(), 10, 100).unwrap();
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

#[test]
fn a_busy_budget_file_fails_within_about_a_second() {
    let dir = TempDir::new("budget-busy");
    let budget = SqliteBudget::open(dir.file(), 10, 1000).unwrap();
    let blocker = rusqlite::Connection::open(dir.file()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let err = budget.charge("asker.example", 1, 1).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.errcode().as_str(), "M_UNKNOWN", "{err}");
    assert_eq!(err.status(), 500);
    assert!(took < Duration::from_millis(1600), "waited {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "gave up after only {took:?}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    budget.charge("asker.example", 1, 1).unwrap();
}

#[test]
fn two_processes_draw_on_one_budget() {
    let dir = TempDir::new("budget-procs");
    drop(SqliteBudget::open(dir.file(), BUDGET, WINDOW).unwrap());
    // 2 x 700 charges of one tag against 1000: exactly 1000 succeed, whoever wins the races.
    let mut a = spawn_charger(&dir.file(), "asker.example,ASKER.example", 700);
    let mut b = spawn_charger(&dir.file(), "asker.example:8448,asker.example.", 700);
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
    let budget = SqliteBudget::open(dir.file(), BUDGET, WINDOW).unwrap();
    assert_eq!(budget.remaining("asker.example", 11).unwrap(), 0);
}

// --- the audit queue (store::AuditQueue) ------------------------------------------------------

#[test]
fn audit_queue_orders_due_rooms_and_finishes_once() {
    let dir = TempDir::new("queue");
    let q = AuditQueue::open(dir.file()).unwrap();
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

#[test]
fn audit_queue_keeps_the_report_and_counts_attempts() {
    let dir = TempDir::new("queue-report");
    let q = AuditQueue::open(dir.file()).unwrap();
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
    let again = AuditQueue::open(dir.file()).unwrap();
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

#[test]
fn audit_queue_survives_a_restart_and_is_shared_by_handles() {
    let dir = TempDir::new("queue-restart");
    {
        let q = AuditQueue::open(dir.file()).unwrap();
        for i in 0..20 {
            q.enqueue(&room("q", i), i as i64, 0).unwrap();
        }
        q.finish(&room("q", 0), 5, "consistent").unwrap();
    }
    let a = AuditQueue::open(dir.file()).unwrap();
    let b = AuditQueue::open(dir.file()).unwrap();
    assert_eq!(a.pending().unwrap().len(), 19);
    assert_eq!(a.state(&room("q", 0)).unwrap(), Some("done"));
    // Two handles queueing the same room give one row.
    assert!(a.enqueue("!same:example.org", 1, 1).unwrap());
    assert!(!b.enqueue("!same:example.org", 2, 2).unwrap());
    assert_eq!(b.pending().unwrap().len(), 20);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.file();
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

#[test]
fn record_join_and_queue_audit_queues_once_and_only_new_rooms() {
    let dir = TempDir::new("join-queue");
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    let q = AuditQueue::open(store.path()).unwrap();
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
    let store = TagStore::open(dir.file(), SERVER).unwrap();
    assert!(
        store
            .record_join_and_queue_audit("!third:example.org", 40, 400)
            .unwrap()
    );
    let q = AuditQueue::open(dir.file()).unwrap();
    assert_eq!(
        q.pending().unwrap(),
        vec![("!third:example.org".to_owned(), 400)]
    );
    assert_eq!(q.state("!new:example.org").unwrap(), Some("done"));
}
