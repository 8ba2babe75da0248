//! A table cell's conversations per response type: what the value pairs' response mix needs.
//!
//! The `human_values x ai_values` table is the largest table, and the pair mix has exactly its
//! keys; kept in the same cell, one hash probe per conversation and pair serves both counts
//! (a second map of the same size would cost a second cache miss for every update). Cells of
//! the other tables leave it empty.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::schema::RESPONSE_TYPES;

/// Conversations per response type, in schema order.
pub type RtCounts = [u64; RESPONSE_TYPES.len()];

/// Bits of one response type's count in the packed form (seven of them fill 63 bits).
const FIELD_BITS: u32 = 9;
const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;
const PACKED_BITS: u32 = FIELD_BITS * RESPONSE_TYPES.len() as u32;
/// The low bit of the word tags a wide mix. A wide mix's word is the address of its boxed
/// counts, which their alignment keeps even; a packed mix keeps its fields above this bit.
const WIDE: u64 = 1;

/// The seven counts in one word: packed 9 bits each while every count fits (almost every
/// cell), else the address of the counts on the heap (once one passes 511). One word, so that
/// a table cell stays small; always in that canonical form, so that equal counts compare equal.
#[derive(Default)]
pub struct Mix(u64);

#[inline]
fn shift(rt: usize) -> u32 {
    1 + FIELD_BITS * rt as u32
}

impl Mix {
    /// The canonical form of `counts`.
    pub fn from_counts(counts: RtCounts) -> Mix {
        if counts.iter().all(|&c| c <= FIELD_MAX) {
            Mix(counts
                .iter()
                .enumerate()
                .fold(0, |w, (rt, &c)| w | (c << shift(rt))))
        } else {
            Mix::wide(counts)
        }
    }

    fn wide(counts: RtCounts) -> Mix {
        let at = Box::into_raw(Box::new(counts)) as usize as u64;
        debug_assert_eq!(at & WIDE, 0, "boxed counts are aligned");
        Mix(at | WIDE)
    }

    #[inline]
    fn is_wide(&self) -> bool {
        self.0 & WIDE != 0
    }

    #[inline]
    fn boxed(&self) -> *mut RtCounts {
        (self.0 & !WIDE) as usize as *mut RtCounts
    }

    /// The mix of a packed word (`packed_word`); None for a word with bits past the seven
    /// fields.
    pub fn from_word(w: u64) -> Option<Mix> {
        (w >> PACKED_BITS == 0).then_some(Mix(w << 1))
    }

    /// The seven 9-bit fields, when every count fits in one.
    pub fn packed_word(&self) -> Option<u64> {
        (!self.is_wide()).then_some(self.0 >> 1)
    }

    pub fn counts(&self) -> RtCounts {
        if self.is_wide() {
            // SAFETY: a wide word is the address of counts boxed by `wide` and owned by self
            unsafe { *self.boxed() }
        } else {
            std::array::from_fn(|rt| (self.0 >> shift(rt)) & FIELD_MAX)
        }
    }

    /// The conversations counted; None when the counts (decoded from a file) overflow.
    pub fn total(&self) -> Option<u64> {
        self.counts()
            .iter()
            .try_fold(0u64, |a, &b| a.checked_add(b))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// One more conversation of response type `rt` (its index in the schema).
    #[inline]
    pub fn add(&mut self, rt: u8) {
        let rt = rt as usize;
        if self.is_wide() {
            // SAFETY: as in `counts`; `&mut self` makes this the only reference
            unsafe { (*self.boxed())[rt] += 1 }
        } else if (self.0 >> shift(rt)) & FIELD_MAX < FIELD_MAX {
            self.0 += 1 << shift(rt);
        } else {
            let mut c = self.counts();
            c[rt] += 1;
            *self = Mix::wide(c);
        }
    }

    pub fn merge(&mut self, other: &Mix) {
        if other.is_empty() {
            return;
        }
        let mut c = self.counts();
        c.iter_mut().zip(other.counts()).for_each(|(a, b)| *a += b);
        *self = Mix::from_counts(c);
    }
}

impl Drop for Mix {
    fn drop(&mut self) {
        if self.is_wide() {
            // SAFETY: the box made by `wide`, owned by self alone, freed once here
            drop(unsafe { Box::from_raw(self.boxed()) });
        }
    }
}

impl Clone for Mix {
    fn clone(&self) -> Self {
        if self.is_wide() {
            Mix::wide(self.counts())
        } else {
            Mix(self.0)
        }
    }
}

impl PartialEq for Mix {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || (self.is_wide() && other.is_wide() && self.counts() == other.counts())
    }
}

impl Eq for Mix {}

impl std::fmt::Debug for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Mix").field(&self.counts()).finish()
    }
}

// Serialised as the packed fields, or the seven counts once wide; read back into the
// canonical form, packed fields with bits past the seventh refused (states come from files).
#[derive(Serialize, Deserialize)]
enum MixRepr {
    Packed(u64),
    Wide(RtCounts),
}

impl Serialize for Mix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.packed_word() {
            Some(w) => MixRepr::Packed(w),
            None => MixRepr::Wide(self.counts()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Mix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match MixRepr::deserialize(d)? {
            MixRepr::Packed(w) => Mix::from_word(w)
                .ok_or_else(|| serde::de::Error::custom("a response-type mix out of range")),
            MixRepr::Wide(c) => Ok(Mix::from_counts(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_widen_past_their_packed_bits_and_stay_exact() {
        let mut m = Mix::default();
        let mut want = [0u64; 7];
        for i in 0..3000u64 {
            let rt = (i % 11).min(6) as u8;
            m.add(rt);
            want[rt as usize] += 1;
        }
        assert!(m.packed_word().is_none());
        assert_eq!(m.counts(), want);
        let mut small = Mix::default();
        small.add(2);
        small.add(6);
        assert_eq!(small.counts(), [0, 0, 1, 0, 0, 0, 1]);
        m.merge(&small);
        want[2] += 1;
        want[6] += 1;
        assert_eq!((m.counts(), m.total()), (want, Some(3002)));
        assert_eq!(Mix::from_counts([u64::MAX, 1, 0, 0, 0, 0, 0]).total(), None);
    }

    #[test]
    fn the_form_is_canonical_so_equal_counts_compare_equal() {
        // 511 in one field stays packed; the 512th widens it
        let mut a = Mix::default();
        (0..511).for_each(|_| a.add(4));
        assert!(a.packed_word().is_some());
        let mut b = a.clone();
        b.add(4);
        assert!(b.packed_word().is_none());
        assert_eq!(Mix::from_counts(b.counts()), b);
        let mut c = Mix::from_counts([0, 0, 0, 0, 300, 0, 0]);
        c.merge(&Mix::from_counts([0, 0, 0, 0, 212, 0, 0]));
        assert_eq!(c, b);
        for m in [&a, &b] {
            let back: Mix = postcard::from_bytes(&postcard::to_stdvec(&m).unwrap()).unwrap();
            assert_eq!(&back, m);
        }
        let bad = postcard::to_stdvec(&MixRepr::Packed(1 << 63)).unwrap();
        assert!(postcard::from_bytes::<Mix>(&bad).is_err());
        // a clone owns its own counts: dropping one leaves the other whole
        let copy = b.clone();
        drop(b);
        assert_eq!(copy.counts()[4], 512);
        assert_eq!(std::mem::size_of::<Mix>(), 8);
    }
}
