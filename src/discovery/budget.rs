//! Per-origin budgets for `discover_common_rooms`: how many tags one server may ask about per
//! window, in a way that a server cannot multiply.
//!
//! Two things could multiply a budget, and both are closed here:
//!
//! - **Spellings of one name.** `ASKER.example`, `asker.example.`, `asker.example:8448` and
//!   `asker.example` reach the same host (DNS is case-insensitive, a trailing dot is the root,
//!   8448 is the default federation port), so a server could sign requests under each spelling
//!   and get a budget per spelling. [`normalise_origin`] maps them to one key, and every budget
//!   is charged under that key.
//! - **Several processes.** Synapse workers each hold a [`Responder`](super::Responder); with a
//!   budget in memory, *n* workers give *n* budgets. `store::SqliteBudget` keeps the windows in
//!   the shared SQLite file, so every process (and every restart) draws on one budget.
//!
//! [`MemoryBudget`] (the default) keeps fixed windows per origin in memory, bounded in size.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::Ipv6Addr;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// The Matrix default federation port: `host:8448` and `host` are the same server.
const DEFAULT_PORT: u32 = 8448;

/// The budget key of an origin (a server name as authenticated by X-Matrix): the host
/// ASCII-lowercased, its trailing dot removed, the default port `:8448` removed (other ports kept,
/// written without leading zeros); an IPv6 literal keeps its brackets and is written in its
/// canonical form (lowercase hex, zeros compressed).
///
/// `ASKER.example`, `asker.example:8448`, `asker.example.` and `Asker.Example.:8448` all give
/// `asker.example`; `asker.example:443` stays `asker.example:443`; `[2001:DB8::1]:8448` gives
/// `[2001:db8::1]`. Never fails: text that is no server name is lowercased and otherwise kept, so
/// it still gets a budget of its own. Normalising twice changes nothing.
pub fn normalise_origin(origin: &str) -> String {
    let (host, port) = split_host_port(origin);
    let mut out = String::with_capacity(origin.len());
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => {
            out.push('[');
            match inner.parse::<Ipv6Addr>() {
                Ok(ip) => out.push_str(&ip.to_string()),
                Err(_) => out.push_str(&inner.to_ascii_lowercase()),
            }
            out.push(']');
        }
        None => {
            // All trailing dots, not one: `a..` and `a.` must not be two keys once normalised.
            let host = host.trim_end_matches('.');
            out.push_str(&host.to_ascii_lowercase());
        }
    }
    if let Some(port) = port {
        match port_number(port) {
            Some(DEFAULT_PORT) => {}
            Some(n) => {
                out.push(':');
                out.push_str(&n.to_string());
            }
            None => {
                out.push(':');
                out.push_str(&port.to_ascii_lowercase());
            }
        }
    }
    out
}

/// Splits `host[:port]`, where the host may be an IPv6 literal in brackets.
fn split_host_port(origin: &str) -> (&str, Option<&str>) {
    if origin.starts_with('[') {
        if let Some(end) = origin.find(']') {
            let (host, rest) = origin.split_at(end + 1);
            return match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                // Anything else after the bracket is not a port: keep it in the host, so that
                // distinct garbage stays distinct.
                None if rest.is_empty() => (host, None),
                None => (origin, None),
            };
        }
        return (origin, None);
    }
    match origin.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (origin, None),
    }
}

/// A port of 1 to 5 decimal digits (leading zeros allowed) in 1..=65535, as a number.
fn port_number(port: &str) -> Option<u32> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = port.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    (1..=65_535).contains(&n).then_some(n)
}

/// Tags an origin may ask about per window, charged by the responder.
///
/// The [`Responder`](super::Responder) passes origins through [`normalise_origin`] before charging;
/// the implementations in servership normalise again (it is idempotent), so a direct caller gets
/// the same key. Over budget is `429 M_LIMIT_EXCEEDED` with `retry_after_ms` (the time until the
/// origin's window ends); a budget that cannot be consulted is an error (`M_UNKNOWN`), never a
/// silent "allowed".
pub trait Budget: Send + Sync + Debug {
    /// Charges `tags` to `origin`'s window at `now_ms`, or refuses the whole charge.
    fn charge(&self, origin: &str, tags: u64, now_ms: u64) -> Result<()>;

    /// How many tags `origin` may still ask about in its window at `now_ms`.
    fn remaining(&self, origin: &str, now_ms: u64) -> Result<u64>;
}

/// Where a fixed window stands at `now_ms`: still open, or over (a new one starts).
///
/// A window is open from its start for `window_ms`. A time slightly *before* the start (another
/// process's clock, a small step back) still belongs to it, so a clock cannot be used to restart a
/// window early; a step back of a whole window or more starts a new one, so a clock corrected by
/// hours does not lock every origin out for hours.
pub(crate) fn window_open(start_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    if now_ms >= start_ms {
        now_ms - start_ms < window_ms
    } else {
        start_ms - now_ms < window_ms
    }
}

/// The `429` for a charge that does not fit.
pub(crate) fn over_budget(
    origin: &str,
    used: u64,
    budget: u64,
    tags: u64,
    start_ms: u64,
    now_ms: u64,
    window_ms: u64,
) -> Error {
    let retry = start_ms
        .saturating_add(window_ms)
        .saturating_sub(now_ms)
        .clamp(1, window_ms.max(1));
    Error::limit_exceeded(
        format!(
            "{origin} has asked about {used} of its {budget} tags in this {window_ms} ms window; \
             this request asks about {tags} more"
        ),
        retry,
    )
}

/// Fixed windows per origin, in this process's memory (the default budget).
///
/// At most `max_tracked_origins` origins are remembered: when full, origins whose window has ended
/// are forgotten first, then the one whose window began earliest. Each process has its own: use
/// `store::SqliteBudget` when several processes answer for one server.
#[derive(Debug)]
pub struct MemoryBudget {
    budget_tags: u64,
    window_ms: u64,
    max_tracked_origins: usize,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    used: u64,
}

impl MemoryBudget {
    /// `budget_tags` tags per `window_ms` per origin, remembering at most `max_tracked_origins`
    /// origins (each at least 1).
    pub fn new(
        budget_tags: u64,
        window_ms: u64,
        max_tracked_origins: usize,
    ) -> Result<MemoryBudget> {
        if window_ms == 0 {
            return Err(Error::invalid_param("budget_window_ms must be at least 1"));
        }
        if max_tracked_origins == 0 {
            return Err(Error::invalid_param(
                "max_tracked_origins must be at least 1",
            ));
        }
        Ok(MemoryBudget {
            budget_tags,
            window_ms,
            max_tracked_origins,
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// How many origins are currently remembered.
    pub fn tracked_origins(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Window>> {
        // The map stays valid whatever a panicking holder did; keep using it.
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes space for one more origin: forget ended windows, then, if still full, the oldest.
    fn make_room(&self, windows: &mut HashMap<String, Window>, now_ms: u64) {
        if windows.len() < self.max_tracked_origins {
            return;
        }
        windows.retain(|_, w| window_open(w.start_ms, now_ms, self.window_ms));
        while windows.len() >= self.max_tracked_origins {
            let oldest = windows
                .iter()
                .min_by_key(|(_, w)| w.start_ms)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    windows.remove(&k);
                }
                None => break,
            }
        }
    }
}

impl Budget for MemoryBudget {
    fn charge(&self, origin: &str, tags: u64, now_ms: u64) -> Result<()> {
        let origin = normalise_origin(origin);
        let mut windows = self.lock();
        if !windows.contains_key(&origin) {
            self.make_room(&mut windows, now_ms);
        }
        let w = windows.entry(origin.clone()).or_insert(Window {
            start_ms: now_ms,
            used: 0,
        });
        if !window_open(w.start_ms, now_ms, self.window_ms) {
            *w = Window {
                start_ms: now_ms,
                used: 0,
            };
        }
        if w.used.saturating_add(tags) > self.budget_tags {
            return Err(over_budget(
                &origin,
                w.used,
                self.budget_tags,
                tags,
                w.start_ms,
                now_ms,
                self.window_ms,
            ));
        }
        w.used += tags;
        Ok(())
    }

    fn remaining(&self, origin: &str, now_ms: u64) -> Result<u64> {
        let origin = normalise_origin(origin);
        Ok(match self.lock().get(&origin) {
            Some(w) if window_open(w.start_ms, now_ms, self.window_ms) => {
                self.budget_tags.saturating_sub(w.used)
            }
            _ => self.budget_tags,
        })
    }
}
