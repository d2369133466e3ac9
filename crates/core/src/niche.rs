//! An `i64` whose `Option` is 8 bytes.

use std::fmt;
use std::num::NonZeroU64;

/// Flips the sign bit: signed order becomes unsigned order.
const SIGN: u64 = 1 << 63;

/// An `i64` kept shifted (`x ^ sign bit`, plus one) in a `NonZeroU64`, so
/// that an `Option` of it uses the zero as its `None` instead of a second
/// word, and the derived order is still the numbers' order. `i64::MAX` is
/// the one value it cannot hold: [`NicheI64::new`] takes it to the value
/// before. Prints and serializes as the number, so types wrapping it can
/// derive both (`#[serde(transparent)]`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NicheI64(NonZeroU64);

impl NicheI64 {
    pub(crate) const fn new(v: i64) -> Self {
        let v = if v == i64::MAX { v - 1 } else { v };
        // `v ^ SIGN` is at most `u64::MAX - 1` here, so adding one is never
        // zero.
        match NonZeroU64::new(((v as u64) ^ SIGN) + 1) {
            Some(n) => NicheI64(n),
            None => NicheI64(NonZeroU64::MIN),
        }
    }

    pub(crate) const fn get(self) -> i64 {
        ((self.0.get() - 1) ^ SIGN) as i64
    }
}

impl fmt::Debug for NicheI64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl serde::Serialize for NicheI64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.get())
    }
}

impl<'de> serde::Deserialize<'de> for NicheI64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(NicheI64::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_order_as_numbers_and_an_option_is_8_bytes() {
        let vs = [
            i64::MIN,
            i64::MIN + 1,
            -86_400_000,
            -1,
            0,
            1,
            1_772_357_400_000,
            i64::MAX - 1,
        ];
        for w in vs.windows(2) {
            assert!(
                NicheI64::new(w[0]) < NicheI64::new(w[1]),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for v in vs {
            assert_eq!(NicheI64::new(v).get(), v);
        }
        assert_eq!(NicheI64::new(i64::MAX).get(), i64::MAX - 1);
        assert_eq!(std::mem::size_of::<Option<NicheI64>>(), 8);
    }
}
