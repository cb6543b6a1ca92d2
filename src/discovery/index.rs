//! The in-memory set of a server's participation tags, the same for every store backend: a
//! backend supplies rows (see `store::tags`), this index answers `recognise` without a query.

use std::collections::HashSet;

use crate::discovery::ParticipationTag;

/// The smallest tail size that triggers a merge, so small stores do not merge on every write.
const MIN_TAIL_BEFORE_MERGE: usize = 1024;

/// The in-memory set of tags.
///
/// Tags are HMAC outputs, so their bytes are uniformly spread. The sorted vector is cut into
/// 2^`bits` buckets by the tag's leading bits, with about one tag per bucket; `starts[b]` is
/// where bucket `b` begins. A lookup reads `starts` and then one or two entries, instead of the
/// twenty dependent cache misses of a binary search over 32 MB. [`TagIndex::contains_all`] does
/// the two reads in two separate passes over the whole batch, so the processor overlaps the
/// misses of many lookups. Memory: 32 bytes a tag plus 4 bytes a bucket.
#[derive(Default)]
pub(crate) struct TagIndex {
    sorted: Vec<[u8; 32]>,
    /// `starts[b]..starts[b + 1]` is bucket `b` of `sorted`; `1 << bits` buckets, plus one end.
    starts: Vec<u32>,
    bits: u32,
    tail: HashSet<[u8; 32], TagHashBuilder>,
}

/// Hashes a tag by its first eight bytes. The tail only ever holds this server's own tags
/// (HMAC outputs nobody else can choose), so their bytes are already a good hash.
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
        // `[u8; 32]` hashes as its length (a usize) then its bytes; keep the first 8 tag bytes.
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_usize(&mut self, _length: usize) {}
}

impl TagIndex {
    fn bucket(&self, tag: &[u8; 32]) -> usize {
        if self.bits == 0 {
            return 0;
        }
        let prefix = u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]);
        (prefix >> (32 - self.bits)) as usize
    }

    /// The part of `sorted` where `tag` would be.
    fn range(&self, tag: &[u8; 32]) -> std::ops::Range<usize> {
        let b = self.bucket(tag);
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&lo), Some(&hi)) => lo as usize..hi as usize,
            _ => 0..self.sorted.len(),
        }
    }

    pub(crate) fn contains(&self, tag: &[u8; 32]) -> bool {
        let range = self.range(tag);
        self.sorted
            .get(range)
            .is_some_and(|bucket| bucket.contains(tag))
            || (!self.tail.is_empty() && self.tail.contains(tag))
    }

    /// [`TagIndex::contains`] for a batch, in two passes (bucket bounds, then entries) so that the
    /// cache misses of different lookups overlap instead of queueing behind each other.
    pub(crate) fn contains_all(&self, tags: &[ParticipationTag]) -> Vec<bool> {
        let ranges: Vec<std::ops::Range<usize>> = tags.iter().map(|t| self.range(&t.0)).collect();
        tags.iter()
            .zip(ranges)
            .map(|(t, range)| {
                self.sorted
                    .get(range)
                    .is_some_and(|bucket| bucket.contains(&t.0))
                    || (!self.tail.is_empty() && self.tail.contains(&t.0))
            })
            .collect()
    }

    pub(crate) fn insert(&mut self, tag: [u8; 32]) {
        if !self.contains(&tag) {
            self.tail.insert(tag);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len() + self.tail.len()
    }

    /// Adds many tags at once: small batches go to the tail, large ones (such as the whole
    /// store at open) are sorted straight into the main vector.
    pub(crate) fn extend(&mut self, tags: Vec<[u8; 32]>) {
        if tags.len() < MIN_TAIL_BEFORE_MERGE {
            for tag in tags {
                self.insert(tag);
            }
            return;
        }
        self.sorted.reserve_exact(tags.len() + self.tail.len());
        self.sorted.extend(self.tail.drain());
        self.sorted.extend(tags);
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
        self.rebuild_buckets();
    }

    pub(crate) fn merge_if_due(&mut self) {
        if self.tail.len() >= MIN_TAIL_BEFORE_MERGE.max(self.sorted.len() / 32) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        // Tail entries are never in `sorted` (see `insert`), so appending and sorting is a merge.
        self.sorted.reserve_exact(self.tail.len());
        self.sorted.extend(self.tail.drain());
        self.sorted.sort_unstable();
        self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
        self.rebuild_buckets();
    }

    /// Recomputes `starts` for the current `sorted`: about one tag a bucket, at most 2^24 buckets.
    fn rebuild_buckets(&mut self) {
        let n = self.sorted.len();
        self.bits = if n < 2 { 0 } else { n.ilog2().min(24) };
        let buckets = 1usize << self.bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < n && self.sorted.get(i).is_some_and(|t| self.bucket(t) < b) {
                i += 1;
            }
            starts.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
        starts.push(u32::try_from(n).unwrap_or(u32::MAX));
        self.starts = starts;
        // More than 4 billion tags would overflow the u32 bounds: fall back to one bucket.
        if n > u32::MAX as usize {
            self.bits = 0;
            self.starts = Vec::new();
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the value, buckets = capacity * 8 / 7.
        let tail_buckets = self.tail.capacity().saturating_mul(8) / 7;
        self.sorted.capacity() * 32 + self.starts.capacity() * 4 + tail_buckets * 33
    }
}
