//! The log cleaner's bounded map from record key to the offset it was last seen
//! at (Kafka's SkimpyOffsetMap idea): one preallocated open-addressing table,
//! sized from a memory budget, whose slots hold a 128-bit hash of the key and
//! the offset. Keys themselves are never stored: two keys with the same XXH3-128
//! hash would be taken for one, a chance far below that of a disk error.
//!
//! Linear probing, load factor 0.9: a full map refuses new keys (the cleaner
//! then cleans up to the last offset it mapped) but still updates keys it has.

use crate::types::Offset;

/// Slots of the smallest map, whatever the budget.
const MIN_SLOTS: usize = 16;
/// Words of a slot: the key's XXH3-128 hash in two halves, then its offset
/// plus one (0: the slot holds no key), so a new table is all zeros and its
/// pages cost nothing until a pass touches them.
const SLOT_WORDS: usize = 3;

/// A new key met a map holding [`OffsetMap::capacity`] keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the offset map is full ({capacity} keys)")]
pub struct MapFull {
    pub capacity: usize,
}

/// Where a key's probe ends.
enum Probe {
    Found(usize),
    Vacant(usize),
}

pub struct OffsetMap {
    /// `SLOT_WORDS` words per slot.
    words: Vec<u64>,
    slots: usize,
    /// The slots holding a key, so a clear costs the keys of a pass, not the
    /// table (a shard's table is tens of MiB; clearing it whole stalled the
    /// shard for milliseconds at every pass).
    used: Vec<u32>,
    capacity: usize,
    latest: Option<Offset>,
}

impl OffsetMap {
    /// Bytes one slot costs: 24 in the table, 4 in the list of used slots.
    pub const SLOT_BYTES: usize = SLOT_WORDS * 8 + 4;

    /// A map using about `bytes` of memory (never fewer than a few slots).
    pub fn with_memory(bytes: usize) -> OffsetMap {
        let slots = (bytes / Self::SLOT_BYTES).max(MIN_SLOTS);
        assert!(
            u32::try_from(slots).is_ok(),
            "slot numbers fit the list of used slots"
        );
        // Load factor 0.9: a fuller table makes probes long.
        let capacity = slots - slots.div_ceil(10);
        assert!(
            capacity > 0 && capacity < slots,
            "a map keeps an empty slot to end every probe"
        );
        OffsetMap {
            words: vec![0; slots * SLOT_WORDS],
            slots,
            used: Vec::new(),
            capacity,
            latest: None,
        }
    }

    /// Keys it accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// Records that `key` was last seen at `offset`. Offsets come in increasing
    /// order; a key already present is updated even when the map is full.
    pub fn put(&mut self, key: &[u8], offset: Offset) -> Result<(), MapFull> {
        assert!(offset.0 >= 0, "the offset map holds log offsets only");
        debug_assert!(self.latest.is_none_or(|latest| latest <= offset));
        let hash = hash(key);
        let at = match self.probe(hash) {
            Probe::Found(at) => at,
            Probe::Vacant(at) => {
                if self.used.len() == self.capacity {
                    return Err(MapFull {
                        capacity: self.capacity,
                    });
                }
                self.used.push(at as u32);
                at
            }
        };
        let slot = &mut self.words[at * SLOT_WORDS..(at + 1) * SLOT_WORDS];
        slot.copy_from_slice(&[hash[0], hash[1], offset.0 as u64 + 1]);
        self.latest = Some(self.latest.map_or(offset, |latest| latest.max(offset)));
        Ok(())
    }

    /// The offset `key` was last put at.
    pub fn get(&self, key: &[u8]) -> Option<Offset> {
        match self.probe(hash(key)) {
            Probe::Found(at) => Some(Offset(self.words[at * SLOT_WORDS + 2] as i64 - 1)),
            Probe::Vacant(_) => None,
        }
    }

    /// The largest offset put since the last clear.
    pub fn latest_offset(&self) -> Option<Offset> {
        self.latest
    }

    /// Empties the map, keeping its memory for the next pass.
    pub fn clear(&mut self) {
        for &at in &self.used {
            let at = at as usize;
            self.words[at * SLOT_WORDS..(at + 1) * SLOT_WORDS].fill(0);
        }
        self.used.clear();
        self.latest = None;
    }

    /// The slot holding `hash`, or the vacant one that ends its probe sequence.
    fn probe(&self, hash: [u64; 2]) -> Probe {
        let start = (hash[0] % self.slots as u64) as usize;
        // At most every slot once; there is always a vacant one (`capacity < slots`).
        for step in 0..self.slots {
            let at = (start + step) % self.slots;
            let slot = &self.words[at * SLOT_WORDS..(at + 1) * SLOT_WORDS];
            if slot[2] == 0 {
                return Probe::Vacant(at);
            }
            if slot[..2] == hash {
                return Probe::Found(at);
            }
        }
        unreachable!("an offset map below its capacity always has a vacant slot")
    }
}

fn hash(key: &[u8]) -> [u64; 2] {
    let hash = twox_hash::XxHash3_128::oneshot(key);
    [hash as u64, (hash >> 64) as u64]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_small_and_the_budget_sets_the_capacity() {
        assert_eq!(OffsetMap::SLOT_BYTES, 28);
        let map = OffsetMap::with_memory(1000 * OffsetMap::SLOT_BYTES);
        assert_eq!(map.capacity(), 900);
        assert_eq!(OffsetMap::with_memory(0).capacity(), 14);
        assert!(map.is_empty());
    }

    #[test]
    fn puts_gets_and_updates() {
        let mut map = OffsetMap::with_memory(4096);
        assert_eq!(map.get(b"a"), None);
        assert_eq!(map.latest_offset(), None);
        map.put(b"a", Offset(1)).unwrap();
        map.put(b"b", Offset(2)).unwrap();
        map.put(b"a", Offset(3)).unwrap();
        assert_eq!(map.get(b"a"), Some(Offset(3)));
        assert_eq!(map.get(b"b"), Some(Offset(2)));
        assert_eq!(map.get(b"c"), None);
        assert_eq!(map.get(b""), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.latest_offset(), Some(Offset(3)));
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_old_ones() {
        let mut map = OffsetMap::with_memory(0);
        let capacity = map.capacity();
        for n in 0..capacity {
            map.put(format!("k{n}").as_bytes(), Offset(n as i64))
                .unwrap();
        }
        assert_eq!(map.len(), capacity);
        assert_eq!(
            map.put(b"new", Offset(100)),
            Err(MapFull { capacity }),
            "a new key does not fit"
        );
        assert_eq!(map.get(b"new"), None);
        map.put(b"k0", Offset(101)).unwrap();
        assert_eq!(map.get(b"k0"), Some(Offset(101)));
        assert_eq!(map.latest_offset(), Some(Offset(101)));
        assert_eq!(map.len(), capacity);
    }

    #[test]
    fn clear_empties_the_map() {
        let mut map = OffsetMap::with_memory(0);
        map.put(b"a", Offset(7)).unwrap();
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.get(b"a"), None);
        assert_eq!(map.latest_offset(), None);
        map.put(b"a", Offset(1)).unwrap();
        assert_eq!(map.get(b"a"), Some(Offset(1)));
    }

    #[test]
    fn many_keys_give_no_false_answers() {
        const KEYS: usize = 100_000;
        let mut map = OffsetMap::with_memory(KEYS * OffsetMap::SLOT_BYTES * 10 / 9 + 64);
        assert!(map.capacity() >= KEYS);
        for n in 0..KEYS {
            map.put(&(n as u64).to_be_bytes(), Offset(n as i64))
                .unwrap();
        }
        // Every key twice: later offsets win.
        for n in 0..KEYS {
            map.put(&(n as u64).to_be_bytes(), Offset((KEYS + n) as i64))
                .unwrap();
        }
        assert_eq!(map.len(), KEYS);
        for n in 0..KEYS {
            assert_eq!(
                map.get(&(n as u64).to_be_bytes()),
                Some(Offset((KEYS + n) as i64))
            );
        }
        for n in KEYS..2 * KEYS {
            assert_eq!(map.get(&(n as u64).to_be_bytes()), None);
        }
        assert_eq!(map.latest_offset(), Some(Offset(2 * KEYS as i64 - 1)));
    }
}
