//! The in-memory set of a server's participation tags, the same for every store backend: a
//! backend supplies rows (see `store::tags`), this index answers `recognise` without a query.
//!
//! **What it keeps: the first 16 bytes of each tag** (a [`TagKey`]), so a server with 10^7 rooms
//! spends about 14 bytes a tag, not 36 (issue 13's target is 16). A tag is recognised when its
//! first 16 bytes are a stored tag's. For tags that are not stored this is wrong with probability
//! n / 2^128 per lookup (10^-22 at 10^7 tags). Tags are HMACs keyed by the server's public name,
//! so anyone can compute them, but making us recognise a room we never joined means finding a
//! room ID whose 128-bit prefix hits one of our n tags: about 2^128 / n HMACs (2^105 at 10^7),
//! and all it buys is a wrong answer about a room ID that only the attacker uses. The stores
//! keep the whole tag; only this index shortens it.

use std::collections::HashSet;
use std::ops::Range;

use crate::discovery::ParticipationTag;

/// The smallest tail size that triggers a merge, so small stores do not merge on every write.
const MIN_TAIL_BEFORE_MERGE: usize = 1024;

/// How many leading tag bytes the index keeps.
pub(crate) const KEY_BYTES: usize = 16;

/// The part of a tag the index keeps: its first [`KEY_BYTES`] bytes.
pub(crate) type TagKey = [u8; KEY_BYTES];

/// The leading bytes every bucket's entries share, so the main vector does not store them.
const BUCKET_BYTES: usize = 2;
/// Buckets are cut by the key's leading `bits` bits, `MIN_BITS..=MAX_BITS` (at least the
/// `BUCKET_BYTES` that are not stored), growing with the index to keep about 8 to 16 entries
/// in a bucket: a lookup then reads one or two cache lines after the bounds.
const MIN_BITS: u32 = 8 * BUCKET_BYTES as u32;
const MAX_BITS: u32 = 24;

/// The bucket bits for an index of `n` keys: about 2^3 to 2^4 keys a bucket.
fn bits_for(n: usize) -> u32 {
    if n < 2 {
        return MIN_BITS;
    }
    n.ilog2().saturating_sub(3).clamp(MIN_BITS, MAX_BITS)
}

/// A key without its bucket bytes, as the main vector stores it.
type Rest = [u8; KEY_BYTES - BUCKET_BYTES];

/// The index key of a whole tag.
pub(crate) fn key_of(tag: &[u8; 32]) -> TagKey {
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(&tag[..KEY_BYTES]);
    key
}

fn bucket_of(key: &TagKey, bits: u32) -> usize {
    (u32::from_be_bytes([key[0], key[1], key[2], key[3]]) >> (32 - bits)) as usize
}

/// The bucket, under `new_bits`, of an entry `rest` of bucket `old` under `old_bits`.
fn rebucket_of(old: usize, old_bits: u32, rest: &Rest, new_bits: u32) -> usize {
    let first = (old >> (old_bits - MIN_BITS)) as u32; // the two bytes the entry does not store
    let prefix = (first << 16) | (u32::from(rest[0]) << 8) | u32::from(rest[1]);
    (prefix >> (32 - new_bits)) as usize
}

fn rest_of(key: &TagKey) -> Rest {
    let mut rest = [0u8; KEY_BYTES - BUCKET_BYTES];
    rest.copy_from_slice(&key[BUCKET_BYTES..]);
    rest
}

/// The in-memory set of tags.
///
/// Tags are HMAC outputs, so their bytes are uniformly spread. The main vector holds the keys
/// sorted, cut into 2^`bits` buckets by their leading bits (16 to 24 bits, about 8 to 16 keys a
/// bucket); the first two bytes, shared by a bucket, are not stored: `starts[b]..starts[b + 1]`
/// is bucket `b`, 14 bytes an entry. A lookup reads the bounds, then searches one bucket of one
/// or two cache lines. [`TagIndex::contains_all`] reads every bucket bound first and searches
/// afterwards, so the cache misses of a batch overlap. Writes go to a small hash set (the tail)
/// that is merged into the main vector, in place, once it holds 1/32 of it. Memory: 14 bytes a
/// tag, bounds of 0.25 to 0.5 bytes a tag (at least 256 KB once the vector is in use), and at most
/// about 0.6 bytes a tag of tail.
#[derive(Default)]
pub(crate) struct TagIndex {
    rests: Vec<Rest>,
    /// Empty until the first merge, then `2^bits + 1` bounds into `rests`.
    starts: Vec<u32>,
    bits: u32,
    tail: HashSet<TagKey, TagHashBuilder>,
}

/// Hashes a tag (or a key) by its first eight bytes. The sets hashed this way hold only this
/// server's own tags (HMAC outputs nobody else can choose), so their bytes are already a good hash.
#[derive(Default, Clone, Copy)]
pub(crate) struct TagHashBuilder;

/// The hasher behind [`TagHashBuilder`].
#[derive(Default)]
pub(crate) struct TagHasher(u64);

impl std::hash::BuildHasher for TagHashBuilder {
    type Hasher = TagHasher;
    fn build_hasher(&self) -> TagHasher {
        TagHasher(0)
    }
}

impl std::hash::Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A byte array hashes as its length (a usize) then its bytes; keep the first 8 bytes.
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_usize(&mut self, _length: usize) {}
}

impl TagIndex {
    /// The part of `rests` where `key` would be.
    fn range(&self, key: &TagKey) -> Range<usize> {
        let b = bucket_of(key, self.bits.max(MIN_BITS));
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&lo), Some(&hi)) => lo as usize..hi as usize,
            _ => 0..0,
        }
    }

    fn in_main(&self, key: &TagKey, range: Range<usize>) -> bool {
        // A bucket holds a handful of sorted entries in one or two cache lines: a forward scan
        // that stops at the first larger entry beats a binary search's dependent reads.
        let rest = rest_of(key);
        self.rests.get(range).is_some_and(|bucket| {
            bucket
                .iter()
                .find(|entry| **entry >= rest)
                .is_some_and(|entry| *entry == rest)
        })
    }

    fn contains_key(&self, key: &TagKey) -> bool {
        self.in_main(key, self.range(key)) || (!self.tail.is_empty() && self.tail.contains(key))
    }

    pub(crate) fn contains(&self, tag: &[u8; 32]) -> bool {
        self.contains_key(&key_of(tag))
    }

    /// [`TagIndex::contains`] for a batch, in two passes (bucket bounds, then entries) so that the
    /// cache misses of different lookups overlap instead of queueing behind each other.
    pub(crate) fn contains_all(&self, tags: &[ParticipationTag]) -> Vec<bool> {
        let keys: Vec<TagKey> = tags.iter().map(|t| key_of(&t.0)).collect();
        let ranges: Vec<Range<usize>> = keys.iter().map(|k| self.range(k)).collect();
        // Touch each bucket's first entry now, so that these independent misses overlap too and
        // the scans below find their buckets in cache.
        let mut touched = 0u8;
        for range in &ranges {
            touched ^= self.rests.get(range.start).map_or(0, |entry| entry[0]);
        }
        std::hint::black_box(touched);
        keys.iter()
            .zip(ranges)
            .map(|(key, range)| {
                self.in_main(key, range) || (!self.tail.is_empty() && self.tail.contains(key))
            })
            .collect()
    }

    pub(crate) fn insert(&mut self, key: TagKey) {
        if !self.contains_key(&key) {
            self.tail.insert(key);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rests.len() + self.tail.len()
    }

    /// Adds many keys at once: small batches go to the tail, large ones (such as the whole store
    /// at open) are merged straight into the main vector.
    pub(crate) fn extend(&mut self, mut keys: Vec<TagKey>) {
        if keys.len() < MIN_TAIL_BEFORE_MERGE {
            for key in keys {
                self.insert(key);
            }
            return;
        }
        keys.extend(self.tail.drain());
        self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
        self.merge(keys);
    }

    pub(crate) fn merge_if_due(&mut self) {
        if self.tail.len() >= MIN_TAIL_BEFORE_MERGE.max(self.rests.len() / 32) {
            let keys: Vec<TagKey> = self.tail.drain().collect();
            self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
            self.merge(keys);
        }
    }

    /// Merges `keys` into the main vector, in place: the vector grows by the number of new keys,
    /// then both sequences are merged from the back, bucket by bucket, so no entry is read after
    /// it is overwritten and no second copy of the vector is ever made.
    fn merge(&mut self, mut keys: Vec<TagKey>) {
        keys.sort_unstable();
        keys.dedup();
        keys.retain(|k| !self.in_main(k, self.range(k)));
        if keys.is_empty() {
            return;
        }
        let total = self.rests.len() + keys.len();
        if u32::try_from(total).is_err() {
            // Beyond 4 billion tags the u32 bounds cannot address the vector: keep them in the tail.
            self.tail.extend(keys);
            return;
        }
        let bits = bits_for(total);
        if self.starts.is_empty() {
            self.bits = bits;
            self.starts = vec![0; (1 << bits) + 1];
        } else if bits != self.bits {
            self.rebucket(bits);
        }
        let buckets = 1usize << self.bits;
        self.rests.reserve_exact(keys.len());
        self.rests.resize(total, [0; KEY_BYTES - BUCKET_BYTES]);
        let mut write = total;
        let mut pending = keys.len();
        for b in (0..buckets).rev() {
            let lo = self.starts.get(b).map_or(0, |&s| s as usize);
            let mut read = self.starts.get(b + 1).map_or(0, |&s| s as usize);
            let end = write;
            loop {
                let new = pending
                    .checked_sub(1)
                    .and_then(|i| keys.get(i))
                    .filter(|k| bucket_of(k, self.bits) == b)
                    .map(rest_of);
                let old = if read > lo {
                    self.rests.get(read - 1).copied()
                } else {
                    None
                };
                let (entry, from_new) = match (new, old) {
                    (Some(n), Some(o)) if n > o => (n, true),
                    (Some(n), None) => (n, true),
                    (_, Some(o)) => (o, false),
                    (None, None) => break,
                };
                write -= 1;
                if from_new {
                    pending -= 1;
                } else {
                    read -= 1;
                }
                if let Some(slot) = self.rests.get_mut(write) {
                    *slot = entry;
                }
            }
            if let Some(slot) = self.starts.get_mut(b + 1) {
                *slot = end as u32;
            }
        }
        if let Some(first) = self.starts.first_mut() {
            *first = 0;
        }
    }

    /// Recomputes the bounds for `new_bits` (the entries stay where they are: finer or coarser
    /// buckets of a sorted vector are still runs of it).
    fn rebucket(&mut self, new_bits: u32) {
        let old_bits = self.bits;
        let mut starts = vec![0u32; (1 << new_bits) + 1];
        for old in 0..(1usize << old_bits) {
            let lo = self.starts.get(old).map_or(0, |&s| s as usize);
            let hi = self.starts.get(old + 1).map_or(0, |&s| s as usize);
            for rest in self.rests.get(lo..hi).unwrap_or_default() {
                if let Some(count) = starts.get_mut(rebucket_of(old, old_bits, rest, new_bits) + 1)
                {
                    *count += 1;
                }
            }
        }
        let mut running = 0u32;
        for slot in &mut starts {
            running += *slot;
            *slot = running;
        }
        self.starts = starts;
        self.bits = new_bits;
    }

    pub(crate) fn bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the value, buckets = capacity * 8 / 7.
        let tail_buckets = self.tail.capacity().saturating_mul(8) / 7;
        self.rests.capacity() * (KEY_BYTES - BUCKET_BYTES)
            + self.starts.capacity() * 4
            + tail_buckets * (KEY_BYTES + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A small deterministic generator (xorshift64*), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn tag(&mut self, crowded: bool) -> [u8; 32] {
            let mut tag = [0u8; 32];
            for chunk in tag.chunks_mut(8) {
                chunk.copy_from_slice(&self.next().to_le_bytes());
            }
            if crowded {
                // Few buckets and shared prefixes, to exercise merges inside one bucket.
                tag[0] = 0;
                tag[1] = (tag[1] & 3) * 0x40;
                tag[2] &= 1;
            }
            tag
        }
    }

    #[test]
    fn agrees_with_a_set_of_keys_through_inserts_batches_and_merges() {
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let crowded = seed % 3 == 0;
            let mut index = TagIndex::default();
            let mut model: BTreeSet<TagKey> = BTreeSet::new();
            let mut seen: Vec<[u8; 32]> = Vec::new();
            for round in 0..40 {
                let batch = match round % 4 {
                    0 => 1 + (rng.next() % 50) as usize,
                    1 => MIN_TAIL_BEFORE_MERGE + (rng.next() % 3000) as usize,
                    _ => (rng.next() % 700) as usize,
                };
                let mut keys = Vec::with_capacity(batch);
                for _ in 0..batch {
                    // A quarter are repeats of tags already stored.
                    let tag = match seen.get((rng.next() as usize) % (seen.len() + 1)) {
                        Some(old) if rng.next() % 4 == 0 => *old,
                        _ => rng.tag(crowded),
                    };
                    seen.push(tag);
                    keys.push(key_of(&tag));
                    model.insert(key_of(&tag));
                }
                if round % 5 == 2 {
                    for key in keys {
                        index.insert(key);
                    }
                } else {
                    index.extend(keys);
                }
                index.merge_if_due();
                assert_eq!(index.len(), model.len(), "seed {seed} round {round}");
                let probes: Vec<ParticipationTag> = (0..200)
                    .map(
                        |i| match seen.get((rng.next() as usize) % seen.len().max(1)) {
                            Some(t) if i % 2 == 0 => ParticipationTag(*t),
                            _ => ParticipationTag(rng.tag(crowded)),
                        },
                    )
                    .collect();
                let got = index.contains_all(&probes);
                for (probe, got) in probes.iter().zip(got) {
                    let want = model.contains(&key_of(&probe.0));
                    assert_eq!(got, want, "seed {seed} round {round}");
                    assert_eq!(index.contains(&probe.0), want);
                }
            }
            // The main vector is sorted inside every bucket and the bounds cover it exactly.
            if !index.starts.is_empty() {
                assert_eq!(index.starts.first(), Some(&0));
                assert_eq!(
                    index.starts.last().map(|&s| s as usize),
                    Some(index.rests.len())
                );
                assert_sorted_buckets(&index);
            }
        }
    }

    fn assert_sorted_buckets(index: &TagIndex) {
        assert_eq!(index.starts.len(), (1 << index.bits) + 1);
        for b in 0..(1usize << index.bits) {
            let bucket = &index.rests[index.starts[b] as usize..index.starts[b + 1] as usize];
            assert!(bucket.windows(2).all(|w| w[0] < w[1]), "bucket {b}");
        }
    }

    #[test]
    fn buckets_grow_with_the_index_and_lookups_still_agree() {
        let mut rng = Rng(7);
        let mut index = TagIndex::default();
        let first: Vec<[u8; 32]> = (0..600_000).map(|_| rng.tag(false)).collect();
        index.extend(first.iter().map(key_of).collect());
        assert_eq!(index.bits, 16);
        let second: Vec<[u8; 32]> = (0..1_500_000).map(|_| rng.tag(false)).collect();
        index.extend(second.iter().map(key_of).collect());
        assert_eq!(index.bits, bits_for(2_100_000));
        assert!(index.bits > 16);
        assert_sorted_buckets(&index);
        for tag in first.iter().chain(&second).step_by(97) {
            assert!(index.contains(tag));
        }
        let absent: Vec<ParticipationTag> = (0..5000)
            .map(|_| ParticipationTag(rng.tag(false)))
            .collect();
        assert!(index.contains_all(&absent).iter().all(|&x| !x));
    }

    #[test]
    fn a_tag_is_recognised_by_its_first_16_bytes() {
        let mut index = TagIndex::default();
        let mut tag = [7u8; 32];
        index.insert(key_of(&tag));
        tag[31] ^= 1;
        assert!(index.contains(&tag), "bytes after the 16th are not kept");
        tag[15] ^= 1;
        assert!(!index.contains(&tag));
    }

    #[test]
    fn memory_is_at_most_16_bytes_a_tag_at_scale() {
        let mut rng = Rng(42);
        let mut index = TagIndex::default();
        let keys: Vec<TagKey> = (0..1_000_000).map(|_| key_of(&rng.tag(false))).collect();
        index.extend(keys);
        for _ in 0..5_000 {
            index.insert(key_of(&rng.tag(false)));
        }
        index.merge_if_due();
        let per_tag = index.bytes() as f64 / index.len() as f64;
        assert!(per_tag <= 16.0, "{per_tag} bytes a tag");
    }
}
