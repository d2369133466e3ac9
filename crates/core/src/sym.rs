//! Interned strings for the categorical fields of the history.
//!
//! A large history holds tens of millions of rows whose text fields take a
//! few dozen values: a touch's kind, channel, campaign, source and medium, a
//! transition's stages, actor and reason, a person's persona, segment and
//! owner. As `String`s each copy costs 24 bytes plus a heap block; ten million
//! touches held 3 GB of them in `tandem serve`. A [`Sym`] is the number of its
//! text in a process-wide table that keeps one copy of each distinct text,
//! so `Option<Sym>` is 4 bytes and copying or comparing one is an integer
//! operation. (It was a pointer, 8 bytes, until the five of a touch and the
//! four of a transition were a fifth of the large history's memory.)
//!
//! The table never frees a text (that is what makes a `Sym` `Copy`). That is
//! why only fields with few distinct values are `Sym`s: names, e-mail
//! addresses, free-text notes and external ids stay owned strings, so the
//! table holds no one's name or address and does not grow with every new
//! person.
//!
//! A `Sym` behaves as the text it holds: it dereferences to `str`, orders and
//! hashes as that `str` (so maps keyed by `Sym` can be read with a `&str`),
//! prints and serializes as a plain string.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{LazyLock, Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fxhash::{FxHashMap, FxHasher, Recent};

/// An interned string (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sym(NonZeroU32);

/// Texts by number, read without a lock: segment `s` holds the numbers
/// `2^s .. 2^(s+1)`, allocated when the first of them is handed out and
/// never moved, so a number found in a `Sym` always has its text in place.
static TEXTS: [OnceLock<Box<[OnceLock<&'static str>]>>; 32] = [const { OnceLock::new() }; 32];

/// Numbers by text, in shards by hash so that threads interning different
/// texts rarely wait for each other.
const SHARDS: usize = 32;
type Shard = Mutex<FxHashMap<&'static str, NonZeroU32>>;
static NUMBERS: LazyLock<[Shard; SHARDS]> =
    LazyLock::new(|| std::array::from_fn(|_| Shard::default()));

thread_local! {
    /// The texts this thread interned lately ([`Sym::new`]).
    static LOCAL: std::cell::RefCell<Recent<&'static str, Sym>> =
        std::cell::RefCell::new(Recent::new(LOCAL_MAX));
}

/// Texts a thread remembers; past this its map starts over, so a thread
/// interning a stream of distinct texts holds a bounded copy of them.
const LOCAL_MAX: usize = 1 << 12;

/// The next number to hand out (numbers start at 1 for the niche).
static NEXT: AtomicU32 = AtomicU32::new(1);

/// The slot of number `n`: its segment and its place in it.
fn slot(n: NonZeroU32) -> (usize, usize) {
    let segment = 31 - n.leading_zeros();
    (segment as usize, (n.get() - (1 << segment)) as usize)
}

impl Sym {
    /// Interns `s` (a lookup when it was seen before, one allocation for
    /// the first copy).
    pub fn new(s: &str) -> Sym {
        // Most texts a thread interns it interned before (a title, a
        // country, a stage): its own map answers those without the
        // shared shard's lock, whose two atomic operations were most of
        // the cost of interning a row's fields.
        LOCAL.with(|local| {
            local.borrow_mut().get_or_make(s, || {
                let sym = Sym::shared(s);
                (sym.as_str(), sym)
            })
        })
    }

    /// [`Sym::new`] in the process-wide table.
    fn shared(s: &str) -> Sym {
        // The hash's high half picks the shard (Fx's low bits vary least).
        let hash = BuildHasherDefault::<FxHasher>::default().hash_one(s);
        let shard = (hash >> 32) as usize % SHARDS;
        let mut numbers = NUMBERS[shard].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = numbers.get(s) {
            return Sym(n);
        }
        let n = NEXT.fetch_add(1, AtomicOrdering::Relaxed);
        // Four billion distinct texts would not fit in memory first.
        #[allow(clippy::expect_used)]
        let n = NonZeroU32::new(n).expect("more than 4 billion distinct interned texts");
        let text: &'static str = Box::leak(s.into());
        let (segment, i) = slot(n);
        let texts = TEXTS[segment]
            .get_or_init(|| (0..1usize << segment).map(|_| OnceLock::new()).collect());
        // Set before the number is published (the shard's lock, then the
        // `Sym` itself), so every reader of `n` finds its text.
        let _ = texts[i].set(text);
        numbers.insert(text, n);
        Sym(n)
    }

    /// The text, borrowed for the life of the process.
    pub fn as_str(&self) -> &'static str {
        let (segment, i) = slot(self.0);
        // A `Sym` is made only after its text is stored (see `new`).
        #[allow(clippy::expect_used)]
        TEXTS[segment]
            .get()
            .and_then(|texts| texts[i].get())
            .expect("a Sym's text is stored before the Sym exists")
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

// Equal texts are one number, so equality stays the integer compare
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
        assert_eq!(Sym::new(""), Sym::default());
        assert_eq!(Sym::default().as_str(), "");
        assert_ne!(a, Sym::new("paid_social"));
        // Created in a shuffled order, so an order by number would not be
        // the order of the texts.
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
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }

    #[test]
    fn threads_interning_the_same_texts_get_the_same_syms() {
        // Texts across several segments of the table, more than twice what
        // a thread's own map keeps; four threads intern them in different
        // orders at once, twice (the second time partly from their maps).
        let texts: Vec<String> = (0..2 * LOCAL_MAX + 100)
            .map(|i| format!("sym-thread-{i}"))
            .collect();
        let runs: Vec<Vec<Sym>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let texts = &texts;
                    scope.spawn(move || {
                        let mut order: Vec<usize> = (0..texts.len()).collect();
                        if t % 2 == 1 {
                            order.reverse();
                        }
                        let mut out = vec![Sym::default(); texts.len()];
                        for &i in &order {
                            out[i] = Sym::new(&texts[i]);
                        }
                        for &i in &order {
                            assert_eq!(Sym::new(&texts[i]), out[i]);
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for run in &runs {
            assert_eq!(run, &runs[0]);
        }
        for (sym, text) in runs[0].iter().zip(&texts) {
            assert_eq!(sym.as_str(), text);
        }
        let distinct: std::collections::HashSet<Sym> = runs[0].iter().copied().collect();
        assert_eq!(distinct.len(), texts.len());
    }
}
