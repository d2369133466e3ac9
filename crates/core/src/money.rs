//! Money as integer minor units with an ISO 4217 currency (DESIGN §9).

use std::fmt;

use crate::niche::NicheI64;

/// The largest amount tandem takes, in minor units either side of zero:
/// 10^15, ten trillion major units of a two-decimal currency. Every input
/// (import, API, tracking) refuses more, so that an absurd amount is named
/// where it comes in; the sums over stored amounts saturate besides, since
/// ten million touches at this bound would still pass `i64::MAX`.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// An ISO 4217 currency code: three ASCII upper-case letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// An amount in minor units of the playbook currency, 8 bytes also as an
/// `Option`: a touch's cost, absent on most of ten million touches, took
/// 16. `i64::MAX` is the one amount it cannot hold (it becomes the one
/// before). Orders and serializes as the number.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Minor(NicheI64);

impl Minor {
    /// The amount of `minor` units.
    pub const fn new(minor: i64) -> Self {
        Minor(NicheI64::new(minor))
    }

    /// The amount in minor units.
    pub const fn get(self) -> i64 {
        self.0.get()
    }
}

impl From<i64> for Minor {
    fn from(minor: i64) -> Self {
        Minor::new(minor)
    }
}

/// A string that is not a three-letter currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid currency {0:?}: expected a three-letter ISO 4217 code such as USD")]
pub struct CurrencyError(String);

impl Currency {
    /// Parses `USD`, `eur` (upper-cased) and the like.
    pub fn parse(s: &str) -> Result<Self, CurrencyError> {
        let t = s.trim().as_bytes();
        if t.len() == 3 && t.iter().all(u8::is_ascii_alphabetic) {
            Ok(Currency([
                t[0].to_ascii_uppercase(),
                t[1].to_ascii_uppercase(),
                t[2].to_ascii_uppercase(),
            ]))
        } else {
            Err(CurrencyError(s.to_string()))
        }
    }

    /// The code, e.g. `"USD"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units (cents for USD) of one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// Amount in minor units; `1_000_00` is 1,000.00.
    pub minor: i64,
    /// Currency of the amount.
    pub currency: Currency,
}

/// A decimal amount that cannot be read as money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid amount {0:?}: expected a decimal number such as 1234.50, at most 10,000,000,000,000.00 either side of zero")]
pub struct AmountError(String);

impl Money {
    /// Parses a decimal major-unit amount (`"1234.5"`, `"1,234.50"`, `"$1234"`)
    /// into minor units with two decimals. Thousands separators and a leading
    /// currency symbol are ignored; more than two decimals are rounded half
    /// away from zero.
    pub fn parse_major(s: &str, currency: Currency) -> Result<Money, AmountError> {
        parse_minor(s)
            .map(|minor| Money { minor, currency })
            .ok_or_else(|| AmountError(s.to_string()))
    }
}

fn parse_minor(s: &str) -> Option<i64> {
    let t: String = s
        .trim()
        .trim_start_matches(['$', '€', '£'])
        .chars()
        .filter(|c| *c != ',' && *c != '_' && *c != ' ')
        .collect();
    if t.is_empty() {
        return None;
    }
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.as_str()),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut digits = frac.bytes().map(|b| i64::from(b - b'0'));
    let d1 = digits.next().unwrap_or(0);
    let d2 = digits.next().unwrap_or(0);
    let round_up = digits.next().is_some_and(|d3| d3 >= 5);
    let minor = int_v
        .checked_mul(100)?
        .checked_add(d1 * 10 + d2 + i64::from(round_up))?;
    (minor <= MAX_MINOR).then_some(if neg { -minor } else { minor })
}

impl fmt::Display for Money {
    /// `1234.50 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    #[test]
    fn parses_major_amounts() {
        let cases = [
            ("1234.5", 123_450),
            ("1,234.50", 123_450),
            ("$10", 1_000),
            ("0.015", 2),
            ("-3.20", -320),
            (".5", 50),
        ];
        for (s, minor) in cases {
            assert_eq!(
                Money::parse_major(s, usd()).map(|m| m.minor),
                Ok(minor),
                "{s}"
            );
        }
        for s in ["", "abc", "1.2.3", "-", "."] {
            assert!(Money::parse_major(s, usd()).is_err(), "{s}");
        }
    }

    #[test]
    fn amounts_past_ten_trillion_are_refused() {
        let top = "10,000,000,000,000.00";
        assert_eq!(
            Money::parse_major(top, usd()).map(|m| m.minor),
            Ok(MAX_MINOR)
        );
        assert_eq!(
            Money::parse_major("-10000000000000", usd()).map(|m| m.minor),
            Ok(-MAX_MINOR)
        );
        for s in [
            "10000000000000.01",
            "-10000000000000.01",
            "92233720368547758.07",
        ] {
            let e = Money::parse_major(s, usd()).unwrap_err().to_string();
            assert!(e.contains("at most 10,000,000,000,000.00"), "{e}");
        }
    }

    #[test]
    fn currency_must_be_three_letters() {
        assert_eq!(usd().as_str(), "USD");
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("U$D").is_err());
    }

    #[test]
    fn displays_minor_units() {
        let m = Money {
            minor: -1_000_05,
            currency: usd(),
        };
        assert_eq!(m.to_string(), "-1000.05 USD");
    }

    #[test]
    fn minor_amounts_serialize_as_numbers_and_an_option_is_8_bytes() {
        let costs = [
            None,
            Some(Minor::new(0)),
            Some(Minor::new(-250)),
            Some(Minor::new(12_50)),
        ];
        let json = serde_json::to_string(&costs).unwrap();
        assert_eq!(json, "[null,0,-250,1250]");
        assert_eq!(
            serde_json::from_str::<Vec<Option<Minor>>>(&json).unwrap(),
            costs
        );
        assert_eq!(format!("{:?}", Minor::new(1250)), "Minor(1250)");
        assert!(Minor::new(-1) < Minor::new(0));
        assert_eq!(std::mem::size_of::<Option<Minor>>(), 8);
    }
}
