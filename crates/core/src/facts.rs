//! What tandem knows about one person at one instant, as CEL variables.

use std::cell::RefCell;

use serde_json::{json, Value};

use crate::domain::{Account, Activity, ActivityKind, Deal, DealStatus, Person, Touch};
use crate::fxhash::{FxHashMap, Recent};
use crate::metrics::retention::DealKind;
use crate::money::Minor;
use crate::playbook::criteria::{json_to_cel, object_to_cel};
use crate::playbook::{Criterion, Playbook, Read, Var, Vars};
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::touches::TouchRef;

/// Everything stored about one person that the lifecycle and scoring read.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub person: &'a Person,
    pub account: Option<&'a Account>,
    /// Touches in any order.
    pub touches: &'a [Touch],
    /// Activities in any order.
    pub activities: &'a [Activity],
    /// Deals linked to the person (directly or as the account's contact).
    pub deals: &'a [Deal],
}

/// The `person` variable.
pub fn person_value(p: &Person) -> Value {
    let name = full_name(p);
    json!({
        "id": p.id,
        "external_id": p.external_id(),
        "email": p.email(),
        "first_name": p.first_name(),
        "last_name": p.last_name(),
        "name": name,
        "title": p.title,
        "persona": p.persona,
        "segment": p.segment,
        "country": p.country,
        "source": p.source,
        "owner": p.owner,
        "created_at": p.created_at.millis(),
        "custom": Value::Object((*p.custom).clone()),
    })
}

/// The `account` variable; every field is null when the person has none.
pub fn account_value(a: Option<&Account>) -> Value {
    match a {
        Some(a) => json!({
            "id": a.id,
            "external_id": a.external_id,
            "name": a.name,
            "domain": a.domain,
            "industry": a.industry,
            "employees": a.employees,
            "annual_revenue": a.annual_revenue,
            "segment": a.segment,
            "target": a.target,
            "tier": a.tier,
            "owner": a.owner,
            "custom": Value::Object((*a.custom).clone()),
        }),
        None => json!({
            "id": null, "external_id": null, "name": null, "domain": null, "industry": null,
            "employees": null, "annual_revenue": null, "segment": null, "target": false,
            "tier": null, "owner": null, "custom": {},
        }),
    }
}

/// `person.name`: first and last name, whichever are known.
fn full_name(p: &Person) -> Option<String> {
    match (p.first_name(), p.last_name()) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.to_string()),
        (None, Some(l)) => Some(l.to_string()),
        (None, None) => None,
    }
}

/// [`person_value`] converted to CEL ([`json_to_cel`]), built without the
/// JSON object in between: one CEL map of shared keys instead of a JSON
/// tree of new strings that is then copied. Evaluating a new person's
/// profile (import, the demo generator) spent a sixth of its time building
/// and converting the two objects.
pub fn person_cel(p: &Person) -> cel::Value {
    person_cel_of(p, &Read::Whole)
}

/// [`person_cel`] with only the fields `read` names (all of them for
/// [`Read::Whole`], none for [`Read::Nothing`]). An expression that only
/// selects some fields cannot tell this map from the full one, and a
/// criterion's memo keys on the fields it reads, so it is the full map to
/// every criterion whose reads are within `read`.
pub fn person_cel_of(p: &Person, read: &Read) -> cel::Value {
    let mut m = CelMap::new(match read {
        Read::Whole => 14,
        Read::Nothing => 0,
        Read::Fields(fs) => fs.len(),
    });
    m.only = match read {
        Read::Whole => None,
        Read::Nothing => Some(&[]),
        Read::Fields(fs) => Some(fs.as_slice()),
    };
    let name = if m.keeps("name") { full_name(p) } else { None };
    let custom = if m.keeps("custom") {
        object_to_cel(&p.custom)
    } else {
        cel::Value::Null
    };
    m.int("id", Some(p.id))
        .text("external_id", Some(p.external_id()))
        .text("email", p.email())
        .text("first_name", p.first_name())
        .text("last_name", p.last_name())
        .owned("name", name)
        .sym("title", p.title)
        .sym("persona", p.persona)
        .sym("segment", p.segment)
        .sym("country", p.country)
        .sym("source", p.source)
        .sym("owner", p.owner)
        .int("created_at", Some(p.created_at.millis()))
        .value("custom", custom)
        .build()
}

/// The `score` variable of a stage entry, `{"fit", "engagement", "grade"}`,
/// built as CEL directly: the value [`json_to_cel`] gives of that JSON
/// (where a number that is not finite is null). A lead's engagement decays,
/// so this is built again at every instant its entry is evaluated.
pub fn score_cel(fit: f64, engagement: f64, grade: Option<&str>) -> cel::Value {
    let number = |x: f64| {
        if x.is_finite() {
            cel::Value::Float(x)
        } else {
            cel::Value::Null
        }
    };
    CelMap::new(3)
        .value("fit", number(fit))
        .value("engagement", number(engagement))
        .text("grade", grade)
        .build()
}

/// [`account_value`] converted to CEL, built directly (see [`person_cel`]).
pub fn account_cel(a: Option<&Account>) -> cel::Value {
    thread_local! {
        /// `account` of a person without one: the same value for every
        /// such person (most new leads), so converted once.
        static NO_ACCOUNT: cel::Value = json_to_cel(&account_value(None));
    }
    let Some(a) = a else {
        return NO_ACCOUNT.with(Clone::clone);
    };
    CelMap::new(12)
        .int("id", Some(a.id))
        .text("external_id", Some(&a.external_id))
        .text("name", a.name.as_deref())
        .text("domain", a.domain.as_deref())
        .sym("industry", a.industry)
        .int("employees", a.employees)
        .int("annual_revenue", a.annual_revenue)
        .sym("segment", a.segment)
        .value("target", cel::Value::Bool(a.target))
        .int("tier", a.tier)
        .sym("owner", a.owner)
        .value("custom", object_to_cel(&a.custom))
        .build()
}

/// A CEL map being built field by field, as [`json_to_cel`] converts the
/// same JSON object (a missing value is null).
struct CelMap<'r> {
    map: std::collections::HashMap<cel::objects::Key, cel::Value>,
    /// The only fields it takes, when not all.
    only: Option<&'r [&'static str]>,
}

impl<'r> CelMap<'r> {
    fn new(fields: usize) -> CelMap<'r> {
        CelMap {
            map: std::collections::HashMap::with_capacity(fields),
            only: None,
        }
    }

    /// Whether the map takes field `key`.
    fn keeps(&self, key: &str) -> bool {
        self.only.is_none_or(|fs| fs.contains(&key))
    }

    fn value(mut self, key: &'static str, v: cel::Value) -> CelMap<'r> {
        if self.keeps(key) {
            self.map.insert(field_key(key), v);
        }
        self
    }

    fn int(self, key: &'static str, v: Option<i64>) -> CelMap<'r> {
        self.value(key, v.map_or(cel::Value::Null, cel::Value::Int))
    }

    fn text(self, key: &'static str, v: Option<&str>) -> CelMap<'r> {
        // Copied only when kept.
        if !self.keeps(key) {
            return self;
        }
        self.owned(key, v.map(str::to_string))
    }

    /// [`CelMap::text`] of an interned value, whose CEL string is shared
    /// ([`sym_cel`]) instead of copied.
    fn sym(self, key: &'static str, v: Option<Sym>) -> CelMap<'r> {
        if !self.keeps(key) {
            return self;
        }
        self.value(key, v.map_or(cel::Value::Null, sym_cel))
    }

    fn owned(self, key: &'static str, v: Option<String>) -> CelMap<'r> {
        self.value(
            key,
            v.map_or(cel::Value::Null, |s| cel::Value::String(s.into())),
        )
    }

    fn build(self) -> cel::Value {
        cel::Value::Map(cel::objects::Map {
            map: std::sync::Arc::new(self.map),
        })
    }
}

/// `s` as a CEL string, allocated once per thread and value, then shared:
/// a person's title, country and source repeat across a million people,
/// and copying each into a string of its own was a twentieth of
/// evaluating a new lead.
fn sym_cel(s: Sym) -> cel::Value {
    /// Strings kept per thread; past this the cache starts over.
    const MAX: usize = 4096;
    thread_local! {
        static STRINGS: RefCell<Recent<Sym, std::sync::Arc<String>>> =
            RefCell::new(Recent::new(MAX));
    }
    let text = STRINGS.with(|strings| {
        strings
            .borrow_mut()
            .get_or_make(&s, || (s, std::sync::Arc::new(s.as_str().to_string())))
    });
    cel::Value::String(text)
}

/// The key `name` of a variable's map, allocated once per thread and name
/// and then shared.
fn field_key(name: &'static str) -> cel::objects::Key {
    thread_local! {
        static KEYS: RefCell<Vec<(&'static str, cel::objects::Key)>> = const { RefCell::new(Vec::new()) };
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some((_, k)) = keys
            .iter()
            .find(|(n, _)| std::ptr::eq(*n, name) || *n == name)
        {
            return k.clone();
        }
        let k = cel::objects::Key::String(std::sync::Arc::new(name.to_string()));
        keys.push((name, k.clone()));
        k
    })
}

/// The `touch` variable.
pub fn touch_value(t: &Touch) -> Value {
    json!({
        "kind": t.kind,
        "channel": t.channel,
        "campaign": t.campaign,
        "source": t.source,
        "medium": t.medium,
        "cost": t.cost,
    })
}

/// The `deal` variable: new-business deals created in `[since, at]` as they
/// stood at `at`. Renewals and expansions move the account's lifecycle, not
/// a lead's: a new contact at a customer account is not a won lead.
pub fn deal_value(deals: &[Deal], since: Timestamp, at: Timestamp) -> Value {
    DealFacts::of(deals, since, at).to_json()
}

/// What [`deal_value`] says, as numbers: a lead's entry is evaluated at
/// each of its instants, and comparing these with the last instant's is
/// cheaper than building the JSON each time (most new leads have no deal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DealFacts {
    pub count: i64,
    pub open: bool,
    pub won: bool,
    pub lost: bool,
    pub amount_won: i64,
}

impl DealFacts {
    /// The new-business deals of `deals` created in `[since, at]`, as they
    /// stood at `at`.
    pub fn of(deals: &[Deal], since: Timestamp, at: Timestamp) -> DealFacts {
        let mut f = DealFacts::default();
        for d in deals.iter().filter(|d| {
            d.created_at >= since && d.created_at <= at && DealKind::of(d) == DealKind::New
        }) {
            f.count += 1;
            let closed_by_now = d.closed_at.is_some_and(|c| c <= at);
            match d.status {
                DealStatus::Won if closed_by_now => {
                    f.won = true;
                    f.amount_won = f.amount_won.saturating_add(d.amount.minor);
                }
                DealStatus::Lost if closed_by_now => f.lost = true,
                _ => f.open = true,
            }
        }
        f
    }

    /// The `deal` variable.
    pub fn to_json(self) -> Value {
        json!({ "count": self.count, "open": self.open, "won": self.won, "lost": self.lost, "amount_won": self.amount_won })
    }
}

/// The `activity` variable: activity counts in `[since, at]`.
pub fn activity_value(activities: &[Activity], since: Timestamp, at: Timestamp) -> Value {
    ActivityFacts::of(activities, since, at).to_json()
}

/// What [`activity_value`] says, as numbers (see [`DealFacts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ActivityFacts {
    /// Per kind, in [`ActivityKind::ALL`] order.
    pub counts: [i64; 4],
}

impl ActivityFacts {
    /// The activities of `activities` in `[since, at]`, counted by kind.
    pub fn of(activities: &[Activity], since: Timestamp, at: Timestamp) -> ActivityFacts {
        let mut n = [0i64; 4];
        for a in activities.iter().filter(|a| a.at >= since && a.at <= at) {
            n[ActivityKind::ALL
                .iter()
                .position(|k| *k == a.kind)
                .unwrap_or(0)] += 1;
        }
        ActivityFacts { counts: n }
    }

    /// The `activity` variable.
    pub fn to_json(self) -> Value {
        let n = self.counts;
        json!({ "count": n.iter().sum::<i64>(), "calls": n[0], "emails": n[1], "meetings": n[2], "demos": n[3] })
    }
}

/// The first playbook channel whose rule matches the touch, or the touch's
/// own channel when it has one.
pub fn channel_of(pb: &Playbook, touch: &Touch, person: &Person) -> Option<String> {
    if let Some(c) = touch.channel {
        return Some(c.to_string());
    }
    let mut vars = Vars::new();
    vars.set(Var::Touch, &touch_value(touch))
        .set_cel(Var::Person, person_cel(person));
    pb.channels
        .iter()
        .find(|c| c.criterion.matches(&vars))
        .map(|c| c.id.clone())
}

/// [`channel_of`] for many touches: each answer is remembered, keyed by
/// only the touch fields (and person, if any) the channel rules read. The
/// starter playbook's rules read `touch.medium` and `touch.kind`, so a
/// history of a million touches needs a few dozen evaluations instead of a
/// million (each builds CEL values, which dominated attribution).
///
/// The answers are exactly [`channel_of`]'s: rules are pure functions of
/// the fields they read.
pub struct Channels<'a> {
    pb: &'a Playbook,
    /// Which touch fields the rules read (`kind`, `campaign`, `source`,
    /// `medium`, `cost`); `channel` is always unset when rules run.
    fields: [bool; 5],
    /// Whether the rules read the person: then the person's id is part of
    /// the key (its row is the person's whole value).
    person: bool,
    memo: RefCell<FxHashMap<ChannelKey, Option<String>>>,
}

/// Interned texts are `'static`.
type ChannelKey = ([Option<&'static str>; 4], Option<Option<i64>>, Option<i64>);

impl<'a> Channels<'a> {
    /// A resolver for `pb`'s channel rules.
    pub fn new(pb: &'a Playbook) -> Self {
        const NAMES: [&str; 5] = ["kind", "campaign", "source", "medium", "cost"];
        let mut fields = [false; 5];
        let mut person = false;
        for c in &pb.channels {
            let reads = c.criterion.reads();
            match reads.of(Var::Touch) {
                Read::Nothing => {}
                Read::Whole => fields = [true; 5],
                Read::Fields(fs) => {
                    for (i, n) in NAMES.iter().enumerate() {
                        fields[i] |= fs.contains(n);
                    }
                }
            }
            person |= reads.of(Var::Person) != Read::Nothing;
        }
        Channels {
            pb,
            fields,
            person,
            memo: RefCell::new(FxHashMap::default()),
        }
    }

    /// The touch's channel, as [`channel_of`] gives it; `person` is the
    /// touch's person (`touch.person_id`).
    pub fn of(&self, touch: TouchRef<'_>, person: &'a Person) -> Option<String> {
        self.with(touch, person, |c| c.map(str::to_string))
    }

    /// Calls `read` with the touch's channel ([`Channels::of`]) borrowed, so a
    /// caller that only reads it makes no copy.
    pub fn with<R>(
        &self,
        touch: TouchRef<'_>,
        person: &'a Person,
        read: impl FnOnce(Option<&str>) -> R,
    ) -> R {
        if let Some(c) = touch.channel {
            return read(Some(c.as_str()));
        }
        let f = &self.fields;
        let pick = |on: bool, v: Option<Sym>| if on { v.map(|s| s.as_str()) } else { None };
        let key: ChannelKey = (
            [
                f[0].then_some(touch.kind.as_str()),
                pick(f[1], touch.campaign),
                pick(f[2], touch.source),
                pick(f[3], touch.medium),
            ],
            f[4].then_some(touch.cost.map(Minor::get)),
            // The touch's own copy of the person's id: reading `person.id`
            // would cost a cache miss per touch (a random person each time),
            // even for rules that ignore the person, as the load is hoisted.
            self.person.then_some(touch.person_id),
        );
        if let Some(hit) = self.memo.borrow().get(&key) {
            return read(hit.as_deref());
        }
        // A miss (a few dozen per history) evaluates the rules on the row.
        let found = channel_of(self.pb, &touch.to_touch(), person);
        let out = read(found.as_deref());
        self.memo.borrow_mut().insert(key, found);
        out
    }
}

/// [`classify`] for many people: each answer is remembered, keyed by only
/// the person and account fields the persona (or segment) rules read. The
/// starter playbook's persona rules read the title alone, so 100,000 people
/// share a few hundred keys. The answers are exactly [`classify`]'s.
pub struct Classes<'a> {
    personas: FirstMatch<'a>,
    segments: FirstMatch<'a>,
}

/// The first of a list of profile rules (over `person` and `account`) that
/// matches a person, remembered per distinct value of the fields the rules
/// read.
pub struct FirstMatch<'a> {
    rules: Vec<(&'a str, &'a Criterion)>,
    person: Read,
    account: Read,
    memo: RefCell<FxHashMap<String, Option<String>>>,
}

impl<'a> FirstMatch<'a> {
    /// The rules `(id, criterion)`, first match wins.
    pub fn new(rules: Vec<(&'a str, &'a Criterion)>) -> Self {
        let (mut person, mut account) = (Read::Nothing, Read::Nothing);
        for (_, c) in &rules {
            let r = c.reads();
            person = person.union(r.of(Var::Person));
            account = account.union(r.of(Var::Account));
        }
        FirstMatch {
            rules,
            person,
            account,
            memo: RefCell::new(FxHashMap::default()),
        }
    }

    fn of_matchers(matchers: &'a [crate::playbook::Matcher]) -> Self {
        FirstMatch::new(
            matchers
                .iter()
                .map(|m| (m.id.as_str(), &m.criterion))
                .collect(),
        )
    }

    /// The id of the first rule that holds for the person and account.
    pub fn of(&self, person: &Person, account: Option<&Account>) -> Option<String> {
        let mut key = String::new();
        key_of_person(&mut key, person, &self.person);
        key.push('\u{1e}');
        key_of_account(&mut key, account, &self.account);
        if let Some(hit) = self.memo.borrow().get(&key) {
            return hit.clone();
        }
        let mut vars = Vars::new();
        vars.set(Var::Person, &person_value(person))
            .set(Var::Account, &account_value(account));
        let found = self
            .rules
            .iter()
            .find(|(_, c)| c.matches(&vars))
            .map(|(id, _)| id.to_string());
        self.memo.borrow_mut().insert(key, found.clone());
        found
    }
}

impl<'a> Classes<'a> {
    /// A resolver for `pb`'s persona and segment rules.
    pub fn new(pb: &'a Playbook) -> Self {
        Classes {
            personas: FirstMatch::of_matchers(&pb.personas),
            segments: FirstMatch::of_matchers(&pb.segments),
        }
    }

    /// The person's persona by the rules, as [`classify`] gives it (a
    /// stored persona is the caller's to prefer).
    pub fn persona(&self, person: &Person, account: Option<&Account>) -> Option<String> {
        self.personas.of(person, account)
    }

    /// The person's segment by the rules, as [`classify`] gives it.
    pub fn segment(&self, person: &Person, account: Option<&Account>) -> Option<String> {
        self.segments.of(person, account)
    }
}

/// Appends the `Debug` text of the fields of `p` that `read` names
/// (unambiguous: strings are quoted and escaped).
fn key_of_person(key: &mut String, p: &Person, read: &Read) {
    use std::fmt::Write;
    let fields = match read {
        Read::Nothing => return,
        Read::Whole => {
            let _ = write!(key, "{p:?}");
            return;
        }
        Read::Fields(fs) => fs,
    };
    for f in fields {
        let _ = match *f {
            "id" => write!(key, "{:?}", p.id),
            "external_id" => write!(key, "{:?}", p.external_id()),
            "email" => write!(key, "{:?}", p.email()),
            "first_name" | "last_name" | "name" => {
                write!(key, "{:?}{:?}", p.first_name(), p.last_name())
            }
            "title" => write!(key, "{:?}", p.title),
            "persona" => write!(key, "{:?}", p.persona),
            "segment" => write!(key, "{:?}", p.segment),
            "country" => write!(key, "{:?}", p.country),
            "source" => write!(key, "{:?}", p.source),
            "owner" => write!(key, "{:?}", p.owner),
            "created_at" => write!(key, "{:?}", p.created_at),
            "custom" => write!(key, "{:?}", p.custom),
            _ => write!(key, "{p:?}"),
        };
        key.push('\u{1f}');
    }
}

/// As [`key_of_person`], for the account (or its absence).
fn key_of_account(key: &mut String, a: Option<&Account>, read: &Read) {
    use std::fmt::Write;
    let fields = match (read, a) {
        (Read::Nothing, _) => return,
        (_, None) => {
            key.push_str("None");
            return;
        }
        (Read::Whole, Some(a)) => {
            let _ = write!(key, "{a:?}");
            return;
        }
        (Read::Fields(fs), Some(_)) => fs,
    };
    let Some(a) = a else { return };
    for f in fields {
        let _ = match *f {
            "id" => write!(key, "{:?}", a.id),
            "external_id" => write!(key, "{:?}", a.external_id),
            "name" => write!(key, "{:?}", a.name),
            "domain" => write!(key, "{:?}", a.domain),
            "industry" => write!(key, "{:?}", a.industry),
            "employees" => write!(key, "{:?}", a.employees),
            "annual_revenue" => write!(key, "{:?}", a.annual_revenue),
            "segment" => write!(key, "{:?}", a.segment),
            "target" => write!(key, "{:?}", a.target),
            "tier" => write!(key, "{:?}", a.tier),
            "owner" => write!(key, "{:?}", a.owner),
            "custom" => write!(key, "{:?}", a.custom),
            _ => write!(key, "{a:?}"),
        };
        key.push('\u{1f}');
    }
}

/// The first persona and segment whose rules match.
pub fn classify(
    pb: &Playbook,
    person: &Person,
    account: Option<&Account>,
) -> (Option<String>, Option<String>) {
    let mut vars = Vars::new();
    vars.set_cel(Var::Person, person_cel(person))
        .set_cel(Var::Account, account_cel(account));
    let persona = pb
        .personas
        .iter()
        .find(|m| m.criterion.matches(&vars))
        .map(|m| m.id.clone());
    let segment = pb
        .segments
        .iter()
        .find(|m| m.criterion.matches(&vars))
        .map(|m| m.id.clone());
    (persona, segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PersonTexts;
    use crate::money::{Currency, Money};

    #[test]
    fn cel_variables_are_the_json_ones_converted() {
        let mut custom = serde_json::Map::new();
        custom.insert("plan".into(), json!("pro"));
        custom.insert("seats".into(), json!(12));
        custom.insert("nested".into(), json!({"a": [1, 2.5, null, true]}));
        let people = [
            Person::default(),
            Person {
                id: 7,
                texts: PersonTexts::new(
                    "p-7",
                    Some("ada@example.com"),
                    Some("Ada"),
                    Some("Lovelace"),
                ),
                title: Some("CTO".into()),
                account_id: Some(3),
                persona: Some("tech_buyer".into()),
                segment: Some("enterprise".into()),
                country: Some("GB".into()),
                source: Some("paid_search".into()),
                owner: Some("sam".into()),
                created_at: Timestamp::from_millis(1_700_000_000_123),
                custom: custom.clone().into(),
            },
            Person {
                texts: PersonTexts::new("", None, Some("Ada"), None),
                ..Person::default()
            },
            Person {
                texts: PersonTexts::new("", None, None, Some("Lovelace")),
                ..Person::default()
            },
        ];
        for p in &people {
            assert_eq!(person_cel(p), json_to_cel(&person_value(p)), "{p:?}");
            // Restricted to some fields: exactly those of the full map.
            let full = person_cel(p);
            let cel::Value::Map(full) = &full else {
                panic!("not a map")
            };
            for fields in [
                vec![],
                vec!["email"],
                vec!["title", "country", "name"],
                vec!["custom", "created_at", "id"],
            ] {
                let got = person_cel_of(p, &Read::Fields(fields.clone()));
                let cel::Value::Map(got) = &got else {
                    panic!("not a map")
                };
                let want: std::collections::HashMap<_, _> = full
                    .map
                    .iter()
                    .filter(|(k, _)| {
                        matches!(k, cel::objects::Key::String(s) if fields.contains(&s.as_str()))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(*got.map, want, "{fields:?} of {p:?}");
                assert_eq!(got.map.len(), fields.len());
            }
            assert_eq!(person_cel_of(p, &Read::Whole), person_cel(p));
            let cel::Value::Map(none) = person_cel_of(p, &Read::Nothing) else {
                panic!("not a map")
            };
            assert!(none.map.is_empty());
        }
        let accounts = [
            Account::default(),
            Account {
                id: 3,
                external_id: "a-3".into(),
                name: Some("Acme".into()),
                domain: Some("acme.example".into()),
                industry: Some("software".into()),
                employees: Some(1_200),
                annual_revenue: Some(-5),
                segment: Some("enterprise".into()),
                target: true,
                tier: Some(1),
                owner: Some("sam".into()),
                custom: custom.into(),
            },
        ];
        for a in &accounts {
            assert_eq!(
                account_cel(Some(a)),
                json_to_cel(&account_value(Some(a))),
                "{a:?}"
            );
        }
        assert_eq!(account_cel(None), json_to_cel(&account_value(None)));
        for (fit, engagement, grade) in [
            (45.0, 30.0, Some("A")),
            (0.0, 12.345, None),
            (-0.0, f64::NAN, Some("")),
            (f64::INFINITY, 1e300, Some("D")),
        ] {
            assert_eq!(
                score_cel(fit, engagement, grade),
                json_to_cel(&json!({ "fit": fit, "engagement": engagement, "grade": grade })),
                "{fit} {engagement} {grade:?}"
            );
        }
    }

    fn won(kind: &str, minor: i64) -> Deal {
        Deal {
            id: 1,
            external_id: format!("d-{kind}"),
            account_id: Some(1),
            person_id: None,
            name: None,
            amount: Money {
                minor,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: Timestamp::from_millis(1_000),
            closed_at: Some(Timestamp::from_millis(2_000)),
            status: DealStatus::Won,
            lost_reason: None,
            owner: None,
            kind: kind.into(),
        }
    }

    #[test]
    fn only_new_business_deals_feed_a_lead() {
        let deals = [
            won("renewal", 500_00),
            won("expansion", 200_00),
            won("new", 100_00),
        ];
        let v = deal_value(
            &deals,
            Timestamp::from_millis(0),
            Timestamp::from_millis(3_000),
        );
        assert_eq!(v["count"], 1);
        assert_eq!(v["amount_won"], 100_00);
        let v = deal_value(
            &deals[..2],
            Timestamp::from_millis(0),
            Timestamp::from_millis(3_000),
        );
        assert_eq!(v["count"], 0);
        assert_eq!(v["won"], false);
    }

    fn pb(extra: &str) -> Playbook {
        let src = format!("{}\n{extra}", crate::playbook::STARTER);
        Playbook::load(&src).playbook.expect("playbook loads")
    }

    /// Touches and people that vary every field the rules could read.
    fn varied() -> (Vec<Person>, Vec<Touch>) {
        let titles = [
            None,
            Some("VP Sales"),
            Some("RevOps lead"),
            Some("Data Analyst"),
        ];
        let people: Vec<Person> = (0..8)
            .map(|i| Person {
                id: i,
                texts: PersonTexts::new(&format!("p{i}"), None, None, None),
                title: titles[i as usize % 4].map(Sym::from),
                source: (i % 3 == 0).then(|| "partner".into()),
                ..Person::default()
            })
            .collect();
        let mediums = [
            None,
            Some("cpc"),
            Some("email"),
            Some("organic"),
            Some("referral"),
            Some("banner"),
        ];
        let kinds = ["web_visit", "webinar", "ad_click", "event"];
        let mut touches = Vec::new();
        for i in 0..96_i64 {
            touches.push(Touch {
                id: i,
                person_id: i % 8,
                kind: kinds[i as usize % 4].into(),
                medium: mediums[i as usize % 6].map(Sym::from),
                source: (i % 5 == 0).then(|| "google".into()),
                cost: (i % 7 == 0).then_some(Minor::new(i * 10)),
                channel: (i % 11 == 0).then(|| "stored".into()),
                ..Touch::default()
            });
        }
        (people, touches)
    }

    #[test]
    fn channels_resolver_answers_as_channel_of_and_evaluates_once_per_key() {
        // The starter rules read touch.medium and touch.kind only; a rule
        // reading the person must key by person too.
        for extra in [
            "",
            "[[channel]]\nid = \"partner\"\nmatch = \"person.source == 'partner' && touch.cost > 50\"\n",
        ] {
            let mut pb = pb("");
            if !extra.is_empty() {
                // Put the person rule first so it can win.
                let with = self::pb(extra);
                let mut channels = with.channels.clone();
                let last = channels.pop().expect("the added channel");
                channels.insert(0, last);
                pb.channels = channels;
            }
            let (people, touches) = varied();
            let resolver = Channels::new(&pb);
            for t in &touches {
                let p = &people[t.person_id as usize];
                assert_eq!(resolver.of(t.into(), p), channel_of(&pb, t, p), "touch {}", t.id);
            }
            let evaluated = resolver.memo.borrow().len();
            if extra.is_empty() {
                // Touch i has kind i mod 4 and medium i mod 6: 12 pairs
                // (lcm 12), whatever the source, cost or person.
                assert_eq!(evaluated, 12);
                assert!(!resolver.person);
            } else {
                assert!(resolver.person);
                assert!(resolver.fields[4], "touch.cost is read");
                assert!(evaluated > 12);
            }
        }
    }

    #[test]
    fn classes_resolver_answers_as_classify() {
        let pb = pb("");
        let (people, _) = varied();
        let accounts: Vec<Account> = [None, Some(50), Some(500), Some(5000)]
            .iter()
            .enumerate()
            .map(|(i, e)| Account {
                id: i as i64,
                employees: *e,
                ..Account::default()
            })
            .collect();
        let resolver = Classes::new(&pb);
        assert_eq!(resolver.personas.person, Read::Fields(vec!["title"]));
        assert_eq!(resolver.personas.account, Read::Nothing);
        assert_eq!(resolver.segments.person, Read::Nothing);
        assert_eq!(resolver.segments.account, Read::Fields(vec!["employees"]));
        for p in &people {
            for a in [
                None,
                Some(&accounts[0]),
                Some(&accounts[1]),
                Some(&accounts[2]),
                Some(&accounts[3]),
            ] {
                let got = (resolver.persona(p, a), resolver.segment(p, a));
                assert_eq!(
                    got,
                    classify(&pb, p, a),
                    "person {} account {:?}",
                    p.id,
                    a.map(|a| a.id)
                );
            }
        }
        // Personas: 4 titles; segments: no account or one of 4 sizes.
        assert_eq!(resolver.personas.memo.borrow().len(), 4);
        assert_eq!(resolver.segments.memo.borrow().len(), 5);
    }

    #[test]
    fn a_profile_reads_the_person_fields_of_the_fit_rules_and_entries() {
        use crate::playbook::{Playbook, STARTER};
        // The starter's fit rules read title, email and country; its
        // entries read the score and deals only.
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let Read::Fields(mut fields) = pb.profile_person_read().clone() else {
            panic!("{:?}", pb.profile_person_read())
        };
        fields.sort_unstable();
        assert_eq!(fields, ["country", "email", "title"]);
        // An entry that reads the name adds it; one that reads the person
        // whole makes the profile whole.
        let named = STARTER.replace(
            "entry = \"deal.open\"",
            "entry = \"deal.open || person.name == 'Ada One'\"",
        );
        let pb = Playbook::load(&named).playbook.unwrap();
        let Read::Fields(fields) = pb.profile_person_read() else {
            panic!("{:?}", pb.profile_person_read())
        };
        assert!(fields.contains(&"name"), "{fields:?}");
        // And the lead's profile has it: Ada One enters the stage.
        let ada = Person {
            id: 1,
            texts: PersonTexts::new("", None, Some("Ada"), Some("One")),
            created_at: Timestamp::from_millis(1_700_000_000_000),
            ..Person::default()
        };
        let facts = Facts {
            person: &ada,
            account: None,
            touches: &[],
            activities: &[],
            deals: &[],
        };
        let moves = crate::lifecycle::advance(
            &pb,
            &crate::lifecycle::State::default(),
            &facts,
            Timestamp::from_millis(1_800_000_000_000),
        );
        let to: Vec<&str> = moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to.last(), Some(&"opportunity"), "{to:?}");
        let whole = STARTER.replace("entry = \"deal.open\"", "entry = \"size(person) > 99\"");
        let pb = Playbook::load(&whole).playbook.unwrap();
        assert_eq!(*pb.profile_person_read(), Read::Whole);
    }
}
