//! Interned strings for the categorical fields of the history.
//!
//! A large history holds tens of millions of rows whose text fields take a
//! few dozen values: a touch's kind, channel, campaign, source and medium, a
//! transition's stages, actor and reason, a person's persona, segment and
//! owner. As `String`s each copy costs 24 bytes plus a heap block; ten million
//! touches held 3 GB of them in `tandem serve`. A [`Sym`] is one pointer into a
//! process-wide cache that keeps one copy of each distinct text, so
//! `Option<Sym>` is 8 bytes and copying or comparing one is a pointer
//! operation.
//!
//! The cache never frees a text (that is what makes a `Sym` `Copy`). That is
//! why only fields with few distinct values are `Sym`s: names, e-mail
//! addresses, free-text notes and external ids stay `String`s, so the cache
//! holds no one's name or address and does not grow with every new person.
//!
//! A `Sym` behaves as the text it holds: it dereferences to `str`, orders and
//! hashes as that `str` (so maps keyed by `Sym` can be read with a `&str`),
//! prints and serializes as a plain string.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ustr::Ustr;

/// An interned string (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sym(Ustr);

impl Sym {
    /// Interns `s` (a lookup when it was seen before, one allocation for
    /// the first copy).
    pub fn new(s: &str) -> Sym {
        Sym(Ustr::from(s))
    }

    /// The text, borrowed for the life of the process.
    pub fn as_str(&self) -> &'static str {
        self.0.as_str()
    }
}

impl Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Sym {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Sym {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Default for Sym {
    fn default() -> Self {
        Sym::new("")
    }
}

// Equal texts are one cache entry, so equality stays the pointer compare
// derived above; order and hash follow the text so that `Sym` keys sort and
// look up exactly as the `String`s they replace.
impl Ord for Sym {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            Ordering::Equal
        } else {
            self.as_str().cmp(other.as_str())
        }
    }
}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Sym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl From<&str> for Sym {
    fn from(s: &str) -> Self {
        Sym::new(s)
    }
}

impl From<&String> for Sym {
    fn from(s: &String) -> Self {
        Sym::new(s)
    }
}

impl From<String> for Sym {
    fn from(s: String) -> Self {
        Sym::new(&s)
    }
}

impl From<Sym> for String {
    fn from(s: Sym) -> Self {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Sym {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Sym> for str {
    fn eq(&self, other: &Sym) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Sym> for &str {
    fn eq(&self, other: &Sym) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Sym> for String {
    fn eq(&self, other: &Sym) -> bool {
        self == other.as_str()
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Sym {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Sym {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Sym;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sym, E> {
                Ok(Sym::new(v))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn equal_texts_are_one_entry_and_order_as_text() {
        let a = Sym::new("paid_search");
        let b = Sym::from(String::from("paid_search"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Sym::new("paid_social"));
        // Created in a shuffled order (and spread over the cache's bins), so
        // an order by address would not be the order of the texts.
        let texts: Vec<String> = (0..200)
            .map(|i| format!("sym-order-{:03}", (i * 37) % 200))
            .collect();
        let set: BTreeSet<Sym> = texts.iter().map(Sym::from).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        let got: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
        assert_eq!(got, sorted);
    }

    #[test]
    fn looks_up_by_str_and_round_trips_through_json() {
        let mut counts: HashMap<Sym, u32> = HashMap::new();
        *counts.entry(Sym::new("webinar")).or_default() += 2;
        assert_eq!(counts.get("webinar"), Some(&2));
        let json = serde_json::to_string(&Sym::new("ad \"click\"")).unwrap();
        assert_eq!(json, r#""ad \"click\"""#);
        let back: Sym = serde_json::from_str(&json).unwrap();
        assert_eq!(back, "ad \"click\"");
        assert_eq!(format!("{:?}", Sym::new("x")), r#""x""#);
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 8);
    }
}
