//! Room participation tags: `HMAC-SHA256(key = server name, message = room ID)`.
//!
//! [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358), as pinned down in
//! DESIGN.md §1: the key is the server name's UTF-8 bytes exactly as written in Matrix IDs (a port
//! stays in, `[::1]:8448` keeps its brackets), the message is the room ID's UTF-8 bytes (both the
//! `!opaque:server` form and the v12 `!hash` form). Names are not normalised here: an IDN server
//! is written in Matrix IDs as its punycode `xn--` form, and that is what callers must pass; a raw
//! UTF-8 name gives a different, equally deterministic tag.
//!
//! On the wire a tag is 32 bytes in unpadded standard base64 (43 characters). Decoding accepts
//! padding (as Matrix asks of every base64 reader); anything that is not exactly 32 bytes is invalid.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::b64;

type HmacSha256 = Hmac<Sha256>;

/// A room participation tag: the 32-byte HMAC-SHA256 of a room ID keyed by a server name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipationTag(pub [u8; 32]);

impl ParticipationTag {
    /// The tag as sent on the wire: unpadded standard base64, 43 characters.
    pub fn to_base64(&self) -> String {
        b64::encode(&self.0)
    }

    /// Reads a tag from standard base64, padded or not. `None` unless it is exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<ParticipationTag> {
        decode_43(text.strip_suffix('=').unwrap_or(text).as_bytes())
            .or_else(|| b64::decode_array::<32>(text))
            .map(ParticipationTag)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Value of each standard base64 character, or 0xFF.
const B64_VALUES: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes exactly 43 standard base64 characters (a 32-byte value, unpadded) without allocating:
/// the hot path of every discovery request. Accepts the same inputs as [`b64::decode_array`]
/// (trailing bits are ignored, as there); anything else is `None` and goes the general way.
pub(crate) fn decode_43(chars: &[u8]) -> Option<[u8; 32]> {
    let chars: &[u8; 43] = chars.try_into().ok()?;
    let value = |c: u8| B64_VALUES[usize::from(c)];
    let mut out = [0u8; 32];
    // Valid values are below 64; 0xFF marks a non-alphabet byte, so any high bit means "bad".
    let mut bad = 0u8;
    let (quads, last) = chars.split_at(40);
    for (quad, dst) in quads.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        if let ([a, b, c, d], [x, y, z]) = (quad, dst) {
            let (a, b, c, d) = (value(*a), value(*b), value(*c), value(*d));
            bad |= a | b | c | d;
            let n =
                (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
            *x = (n >> 16) as u8;
            *y = (n >> 8) as u8;
            *z = n as u8;
        }
    }
    if let ([a, b, c], [.., x, y]) = (last, &mut out) {
        let (a, b, c) = (value(*a), value(*b), value(*c));
        bad |= a | b | c;
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6);
        *x = (n >> 16) as u8;
        *y = (n >> 8) as u8;
    }
    (bad & 0xC0 == 0).then_some(out)
}

impl fmt::Debug for ParticipationTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParticipationTag({})", self.to_base64())
    }
}

impl fmt::Display for ParticipationTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The tag `server_name` keeps for `room_id` (and that others compute to ask it about the room).
pub fn participation_tag(server_name: &str, room_id: &str) -> ParticipationTag {
    Tagger::new(server_name).tag(room_id)
}

/// Computes tags for one server name, with the HMAC key schedule done once.
///
/// Keying HMAC-SHA256 costs two compression-function calls; cloning the keyed state per message
/// saves them, which roughly halves the cost of tagging short room IDs in bulk.
#[derive(Clone)]
pub struct Tagger {
    server_name: String,
    keyed: HmacSha256,
}

impl Tagger {
    /// A tagger for `server_name`, written exactly as in Matrix IDs.
    pub fn new(server_name: &str) -> Tagger {
        // RFC 2104: a key longer than the block is hashed, then the key is zero-padded to the
        // block size. Doing that here lets us use HMAC's infallible fixed-size constructor.
        let mut block = [0u8; 64];
        let name = server_name.as_bytes();
        if name.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(name));
        } else {
            block[..name.len()].copy_from_slice(name);
        }
        let keyed = <HmacSha256 as KeyInit>::new(&block.into());
        Tagger {
            server_name: server_name.to_owned(),
            keyed,
        }
    }

    /// The server name this tagger keys with.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The tag for one room ID.
    pub fn tag(&self, room_id: &str) -> ParticipationTag {
        let mut mac = self.keyed.clone();
        mac.update(room_id.as_bytes());
        ParticipationTag(mac.finalize().into_bytes().into())
    }

    /// The tags for many room IDs, in the same order.
    pub fn tag_all<S: AsRef<str>>(&self, room_ids: &[S]) -> Vec<ParticipationTag> {
        room_ids.iter().map(|r| self.tag(r.as_ref())).collect()
    }
}

impl fmt::Debug for Tagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tagger")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_base64_and_accepts_padding() {
        let tag = participation_tag("example.org", "!room:example.org");
        let text = tag.to_base64();
        assert_eq!(text.len(), 43);
        assert_eq!(ParticipationTag::from_base64(&text), Some(tag));
        assert_eq!(
            ParticipationTag::from_base64(&format!("{text}=")),
            Some(tag)
        );
        assert_eq!(ParticipationTag::from_base64(&text[..42]), None);
        assert_eq!(
            ParticipationTag::from_base64(&b64::encode(&[0u8; 31])),
            None
        );
        assert_eq!(
            ParticipationTag::from_base64(&b64::encode(&[0u8; 33])),
            None
        );
    }

    #[test]
    fn batch_matches_single() {
        let t = Tagger::new("a.example:8448");
        let rooms = ["!a:b", "!c", ""];
        let batch = t.tag_all(&rooms);
        for (room, tag) in rooms.iter().zip(batch) {
            assert_eq!(participation_tag("a.example:8448", room), tag);
        }
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn the_fast_decoder_agrees_with_the_general_one() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut bytes = [0u8; 32];
            for b in &mut bytes {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let text = b64::encode(&bytes);
            assert_eq!(decode_43(text.as_bytes()), Some(bytes));
            assert_eq!(
                ParticipationTag::from_base64(&format!("{text}=")),
                Some(ParticipationTag(bytes))
            );
            // Non-zero trailing bits: both decoders ignore them.
            let mut odd = text.clone().into_bytes();
            if let Some(last) = odd.last_mut() {
                *last = if *last == b'A' { b'B' } else { b'A' };
            }
            let odd = String::from_utf8(odd).unwrap_or_default();
            assert_eq!(decode_43(odd.as_bytes()), b64::decode_array::<32>(&odd));
        }
        for bad in [
            "",
            "A",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}-", "A".repeat(42)),
            &format!("{}é", "A".repeat(41)),
        ] {
            assert_eq!(decode_43(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(ParticipationTag::from_base64(&"A".repeat(44)), None);
    }
}
