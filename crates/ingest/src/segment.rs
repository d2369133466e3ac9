//! Segment's HTTP Tracking API (`identify`, `track`, `page`, `batch`) as
//! records of the import path.
//!
//! [`parse`] checks one message and turns it into typed records before any
//! write, so a bad message is refused with the field that is wrong
//! (`batch[3].timestamp`) and nothing of its batch is stored. [`ingest`]
//! applies a batch in one transaction with the CSV importer's upserts and
//! merge rules ([`crate::import::upsert_person`], [`crate::import::upsert_account`]),
//! records every `messageId` so a replay changes nothing, and re-evaluates
//! the lifecycle of every person the batch touched.
//!
//! Mapping: the person is `userId` (else `anonymousId`); `traits` (identify)
//! and `context.traits` (any call) fill email, name, title, country, source
//! and `company` (name, or an object with id/name/domain/industry/employees);
//! other traits go to custom fields. A `track` whose event names a sales
//! activity (`call`, `email`, `meeting`, `demo`) stores an activity; one that
//! names an engagement touch kind of the playbook, or carries UTM fields
//! (`context.campaign`) or `properties.channel`, stores a touch whose channel
//! is `properties.channel` or else what the playbook's channel rules derive
//! from the UTM medium/source; other events only update the person. A `page`
//! is a `web_visit` touch. `screen`, `group` and `alias` are acknowledged and
//! ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tandem_core::Sym;

use serde_json::{Map, Value};
use tandem_core::domain::{Account, Activity, ActivityKind, Person, PersonTexts, Touch};
use tandem_core::facts::channel_of;
use tandem_core::playbook::Playbook;
use tandem_core::{Minor, Timestamp, MAX_MINOR};
use tandem_store::repo::{self, Upsert};
use tandem_store::{events, lifecycle, AnyConnection, SoleWriter, Store, StoreError, Tx};
use tokio::sync::{mpsc, oneshot};

mod held;
use held::{Held, Journal};

use crate::import::{upsert_account, upsert_person};
use crate::rows::{normalize_label, AccountRef};

/// Transactions retried after a conflict with a concurrent writer.
const RETRIES: usize = 8;

/// The kind of a Segment call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Identify,
    Track,
    Page,
    /// `screen`, `group`, `alias`: acknowledged, nothing stored.
    Ignored,
}

impl Call {
    /// Reads a batch item's `type`.
    pub fn parse(s: &str) -> Option<Call> {
        Some(match s {
            "identify" => Call::Identify,
            "track" => Call::Track,
            "page" => Call::Page,
            "screen" | "group" | "alias" => Call::Ignored,
            _ => return None,
        })
    }

    /// The name stored with the message id.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Identify => "identify",
            Call::Track => "track",
            Call::Page => "page",
            Call::Ignored => "ignored",
        }
    }
}

/// A message that cannot be accepted: the field (JSON path) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// The UTM fields of `context.campaign`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Campaign {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub name: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

impl Campaign {
    fn is_empty(&self) -> bool {
        *self == Campaign::default()
    }
}

/// What a message stores besides the person.
#[derive(Clone, Debug, PartialEq)]
pub enum Fact {
    /// Nothing (identify, an event that is neither touch nor activity).
    None,
    /// A touch; `channel` is `None` when the playbook rules should derive it.
    Touch(Touch),
    Activity(Activity),
}

/// One checked message, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub call: Call,
    pub message_id: Option<String>,
    /// The person's external id: `userId`, else `anonymousId`.
    pub user: String,
    /// When it happened (`timestamp` corrected for client clock skew with
    /// `sentAt`, else the time received).
    pub at: Timestamp,
    /// The person as the traits describe it (unset fields keep stored ones).
    pub person: Person,
    /// `traits.createdAt`, when given.
    pub created_at: Option<Timestamp>,
    /// `traits.company` as an account.
    pub account: Option<Account>,
    pub campaign: Campaign,
    pub fact: Fact,
}

fn at_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn invalid(path: &str, name: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: at_path(path, name),
        reason: reason.into(),
    }
}

/// An optional object member.
fn object<'a>(
    v: &'a Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, Invalid> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid(path, name, "must be an object")),
    }
}

/// An optional string member (numbers are read as their decimal text, as
/// Segment libraries send numeric ids).
fn string(v: &Map<String, Value>, path: &str, name: &str) -> Result<Option<String>, Invalid> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(path, name, "must be a string")),
    }
}

fn time(v: &Map<String, Value>, path: &str, name: &str) -> Result<Option<Timestamp>, Invalid> {
    string(v, path, name)?
        .map(|s| {
            Timestamp::parse(&s)
                .map_err(|_| invalid(path, name, format!("{s:?} is not an ISO 8601 time")))
        })
        .transpose()
}

fn integer(v: &Map<String, Value>, path: &str, name: &str) -> Result<Option<i64>, Invalid> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| invalid(path, name, "must be a whole number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| invalid(path, name, "must be a whole number")),
        Some(_) => Err(invalid(path, name, "must be a whole number")),
    }
}

/// Trait names tandem maps to fields; anything else becomes a custom field.
const KNOWN_TRAITS: &[&str] = &[
    "email",
    "firstName",
    "first_name",
    "lastName",
    "last_name",
    "name",
    "title",
    "country",
    "address",
    "source",
    "owner",
    "company",
    "createdAt",
    "created_at",
];

/// Fills `person`, `created_at` and `account` from a traits object.
fn apply_traits(
    traits: &Map<String, Value>,
    path: &str,
    person: &mut Person,
    created_at: &mut Option<Timestamp>,
    account: &mut Option<Account>,
) -> Result<(), Invalid> {
    let first = match string(traits, path, "firstName")? {
        Some(s) => Some(s),
        None => string(traits, path, "first_name")?,
    };
    let last = match string(traits, path, "lastName")? {
        Some(s) => Some(s),
        None => string(traits, path, "last_name")?,
    };
    let (first, last) = match (first, last, string(traits, path, "name")?) {
        (None, None, Some(full)) => match full.split_once(char::is_whitespace) {
            Some((f, l)) => (Some(f.to_string()), Some(l.trim().to_string())),
            None => (Some(full), None),
        },
        (f, l, _) => (f, l),
    };
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                person.$field = Some(v.into());
            }
        };
    }
    // A trait not sent keeps the person's text.
    let email = string(traits, path, "email")?.map(|e| e.to_lowercase());
    let sent = PersonTexts::new(
        person.external_id(),
        email.as_deref(),
        first.as_deref(),
        last.as_deref(),
    );
    person.texts = sent.or(&person.texts);
    set!(title, string(traits, path, "title")?);
    set!(
        source,
        string(traits, path, "source")?.map(|s| normalize_label(&s))
    );
    set!(owner, string(traits, path, "owner")?);
    let address_path = at_path(path, "address");
    let country = match string(traits, path, "country")? {
        Some(c) => Some(c),
        None => match object(traits, path, "address")? {
            Some(a) => string(a, &address_path, "country")?,
            None => None,
        },
    };
    set!(country, country);
    if let Some(t) = time(traits, path, "createdAt")? {
        *created_at = Some(t);
    } else if let Some(t) = time(traits, path, "created_at")? {
        *created_at = Some(t);
    }
    let company_path = at_path(path, "company");
    match traits.get("company") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if !name.trim().is_empty() => {
            *account = Some(Account {
                external_id: name.trim().to_string(),
                name: Some(name.trim().to_string()),
                ..Account::default()
            });
        }
        Some(Value::String(_)) => {}
        Some(Value::Object(c)) => {
            let name = string(c, &company_path, "name")?;
            let domain = string(c, &company_path, "domain")?.map(|d| d.to_lowercase());
            let id = string(c, &company_path, "id")?;
            let external_id = id
                .or_else(|| domain.clone())
                .or_else(|| name.clone())
                .ok_or_else(|| {
                    invalid(
                        &company_path,
                        "name",
                        "a company needs an id, a domain or a name",
                    )
                })?;
            let employees = match integer(c, &company_path, "employee_count")? {
                Some(n) => Some(n),
                None => integer(c, &company_path, "employees")?,
            };
            *account = Some(Account {
                external_id,
                name,
                domain,
                industry: string(c, &company_path, "industry")?
                    .map(|s| normalize_label(&s))
                    .map(Sym::from),
                employees,
                ..Account::default()
            });
        }
        Some(_) => {
            return Err(invalid(path, "company", "must be a string or an object"));
        }
    }
    for (k, v) in traits {
        if !KNOWN_TRAITS.contains(&k.as_str()) && !v.is_null() {
            person.custom.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

/// Checks one message and converts it. `call` is the endpoint's call, or
/// `None` for a batch item (read from its `type`). `path` prefixes field
/// names in errors (`batch[3]`; empty for a single call). `batch` holds the
/// batch's own `context` and `sentAt`, which items without their own use.
pub fn parse(
    v: &Value,
    call: Option<Call>,
    path: &str,
    batch: Option<&Map<String, Value>>,
    received: Timestamp,
) -> Result<Message, Invalid> {
    let Value::Object(m) = v else {
        return Err(Invalid {
            field: if path.is_empty() {
                "body".into()
            } else {
                path.into()
            },
            reason: "must be a JSON object".into(),
        });
    };
    let call = match call {
        Some(c) => c,
        None => {
            let t = string(m, path, "type")?
                .ok_or_else(|| invalid(path, "type", "is required in a batch item"))?;
            Call::parse(&t).ok_or_else(|| {
                invalid(
                    path,
                    "type",
                    format!("{t:?} is not identify, track, page, screen, group or alias"),
                )
            })?
        }
    };
    let message_id = string(m, path, "messageId")?;
    let user = match string(m, path, "userId")? {
        Some(u) => u,
        None => string(m, path, "anonymousId")?
            .ok_or_else(|| invalid(path, "userId", "userId or anonymousId is required"))?,
    };
    let timestamp = match time(m, path, "timestamp")? {
        Some(t) => Some(t),
        None => time(m, path, "originalTimestamp")?,
    };
    let sent_at = match time(m, path, "sentAt")? {
        Some(t) => Some(t),
        None => match batch {
            Some(b) => time(b, "", "sentAt")?,
            None => None,
        },
    };
    // Segment's skew correction: the client's clock may be off, but the
    // interval between the event and sending it is right.
    let at = match (timestamp, sent_at) {
        (Some(t), Some(s)) => Timestamp::from_millis(t.millis() + (received.millis() - s.millis())),
        (Some(t), None) => t,
        (None, _) => received,
    };
    let context = match object(m, path, "context")? {
        Some(c) => Some((c, at_path(path, "context"))),
        None => match batch {
            Some(b) => object(b, "", "context")?.map(|c| (c, "context".to_string())),
            None => None,
        },
    };
    let mut person = Person {
        texts: PersonTexts::new(user.as_str(), None, None, None),
        ..Person::default()
    };
    let mut created_at = None;
    let mut account = None;
    let mut campaign = Campaign::default();
    if let Some((ctx, ctx_path)) = &context {
        if let Some(t) = object(ctx, ctx_path, "traits")? {
            let p = at_path(ctx_path, "traits");
            apply_traits(t, &p, &mut person, &mut created_at, &mut account)?;
        }
        if let Some(c) = object(ctx, ctx_path, "campaign")? {
            let p = at_path(ctx_path, "campaign");
            campaign = Campaign {
                source: string(c, &p, "source")?,
                medium: string(c, &p, "medium")?.map(|s| s.to_lowercase()),
                name: string(c, &p, "name")?,
                term: string(c, &p, "term")?,
                content: string(c, &p, "content")?,
            };
        }
    }
    if call == Call::Identify {
        if let Some(t) = object(m, path, "traits")? {
            let p = at_path(path, "traits");
            apply_traits(t, &p, &mut person, &mut created_at, &mut account)?;
        }
    }
    let empty = Map::new();
    let props = object(m, path, "properties")?.unwrap_or(&empty);
    let props_path = at_path(path, "properties");
    let fact = match call {
        Call::Identify | Call::Ignored => Fact::None,
        Call::Track | Call::Page => {
            let kind = if call == Call::Page {
                "web_visit".to_string()
            } else {
                let event = string(m, path, "event")?
                    .ok_or_else(|| invalid(path, "event", "is required in a track call"))?;
                normalize_label(&event)
            };
            let channel = string(props, &props_path, "channel")?.map(|c| normalize_label(&c));
            if let Some(kind) = ActivityKind::parse(&kind) {
                Fact::Activity(Activity {
                    id: 0,
                    external_id: message_id.as_deref().map(Box::from),
                    person_id: 0,
                    at,
                    kind,
                    actor: string(props, &props_path, "actor")?.map(Sym::from),
                    outcome: string(props, &props_path, "outcome")?.map(Sym::from),
                })
            } else {
                let cost = integer(props, &props_path, "cost")?;
                if cost.is_some_and(|c| !(0..=MAX_MINOR).contains(&c)) {
                    return Err(invalid(
                        &props_path,
                        "cost",
                        format!("must be between 0 and {MAX_MINOR} minor units"),
                    ));
                }
                Fact::Touch(Touch {
                    id: 0,
                    external_id: message_id.as_deref().map(Box::from),
                    person_id: 0,
                    at,
                    kind: kind.into(),
                    channel: channel.map(Sym::from),
                    campaign: campaign.name.as_deref().map(Sym::from),
                    source: campaign.source.as_deref().map(Sym::from),
                    medium: campaign.medium.as_deref().map(Sym::from),
                    cost: cost.map(Minor::new),
                })
            }
        }
    };
    Ok(Message {
        call,
        message_id,
        user,
        at,
        person,
        created_at,
        account,
        campaign,
        fact,
    })
}

/// Checks a `/v1/batch` body: `{"batch": [...], "context"?, "sentAt"?}`.
/// The first bad item stops it, named `batch[i].field`.
pub fn parse_batch(v: &Value, received: Timestamp) -> Result<Vec<Message>, Invalid> {
    let Value::Object(m) = v else {
        return Err(Invalid {
            field: "body".into(),
            reason: "must be a JSON object".into(),
        });
    };
    let items = match m.get("batch") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("", "batch", "must be an array")),
        None => return Err(invalid("", "batch", "is required")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse(item, None, &format!("batch[{i}]"), Some(m), received))
        .collect()
}

/// What a stored message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Only the person (identify, or an event that is no touch or activity).
    Person(Upsert),
    Touch(Upsert),
    Activity(Upsert),
    /// `screen`, `group`, `alias`.
    Nothing,
}

/// What happened to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        person_id: i64,
        effect: Effect,
    },
    /// Its `messageId` was accepted before: nothing changed.
    Duplicate,
}

/// Whether a touch of this kind counts: the playbook scores it, or it
/// carries attribution data. Other events (page views of the app, clicks)
/// would only add noise to attribution paths.
fn keeps_touch(pb: &Playbook, m: &Message, t: &Touch) -> bool {
    m.call == Call::Page
        || t.channel.is_some()
        || !m.campaign.is_empty()
        || pb
            .scoring
            .engagement_rules
            .iter()
            .any(|r| r.touch == t.kind)
}

/// Stores one message: its account, its person, and its touch or activity,
/// and notes in `journal` what that changed in stored facts. A parsed
/// message always can be stored (its person is upserted first), so only the
/// store can fail.
async fn apply(
    c: &mut AnyConnection,
    pb: &Playbook,
    m: &Message,
    people: &mut HashMap<String, Person>,
    touched: &mut BTreeSet<i64>,
    journal: &mut Journal,
    deferred: Option<&mut Vec<Touch>>,
) -> Result<Outcome, StoreError> {
    if m.call == Call::Ignored {
        return Ok(Outcome::Stored {
            person_id: 0,
            effect: Effect::Nothing,
        });
    }
    let account = match &m.account {
        Some(a) => {
            if upsert_account(c, a.clone()).await? != Upsert::Unchanged {
                journal.anyone = true;
            }
            Some(AccountRef {
                external_id: a.external_id.clone(),
                name: a.name.clone(),
            })
        }
        None => None,
    };
    let existing = people.get(&m.user);
    let (person, person_upsert) = upsert_person(
        c,
        m.person.clone(),
        existing,
        m.created_at,
        account.as_ref(),
        m.at,
    )
    .await?;
    if person_upsert != Upsert::Unchanged {
        touched.insert(person.id);
        journal.people.insert(person.id);
        people.insert(m.user.clone(), person.clone());
    }
    let effect = match &m.fact {
        Fact::Touch(t) if keeps_touch(pb, m, t) => {
            let mut touch = t.clone();
            touch.person_id = person.id;
            touch.channel = channel_of(pb, &touch, &person).map(Sym::from);
            touched.insert(person.id);
            if let Some(later) = deferred {
                // Inserted with the group's others, which checks it is new.
                later.push(touch);
                return Ok(Outcome::Stored {
                    person_id: person.id,
                    effect: Effect::Touch(Upsert::Inserted),
                });
            }
            let (id, upsert) = repo::upsert_new_touch(c, &touch).await?;
            match upsert {
                Upsert::Inserted => journal.touches.push(Touch { id, ..touch }),
                Upsert::Updated => journal.anyone = true,
                Upsert::Unchanged => {}
            }
            Effect::Touch(upsert)
        }
        Fact::Activity(a) => {
            let mut activity = a.clone();
            activity.person_id = person.id;
            touched.insert(person.id);
            let (id, upsert) = repo::upsert_activity(c, &activity).await?;
            match upsert {
                Upsert::Inserted => journal.activities.push(Activity { id, ..activity }),
                Upsert::Updated => journal.anyone = true,
                Upsert::Unchanged => {}
            }
            Effect::Activity(upsert)
        }
        Fact::None | Fact::Touch(_) => Effect::Person(person_upsert),
    };
    Ok(Outcome::Stored {
        person_id: person.id,
        effect,
    })
}

/// What one transaction reads once for all its calls and keeps up to date
/// as they are stored: the `messageId`s accepted before it and in it (those
/// it accepts are recorded together at the end), and the stored people of
/// its messages by external id.
struct Known<'a> {
    seen: HashSet<String>,
    accepted: Vec<events::Accepted<'a>>,
    people: HashMap<String, Person>,
}

impl<'a> Known<'a> {
    async fn read(
        c: &mut AnyConnection,
        calls: impl Iterator<Item = &'a [Message]> + Clone,
    ) -> Result<Known<'a>, StoreError> {
        let ids: Vec<&str> = calls
            .clone()
            .flatten()
            .filter_map(|m| m.message_id.as_deref())
            .collect();
        let mut users: Vec<&str> = calls.flatten().map(|m| m.user.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        Ok(Known {
            seen: events::seen(c, &ids).await?,
            accepted: Vec::new(),
            people: repo::people_by_external_many(c, &users).await?,
        })
    }

    async fn record(self, c: &mut AnyConnection) -> Result<(), StoreError> {
        events::record(c, &self.accepted).await
    }
}

/// Stores one call's messages inside an open transaction, without
/// re-evaluating anyone's lifecycle: the outcomes, in `touched` the people
/// whose facts changed and in `journal` how. A message whose id `known` has
/// seen (accepted before, or earlier in this transaction) is a duplicate.
/// With `deferred`, new touches are left there for the caller to insert
/// together (their outcome says inserted; the caller makes sure).
#[allow(clippy::too_many_arguments)]
async fn store_all<'a>(
    c: &mut AnyConnection,
    pb: &Playbook,
    msgs: &'a [Message],
    now: Timestamp,
    known: &mut Known<'a>,
    touched: &mut BTreeSet<i64>,
    journal: &mut Journal,
    mut deferred: Option<&mut Vec<Touch>>,
) -> Result<Vec<Outcome>, StoreError> {
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        if let Some(id) = &m.message_id {
            if !known.seen.insert(id.clone()) {
                out.push(Outcome::Duplicate);
                continue;
            }
        }
        let outcome = apply(
            c,
            pb,
            m,
            &mut known.people,
            touched,
            journal,
            deferred.as_deref_mut(),
        )
        .await?;
        if let Some(id) = &m.message_id {
            let person_id = match &outcome {
                Outcome::Stored { person_id, .. } if *person_id > 0 => Some(*person_id),
                _ => None,
            };
            known.accepted.push(events::Accepted {
                message_id: id,
                kind: m.call.as_str(),
                person_id,
                received_at: now,
            });
        }
        out.push(outcome);
    }
    Ok(out)
}

/// The instant a call's people are re-evaluated up to: `now`, or the
/// latest message time if later.
fn until(msgs: &[Message], now: Timestamp) -> Timestamp {
    msgs.iter().map(|m| m.at).fold(now, Timestamp::max)
}

/// Applies one call's messages inside an open transaction and re-evaluates
/// the lifecycle of everyone they touched: the body of [`ingest`]'s
/// transaction.
async fn apply_all(
    c: &mut AnyConnection,
    pb: &Playbook,
    msgs: &[Message],
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    let mut touched = BTreeSet::new();
    let mut known = Known::read(c, std::iter::once(msgs)).await?;
    let mut journal = Journal::default();
    let out = store_all(
        c,
        pb,
        msgs,
        now,
        &mut known,
        &mut touched,
        &mut journal,
        None,
    )
    .await?;
    known.record(c).await?;
    let ids: Vec<i64> = touched.into_iter().collect();
    lifecycle::advance_many(c, pb, &ids, until(msgs, now)).await?;
    Ok(out)
}

async fn ingest_once(
    store: &Store,
    pb: &Playbook,
    msgs: &[Message],
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    let mut tx = store.begin().await?;
    let out = apply_all(tx.conn(), pb, msgs, now).await?;
    tx.commit().await?;
    Ok(out)
}

/// Applies checked messages in one transaction: all of them or none.
/// Messages whose `messageId` was accepted before are [`Outcome::Duplicate`].
/// Lifecycle stages of every person touched are re-evaluated up to `now`
/// (or the latest message time, if later). A conflict with a concurrent
/// writer (another instance on the same PostgreSQL) retries the whole
/// transaction (a deadlock between two batches on the same people, or a
/// `messageId` or person both inserted at once: the retry sees the row).
pub async fn ingest(
    store: &Store,
    pb: &Playbook,
    msgs: &[Message],
    now: Timestamp,
) -> Result<Vec<Outcome>, StoreError> {
    let mut attempt = 0;
    loop {
        match ingest_once(store, pb, msgs, now).await {
            Err(e) if e.is_retryable() && attempt < RETRIES => {
                attempt += 1;
                tracing::debug!(ingest.attempt = attempt, error = %e, "conflict; retrying the batch");
            }
            other => return other,
        }
    }
}

/// Most calls committed together by a [`Committer`].
const GROUP_MAX: usize = 256;

/// One call waiting in a [`Committer`]'s queue.
struct Job {
    pb: Arc<Playbook>,
    msgs: Arc<[Message]>,
    now: Timestamp,
    reply: oneshot::Sender<Result<Vec<Outcome>, StoreError>>,
}

/// Group commit for concurrent calls on one store: [`Committer::ingest`]
/// stores what [`ingest`] stores, but the calls that arrive while a
/// transaction is being written are applied together in the next one, in
/// arrival order.
///
/// Why: SQLite has one writer at a time and, with `synchronous = FULL`, each
/// commit waits for the disk (about 1 ms here), so one transaction per call
/// caps ingest near a thousand calls a second however fast the rest is,
/// and concurrent writers waiting on `busy_timeout` sleep in steps of
/// milliseconds. Here one task writes, nobody sleeps on the lock, and one
/// disk flush covers every call of a group. A call is answered only after
/// its group is durable.
///
/// Each statement is a round trip to sqlx's SQLite thread (about 0.1 ms on
/// the 2-core benchmark machine, far more than SQLite's own work), so what
/// can be done once per group is: its `messageId`s and its people are read
/// in one query each, the ids it accepts are recorded in one
/// insert, and the lifecycle of everyone its calls touched is re-evaluated
/// once, after all of them are stored
/// ([`lifecycle::advance_many`]: six packed reads for the group instead of
/// five reads per call), up to the group's latest `now` (or a later message
/// time). The engine evaluates each fact's instant in time order on the
/// facts up to that instant, so this is what evaluating after each call
/// gives when each call's facts are no earlier than the calls before it.
/// For a call that arrives after a later-dated one (a back-dated
/// `timestamp`, or two calls crossing on the way to the queue) it is the
/// time-ordered answer, which per-call evaluation can miss: that never
/// evaluates an instant before the lead's last move.
///
/// On an SQLite file the committer writes on a connection of its own
/// ([`SoleWriter`]) and keeps the facts of the people it re-evaluated
/// (`held`: what it read plus what it wrote since), so a lead's next call
/// reads nothing about them; a commit by anyone else drops them all.
///
/// A checked message cannot be refused by the store (its person is upserted
/// before its facts), so a group needs no savepoints: if the store fails in
/// a group (or its commit does), nothing of it was kept and each of its
/// calls is run again on its own with [`ingest`] (retries included), so a
/// failure reaches only the calls it belongs to. A call whose caller stops
/// waiting (the client went away) is still applied once queued; with a
/// `messageId` its retry is a duplicate.
#[derive(Clone, Debug)]
pub struct Committer {
    store: Store,
    jobs: mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the writing task on the current tokio runtime; it ends when
    /// every clone of the committer is dropped.
    pub fn start(store: Store) -> Committer {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(store.clone(), rx));
        Committer { store, jobs }
    }

    /// [`ingest`] through the group: the same outcomes, durable on return.
    pub async fn ingest(
        &self,
        pb: Arc<Playbook>,
        msgs: Vec<Message>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        let msgs: Arc<[Message]> = msgs.into();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            pb: pb.clone(),
            msgs: msgs.clone(),
            now,
            reply,
        };
        if self.jobs.send(job).is_ok() {
            if let Ok(result) = answer.await {
                return result;
            }
        }
        // The writing task is gone (its runtime is shutting down, or it
        // panicked and its transaction rolled back): the call was not
        // applied, so it is applied here.
        ingest(&self.store, &pb, &msgs, now).await
    }
}

async fn write_groups(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut writer = GroupWriter::new(store.clone());
    // A job under another playbook than its group's starts the next group.
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) if Arc::ptr_eq(&job.pb, &group[0].pb) => group.push(job),
                Ok(job) => {
                    next = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        match writer.write(&group).await {
            Ok(Some(results)) => {
                for (job, outcomes) in group.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(outcomes));
                }
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "one of its touches was stored before".to_string(),
                };
                tracing::debug!(
                    ingest.group = group.len(),
                    why,
                    "group not kept; each call alone"
                );
                for job in group {
                    let result = ingest(&store, &job.pb, &job.msgs, job.now).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// The committer's side of the store: on an SQLite file its own connection
/// ([`SoleWriter`]) and the facts of the people it re-evaluated lately
/// ([`Held`]), trusted only while nobody else committed; otherwise (an
/// in-memory database) pooled transactions and every person read.
struct GroupWriter {
    store: Store,
    sole: Option<SoleWriter>,
    held: Held,
    /// The playbook `held` people were evaluated under: what was evaluated
    /// under another must be evaluated again.
    pb: Option<Arc<Playbook>>,
}

impl GroupWriter {
    fn new(store: Store) -> GroupWriter {
        GroupWriter {
            store,
            sole: None,
            held: Held::default(),
            pb: None,
        }
    }

    /// One transaction for a group: each call's outcomes, `None` when the
    /// group must be stored call by call (see [`write_group`]; nothing of
    /// it was kept), or the store error that undid the whole group (and
    /// dropped what was held).
    async fn write(&mut self, group: &[Job]) -> Result<Option<Vec<Vec<Outcome>>>, StoreError> {
        let result = self.try_write(group).await;
        if result.is_err() {
            // Held facts may include rows the rollback removed, and the
            // connection may be what failed.
            self.held.clear();
            self.sole = None;
        }
        result
    }

    async fn try_write(&mut self, group: &[Job]) -> Result<Option<Vec<Vec<Outcome>>>, StoreError> {
        if self.sole.is_none() {
            self.sole = self.store.sole_writer().await?;
        }
        if let Some(job) = group.first() {
            if !self.pb.as_ref().is_some_and(|pb| Arc::ptr_eq(pb, &job.pb)) {
                self.held.clear();
                self.pb = Some(job.pb.clone());
            }
        }
        match &mut self.sole {
            Some(sole) => {
                let (tx, alone) = sole.begin().await?;
                if !alone {
                    self.held.clear();
                }
                commit_group(tx, group, Some(&mut self.held)).await
            }
            None => commit_group(self.store.begin().await?, group, None).await,
        }
    }
}

/// [`write_group`] in `tx`, committed unless the group is to be stored call
/// by call (then dropping `tx` rolls it back).
async fn commit_group(
    mut tx: Tx<'_>,
    group: &[Job],
    held: Option<&mut Held>,
) -> Result<Option<Vec<Vec<Outcome>>>, StoreError> {
    let out = write_group(tx.conn(), group, held).await?;
    if out.is_some() {
        tx.commit().await?;
    }
    Ok(out)
}

/// A group's writes inside its transaction (all its calls under one
/// playbook): each call's outcomes. The people the calls touched are
/// re-evaluated once, after every call is stored, up to the group's latest
/// `now` (or a later message time), from `held` facts where there are any.
///
/// On SQLite the group's new touches are inserted together at the end
/// ([`repo::insert_fresh_touches`]: one statement instead of one per
/// call). If one of them was stored before after all (a touch imported
/// under the same external id), that statement skipped it and the answer
/// is `None`: the caller rolls back and stores each call alone, which
/// upserts it as usual.
async fn write_group(
    c: &mut AnyConnection,
    group: &[Job],
    mut held: Option<&mut Held>,
) -> Result<Option<Vec<Vec<Outcome>>>, StoreError> {
    let (Some(first), Some(group_now)) = (group.first(), group.iter().map(|j| j.now).max()) else {
        return Ok(Some(Vec::new()));
    };
    let mut deferred = c
        .backend_name()
        .eq_ignore_ascii_case("sqlite")
        .then(Vec::new);
    let pb = &first.pb;
    let mut results = Vec::with_capacity(group.len());
    // Person id -> the instant it is evaluated up to.
    let mut evaluate: BTreeMap<i64, Timestamp> = BTreeMap::new();
    let mut known = Known::read(c, group.iter().map(|j| &j.msgs[..])).await?;
    let mut journal = Journal::default();
    for job in group {
        let mut touched = BTreeSet::new();
        let outcomes = store_all(
            c,
            pb,
            &job.msgs,
            job.now,
            &mut known,
            &mut touched,
            &mut journal,
            deferred.as_mut(),
        )
        .await?;
        results.push(outcomes);
        let until = until(&job.msgs, group_now);
        for id in touched {
            let e = evaluate.entry(id).or_insert(until);
            *e = (*e).max(until);
        }
    }
    known.record(c).await?;
    if let Some(touches) = deferred {
        let Some(ids) = repo::insert_fresh_touches(c, &touches).await? else {
            return Ok(None);
        };
        let stored = touches
            .into_iter()
            .zip(ids)
            .map(|(t, id)| Touch { id, ..t });
        journal.touches.extend(stored);
    }
    let mut by_until: BTreeMap<Timestamp, Vec<i64>> = BTreeMap::new();
    for (id, until) in evaluate {
        by_until.entry(until).or_default().push(id);
    }
    if let Some(h) = held.as_deref_mut() {
        h.apply(journal);
    }
    for (until, ids) in by_until {
        match held.as_deref_mut() {
            Some(h) => held::advance(c, pb, h, &ids, until).await?,
            None => {
                lifecycle::advance_many(c, pb, &ids, until).await?;
            }
        }
    }
    Ok(Some(results))
}

#[cfg(test)]
mod tests;
