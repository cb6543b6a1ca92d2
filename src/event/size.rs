//! The PDU size limit.

use crate::error::{Error, Result};
use crate::json::{Object, Value};

/// The largest PDU, in bytes of canonical JSON including signatures
/// ([spec: size limits](https://spec.matrix.org/v1.16/client-server-api/#size-limits)).
pub const MAX_PDU_SIZE: usize = 65_536;

/// Checks that the canonical JSON of the whole PDU (signatures and `unsigned` included) is at most
/// [`MAX_PDU_SIZE`] bytes; otherwise `M_TOO_LARGE` naming the size.
///
/// This follows the spec and Synapse (65 536 bytes of the full PDU). ruma measures the event
/// without `signatures` and `unsigned` against 65 535 bytes, so it refuses a few events this
/// accepts and accepts a few with large signatures or `unsigned` that this refuses.
///
/// The size is counted without encoding, and counting stops at the limit, so a 10 MB event costs
/// no allocation.
pub fn check_pdu_size(event: &Object) -> Result<()> {
    let mut counter = Counter {
        total: 0,
        limit: MAX_PDU_SIZE,
    };
    if counter.object(event) {
        Ok(())
    } else {
        Err(Error::too_large(format!(
            "the event is larger than {MAX_PDU_SIZE} bytes of canonical JSON (at least {} bytes)",
            counter.total
        )))
    }
}

/// Adds up the canonical JSON length of a value, giving up once past `limit`.
struct Counter {
    total: usize,
    limit: usize,
}

impl Counter {
    /// Adds `n` bytes; false once the total is past the limit.
    fn add(&mut self, n: usize) -> bool {
        self.total = self.total.saturating_add(n);
        self.total <= self.limit
    }

    fn value(&mut self, v: &Value) -> bool {
        match v {
            Value::Null | Value::Bool(true) => self.add(4),
            Value::Bool(false) => self.add(5),
            Value::Int(i) => self.add(int_len(*i)),
            Value::String(s) => self.string(s),
            Value::Number(n) => self.add(n.as_str().len()),
            Value::Array(a) => {
                // Brackets plus a comma between members.
                if !self.add(2 + a.len().saturating_sub(1)) {
                    return false;
                }
                a.iter().all(|v| self.value(v))
            }
            Value::Object(o) => self.object(o),
        }
    }

    fn object(&mut self, o: &Object) -> bool {
        // Braces, a colon per member and a comma between members.
        if !self.add(2 + o.len() + o.len().saturating_sub(1)) {
            return false;
        }
        o.iter().all(|(k, v)| self.string(k) && self.value(v))
    }

    fn string(&mut self, s: &str) -> bool {
        let escaped: usize = s
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' | 0x08 | 0x09 | 0x0A | 0x0C | 0x0D => 2,
                0x00..=0x1F => 6,
                _ => 1,
            })
            .sum();
        self.add(escaped + 2)
    }
}

fn int_len(i: i64) -> usize {
    let sign = usize::from(i < 0);
    let mut n = i.unsigned_abs();
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    sign + digits
}
