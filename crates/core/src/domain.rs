//! The domain model of DESIGN §2: people, accounts, touches, activities,
//! deals, campaigns and stage transitions.
//!
//! Ids are assigned by the store; `external_id` is the id in the system the
//! record came from (CRM, marketing automation) and makes imports idempotent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::money::{Minor, Money};
use crate::sym::Sym;
use crate::time::Timestamp;

/// Free-form fields imported from a CRM column tandem has no field for.
pub type CustomFields = Map<String, Value>;

/// A person's or account's [`CustomFields`], in 8 bytes: most have none,
/// and an empty map took 24 bytes of each of the large demo's 1.2M
/// people. It reads as the map (`Deref`; empty when there are none),
/// makes one on the first write (`DerefMut`), and compares, prints and
/// serializes as the map.
#[derive(Clone, Default)]
pub struct Custom(Option<Box<CustomFields>>);

/// The map of a [`Custom`] that has none.
static NO_CUSTOM: std::sync::LazyLock<CustomFields> = std::sync::LazyLock::new(Map::new);

impl std::ops::Deref for Custom {
    type Target = CustomFields;

    fn deref(&self) -> &CustomFields {
        self.0.as_deref().unwrap_or(&NO_CUSTOM)
    }
}

impl std::ops::DerefMut for Custom {
    fn deref_mut(&mut self) -> &mut CustomFields {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<CustomFields> for Custom {
    fn from(m: CustomFields) -> Self {
        Custom((!m.is_empty()).then(|| Box::new(m)))
    }
}

impl From<Custom> for CustomFields {
    fn from(c: Custom) -> Self {
        c.0.map(|m| *m).unwrap_or_default()
    }
}

impl<'a> IntoIterator for &'a Custom {
    type Item = (&'a String, &'a Value);
    type IntoIter = serde_json::map::Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        (**self).iter()
    }
}

impl PartialEq for Custom {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for Custom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Custom {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CustomFields::deserialize(d).map(Custom::from)
    }
}

/// A human: lead or contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Person {
    pub id: i64,
    /// The external id, e-mail and names, in one allocation (read them
    /// with [`Person::external_id`], [`Person::email`], …); serialized as
    /// those four fields.
    #[serde(flatten)]
    pub texts: PersonTexts,
    pub title: Option<Sym>,
    pub account_id: Option<i64>,
    pub persona: Option<Sym>,
    pub segment: Option<Sym>,
    pub country: Option<Sym>,
    /// Lead source (organic_search, paid_search, event, …).
    pub source: Option<Sym>,
    /// The seller or SDR who owns the lead.
    pub owner: Option<Sym>,
    pub created_at: Timestamp,
    pub custom: Custom,
}

impl Person {
    /// The id in the system the person came from.
    pub fn external_id(&self) -> &str {
        self.texts.external_id()
    }

    /// The e-mail address, if known.
    pub fn email(&self) -> Option<&str> {
        self.texts.email()
    }

    /// The first name, if known.
    pub fn first_name(&self) -> Option<&str> {
        self.texts.first_name()
    }

    /// The last name, if known.
    pub fn last_name(&self) -> Option<&str> {
        self.texts.last_name()
    }
}

/// A person's four texts (external id, e-mail, first and last name) in
/// one block: each as its length in decimal and a `:` before its text, or
/// a `-` when it is not known.
///
/// A kept history holds every person (1.2M on the large demo) and edits
/// none in place. As four boxed `str`s the texts took 64 bytes of the
/// person and four heap blocks (about 63 bytes of text in 80 of blocks);
/// in one block, 16 bytes and one block of about 75.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PersonTexts(Box<str>);

impl PersonTexts {
    /// The texts of a person.
    pub fn new(
        external_id: &str,
        email: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Self {
        use std::fmt::Write;
        let fields = [Some(external_id), email, first_name, last_name];
        let len: usize = fields.iter().flatten().map(|t| t.len() + 4).sum();
        let mut s = String::with_capacity(len);
        for f in fields {
            match f {
                // Writing to a String cannot fail.
                Some(t) => {
                    let _ = write!(s, "{}:{t}", t.len());
                }
                None => s.push('-'),
            }
        }
        PersonTexts(s.into_boxed_str())
    }

    /// Text `k` (0: external id, 1: e-mail, 2: first, 3: last name).
    fn field(&self, k: usize) -> Option<&str> {
        let mut rest: &str = &self.0;
        for i in 0..=k {
            let text;
            (text, rest) = match rest.strip_prefix('-') {
                Some(after) => (None, after),
                None => {
                    let (len, after) = rest.split_once(':')?;
                    let len: usize = len.parse().ok()?;
                    (Some(after.get(..len)?), after.get(len..)?)
                }
            };
            if i == k {
                return text;
            }
        }
        None
    }

    /// The id in the system the person came from.
    pub fn external_id(&self) -> &str {
        self.field(0).unwrap_or_default()
    }

    /// The e-mail address, if known.
    pub fn email(&self) -> Option<&str> {
        self.field(1)
    }

    /// The first name, if known.
    pub fn first_name(&self) -> Option<&str> {
        self.field(2)
    }

    /// The last name, if known.
    pub fn last_name(&self) -> Option<&str> {
        self.field(3)
    }

    /// These texts with each unknown e-mail or name taken from `older`
    /// (the external id stays this one's): an update that does not send
    /// a text keeps the stored one.
    pub fn or(&self, older: &PersonTexts) -> PersonTexts {
        let (email, first, last) = (self.email(), self.first_name(), self.last_name());
        if email.is_some() && first.is_some() && last.is_some() {
            return self.clone();
        }
        PersonTexts::new(
            self.external_id(),
            email.or(older.email()),
            first.or(older.first_name()),
            last.or(older.last_name()),
        )
    }

    fn fields(&self) -> TextFields<'_> {
        TextFields {
            external_id: self.external_id(),
            email: self.email(),
            first_name: self.first_name(),
            last_name: self.last_name(),
        }
    }
}

/// [`PersonTexts`] as the four fields they serialize and print as.
#[derive(Debug, Serialize, Deserialize)]
struct TextFields<'a> {
    external_id: &'a str,
    email: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
}

/// [`TextFields`] owned, for reading (a text may need unescaping).
#[derive(Deserialize)]
struct OwnedTextFields {
    external_id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl std::fmt::Debug for PersonTexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fields().fmt(f)
    }
}

impl Serialize for PersonTexts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PersonTexts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = OwnedTextFields::deserialize(d)?;
        Ok(PersonTexts::new(
            &t.external_id,
            t.email.as_deref(),
            t.first_name.as_deref(),
            t.last_name.as_deref(),
        ))
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::from_millis(0)
    }
}

/// A company.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Account {
    pub id: i64,
    pub external_id: String,
    pub name: Option<String>,
    pub domain: Option<String>,
    pub industry: Option<Sym>,
    pub employees: Option<i64>,
    /// Annual revenue in minor units of the playbook currency.
    pub annual_revenue: Option<i64>,
    pub segment: Option<Sym>,
    /// On a target-account (ABM) list.
    pub target: bool,
    pub tier: Option<i64>,
    pub owner: Option<Sym>,
    pub custom: Custom,
}

/// One marketing interaction with a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Touch {
    pub id: i64,
    pub external_id: Option<Box<str>>,
    pub person_id: i64,
    pub at: Timestamp,
    /// What happened: `web_visit`, `email_open`, `email_click`, `form_fill`,
    /// `demo_request`, `webinar`, `ad_click`, `event`, `content_download`, …
    pub kind: Sym,
    /// Channel id from the playbook; derived from the channel rules when empty.
    pub channel: Option<Sym>,
    pub campaign: Option<Sym>,
    pub source: Option<Sym>,
    pub medium: Option<Sym>,
    /// Cost of this touch in minor units, when known (paid media).
    pub cost: Option<Minor>,
}

/// The kinds of sales activity (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Demo,
}

impl ActivityKind {
    /// All kinds, in display order.
    pub const ALL: [ActivityKind; 4] = [
        ActivityKind::Call,
        ActivityKind::Email,
        ActivityKind::Meeting,
        ActivityKind::Demo,
    ];

    /// The lower-case name used in files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Call => "call",
            ActivityKind::Email => "email",
            ActivityKind::Meeting => "meeting",
            ActivityKind::Demo => "demo",
        }
    }

    /// Parses `call`, `Email`, `MEETING`, `demo`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// One sales interaction with a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: i64,
    pub external_id: Option<Box<str>>,
    pub person_id: i64,
    pub at: Timestamp,
    pub kind: ActivityKind,
    /// Who did it (seller, SDR).
    pub actor: Option<Sym>,
    pub outcome: Option<Sym>,
}

/// Where a deal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

impl DealStatus {
    /// The lower-case name used in files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
        }
    }

    /// Parses `open`, `won`, `lost` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Some(DealStatus::Open),
            "won" => Some(DealStatus::Won),
            "lost" => Some(DealStatus::Lost),
            _ => None,
        }
    }
}

/// An opportunity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub id: i64,
    pub external_id: String,
    pub account_id: Option<i64>,
    pub person_id: Option<i64>,
    pub name: Option<String>,
    pub amount: Money,
    pub created_at: Timestamp,
    /// When it was won or lost (or is expected to close while open).
    pub closed_at: Option<Timestamp>,
    pub status: DealStatus,
    /// Reason code when lost.
    pub lost_reason: Option<Sym>,
    pub owner: Option<Sym>,
    /// `new`, `renewal` or `expansion`.
    pub kind: Sym,
}

/// A marketing campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Campaign {
    pub id: i64,
    pub external_id: String,
    pub name: String,
    pub channel: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    /// Planned budget in minor units.
    pub budget: Option<i64>,
    /// Actual cost so far in minor units.
    pub cost: Option<i64>,
    pub persona: Option<String>,
    pub segment: Option<String>,
    pub owner: Option<String>,
}

/// What moves through the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    Person(i64),
    Account(i64),
}

impl Subject {
    /// `"person"` or `"account"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Person(_) => "person",
            Subject::Account(_) => "account",
        }
    }

    /// The store id of the person or account.
    pub fn id(&self) -> i64 {
        match self {
            Subject::Person(id) | Subject::Account(id) => *id,
        }
    }

    /// The account `id` when `account`, else the person: a subject kept
    /// by column as an id and a flag.
    pub fn of(id: i64, account: bool) -> Subject {
        if account {
            Subject::Account(id)
        } else {
            Subject::Person(id)
        }
    }

    /// Whether it is an account.
    pub fn is_account(&self) -> bool {
        matches!(self, Subject::Account(_))
    }
}

/// One appended stage change. The current stage of a subject is the `to` of
/// its last transition; nothing is updated in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Store sequence number; orders transitions that share an instant.
    pub seq: i64,
    pub subject: Subject,
    pub from: Option<Sym>,
    pub to: Sym,
    pub at: Timestamp,
    /// Who moved it: `system` for automatic entry, `import`, or a user name.
    pub actor: Sym,
    pub reason: Option<Sym>,
    pub note: Option<Note>,
    /// 1 for the first pass through the funnel, +1 after each recycle.
    pub cycle: u32,
    /// True when the subject passed through this stage on the way to a later
    /// one in the same move (a skipped stage, DESIGN §4).
    pub skipped: bool,
}

/// A transition's free-text note, kept behind one pointer.
///
/// Every analytic holds every transition (3.6M of them in the large demo)
/// and few carry a note: as an `Option<Box<str>>` the field took 16 bytes
/// of each, as a `Note` it takes 8, and with the cycle in a `u32` a
/// transition is 64 bytes instead of 80. The price is a second allocation
/// for a note that is there. It reads, prints and serializes as its text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Note(Box<Box<str>>);

impl std::ops::Deref for Note {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl From<&str> for Note {
    fn from(s: &str) -> Self {
        Note(Box::new(s.into()))
    }
}

impl From<String> for Note {
    fn from(s: String) -> Self {
        Note(Box::new(s.into_boxed_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every analytic holds every transition: a field that widens it
    /// costs 3.6M copies on the large demo.
    #[test]
    fn a_transition_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Transition>(), 64);
        assert_eq!(std::mem::size_of::<Option<Note>>(), 8);
    }

    /// A kept history holds every person.
    #[test]
    fn a_person_is_80_bytes() {
        assert_eq!(std::mem::size_of::<Person>(), 80);
        assert_eq!(std::mem::size_of::<Custom>(), 8);
    }

    /// Custom fields read as their map whether there are some or none,
    /// and an empty map and none are the same.
    #[test]
    fn custom_reads_and_writes_as_its_map() {
        let mut c = Custom::default();
        assert!(c.is_empty() && c.get("plan").is_none());
        assert_eq!(c, Custom::from(CustomFields::new()));
        assert_eq!(serde_json::to_string(&c).unwrap(), "{}");
        c.insert("plan".into(), "pro".into());
        assert_eq!(c["plan"], "pro");
        assert_eq!((&c).into_iter().count(), 1);
        assert_eq!(format!("{c:?}"), format!("{:?}", *c));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"plan":"pro"}"#);
        let back: Custom = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(CustomFields::from(back)["plan"], "pro");
    }

    /// Texts read back as written, whatever they hold (digits, colons,
    /// dashes, nothing, multi-byte characters), and serialize as the four
    /// fields they were.
    #[test]
    fn person_texts_read_back_and_serialize_as_four_fields() {
        type Texts<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let cases: [Texts; 5] = [
            ("p1", Some("ana@x.example"), Some("Ana"), Some("Lima")),
            ("", None, None, None),
            ("12:-", Some(""), Some("-"), Some("3:ab")),
            ("Zoë-ü", None, Some("Łukasz"), None),
            ("x", Some("a:b-c"), None, Some("")),
        ];
        for (ext, email, first, last) in cases {
            let t = PersonTexts::new(ext, email, first, last);
            let got = (t.external_id(), t.email(), t.first_name(), t.last_name());
            assert_eq!(got, (ext, email, first, last));
            let p = Person {
                id: 7,
                texts: t.clone(),
                ..Person::default()
            };
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(json["external_id"], ext);
            assert_eq!(json["email"], serde_json::json!(email));
            assert_eq!(json["first_name"], serde_json::json!(first));
            assert_eq!(json["last_name"], serde_json::json!(last));
            let back: Person = serde_json::from_value(json).unwrap();
            assert_eq!(back, p);
        }
        let old = PersonTexts::new("old", Some("o@x"), Some("Olga"), Some("Orr"));
        let new = PersonTexts::new("new", None, Some("Nia"), None);
        let kept = new.or(&old);
        let got = (
            kept.external_id(),
            kept.email(),
            kept.first_name(),
            kept.last_name(),
        );
        assert_eq!(got, ("new", Some("o@x"), Some("Nia"), Some("Orr")));
    }

    #[test]
    fn a_note_reads_and_serializes_as_its_text() {
        let n = Note::from("called twice, no answer");
        assert_eq!(&*n, "called twice, no answer");
        assert_eq!(format!("{n:?}"), "\"called twice, no answer\"");
        let json = serde_json::to_string(&Some(n.clone())).unwrap();
        assert_eq!(json, "\"called twice, no answer\"");
        let back: Option<Note> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Some(n));
    }
}
