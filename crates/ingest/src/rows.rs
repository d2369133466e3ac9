//! From a mapped CSV row to a typed record, or a reason to reject the row.

use std::cell::RefCell;

use jiff::tz::TimeZone;
use serde_json::Value;
use tandem_core::domain::{
    Account, Activity, ActivityKind, CustomFields, Deal, DealStatus, Person, PersonTexts, Touch,
};
use tandem_core::fxhash::Recent;
use tandem_core::Sym;
use tandem_core::{Currency, Minor, Money, Timestamp};

use crate::csvread::Cells;
use crate::mapping::{stage_alias, Kind, Mapping, Target};

/// A reference to an account from another record.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountRef {
    pub external_id: String,
    pub name: Option<String>,
}

/// A stage the source system says a person entered.
#[derive(Clone, Debug, PartialEq)]
pub struct StageEntry {
    pub stage: String,
    pub at: Option<Timestamp>,
    pub reason: Option<String>,
}

/// One typed row.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Person {
        person: Person,
        /// Missing in the file: keep the stored value, or use the import time.
        created_at: Option<Timestamp>,
        account: Option<AccountRef>,
        stages: Vec<StageEntry>,
    },
    Account(Account),
    Touch {
        touch: Touch,
        person: String,
    },
    Activity {
        activity: Activity,
        person: String,
    },
    Deal {
        deal: Deal,
        person: Option<String>,
        account: Option<String>,
        person_updates: Vec<(String, String)>,
    },
    Transition {
        person: String,
        stage: String,
        at: Timestamp,
        actor: String,
        reason: Option<String>,
        note: Option<String>,
    },
}

/// What conversion needs from the playbook.
pub struct RowContext<'a> {
    pub tz: &'a TimeZone,
    pub currency: Currency,
    /// Stage ids of the playbook.
    pub stages: Vec<String>,
}

impl RowContext<'_> {
    fn stage(&self, raw: &str) -> Result<Option<String>, String> {
        let t = raw.trim();
        if let Some(s) = self.stages.iter().find(|s| s.eq_ignore_ascii_case(t)) {
            return Ok(Some(s.clone()));
        }
        match stage_alias(t) {
            Some(a) if self.stages.iter().any(|s| s == a) => Ok(Some(a.to_string())),
            Some(_) | None if t.eq_ignore_ascii_case("other") => Ok(None),
            _ => Err(format!(
                "unknown stage `{t}`; expected one of {} or a CRM lifecycle label",
                self.stages.join(", ")
            )),
        }
    }
}

/// A value as a custom field: numbers and booleans keep their type so CEL
/// rules can compare them.
pub fn custom_value(s: &str) -> Value {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    match t.to_ascii_lowercase().as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::from(t),
    }
}

/// A row's fields by their targets, read in place.
struct Fields<'a> {
    columns: &'a [Vec<Target>],
    cells: &'a Cells,
    consts: &'a [(String, String)],
}

impl<'a> Fields<'a> {
    /// Each column's targets with its value, in column order.
    fn pairs(&self) -> impl Iterator<Item = (&'a Target, &'a str)> + 'a {
        self.columns
            .iter()
            .zip(self.cells.iter())
            .flat_map(|(targets, v)| targets.iter().map(move |t| (t, v)))
    }

    /// The value of `field`: of the last column mapped to it whose value
    /// is not blank, trimmed, else the mapping's constant.
    fn get(&self, field: &str) -> Option<&'a str> {
        let columns = self.columns.len().min(self.cells.len());
        (0..columns)
            .rev()
            .filter(|&i| {
                self.columns[i]
                    .iter()
                    .any(|t| matches!(t, Target::Field(f) if f == field))
            })
            .filter_map(|i| self.cells.get(i).map(str::trim))
            .find(|v| !v.is_empty())
            .or_else(|| {
                self.consts
                    .iter()
                    .find(|(f, _)| f == field)
                    .map(|(_, v)| v.as_str())
            })
    }

    fn string(&self, field: &str) -> Option<String> {
        self.get(field).map(str::to_string)
    }

    /// The field interned, without an owned copy first.
    fn sym(&self, field: &str) -> Option<Sym> {
        self.get(field).map(Sym::new)
    }

    fn required(&self, field: &str) -> Result<&'a str, String> {
        self.get(field).ok_or_else(|| format!("`{field}` is empty"))
    }

    fn time(&self, field: &str, tz: &TimeZone) -> Result<Option<Timestamp>, String> {
        self.get(field)
            .map(|v| Timestamp::parse_in(v, tz).map_err(|e| format!("`{field}`: {e}")))
            .transpose()
    }

    fn int(&self, field: &str) -> Result<Option<i64>, String> {
        self.get(field)
            .map(|v| {
                let clean: String = v.chars().filter(|c| *c != ',' && *c != '_').collect();
                clean
                    .parse::<i64>()
                    .ok()
                    .or_else(|| {
                        clean
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .map(|f| f.round() as i64)
                    })
                    .ok_or_else(|| format!("`{field}`: {v:?} is not a number"))
            })
            .transpose()
    }

    fn money(&self, field: &str, currency: Currency) -> Result<Option<i64>, String> {
        self.get(field)
            .map(|v| {
                Money::parse_major(v, currency)
                    .map(|m| m.minor)
                    .map_err(|e| format!("`{field}`: {e}"))
            })
            .transpose()
    }

    fn custom(&self) -> CustomFields {
        let mut c = CustomFields::new();
        for (t, v) in self.pairs() {
            if let Target::Custom(name) = t {
                if !v.trim().is_empty() {
                    c.insert(name.clone(), custom_value(v));
                }
            }
        }
        c
    }
}

fn parse_bool(field: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "x" => Ok(true),
        "0" | "false" | "no" | "n" | "" => Ok(false),
        _ => Err(format!("`{field}`: {v:?} is not true/false")),
    }
}

/// Converts one row (fields in header order) to a record.
pub fn convert(mapping: &Mapping, fields: &Cells, ctx: &RowContext<'_>) -> Result<Record, String> {
    let f = Fields {
        columns: &mapping.columns,
        cells: fields,
        consts: &mapping.constants,
    };
    let tz = ctx.tz;
    match mapping.kind {
        Kind::People => {
            let external_id = f.required("external_id")?.to_string();
            let (mut first, mut last) = (f.string("first_name"), f.string("last_name"));
            if first.is_none() && last.is_none() {
                if let Some(name) = f.get("name") {
                    let mut parts = name.splitn(2, ' ');
                    first = parts.next().map(str::to_string);
                    last = parts.next().map(str::to_string);
                }
            }
            let account = match (f.get("account"), f.get("company")) {
                (Some(id), name) => Some(AccountRef {
                    external_id: id.to_string(),
                    name: name.map(str::to_string),
                }),
                (None, Some(name)) => Some(AccountRef {
                    external_id: format!("name:{}", name.to_lowercase()),
                    name: Some(name.to_string()),
                }),
                (None, None) => None,
            };
            let mut stages = Vec::new();
            for (t, v) in f.pairs() {
                if let Target::Field(name) = t {
                    if let Some(stage) = name.strip_prefix("entered:") {
                        if !v.trim().is_empty() {
                            let at =
                                Timestamp::parse_in(v, tz).map_err(|e| format!("`{name}`: {e}"))?;
                            if ctx.stages.iter().any(|s| s == stage) {
                                stages.push(StageEntry {
                                    stage: stage.to_string(),
                                    at: Some(at),
                                    reason: None,
                                });
                            }
                        }
                    }
                }
            }
            if let Some(raw) = f.get("stage") {
                if let Some(stage) = ctx.stage(raw)? {
                    if !stages.iter().any(|s| s.stage == stage) {
                        stages.push(StageEntry {
                            stage,
                            at: f.time("stage_at", tz)?,
                            reason: f.string("reason"),
                        });
                    }
                }
            }
            let email = f.get("email").map(str::to_string);
            if let Some(e) = &email {
                if !e.contains('@') {
                    return Err(format!("`email`: {e:?} is not an e-mail address"));
                }
            }
            Ok(Record::Person {
                person: Person {
                    id: 0,
                    texts: PersonTexts::new(
                        &external_id,
                        email.as_deref(),
                        first.as_deref(),
                        last.as_deref(),
                    ),
                    title: f.sym("title"),
                    account_id: None,
                    persona: f.sym("persona"),
                    segment: f.sym("segment"),
                    country: f.sym("country"),
                    source: f.get("source").map(label_sym),
                    owner: f.sym("owner"),
                    created_at: Timestamp::from_millis(0),
                    custom: f.custom().into(),
                },
                created_at: f.time("created_at", tz)?,
                account,
                stages,
            })
        }
        Kind::Accounts => Ok(Record::Account(Account {
            id: 0,
            external_id: f.required("external_id")?.to_string(),
            name: f.string("name"),
            domain: f.string("domain"),
            industry: f.get("industry").map(label_sym),
            employees: f.int("employees")?,
            annual_revenue: f.money("annual_revenue", ctx.currency)?,
            segment: f.sym("segment"),
            target: f
                .get("target")
                .map(|v| parse_bool("target", v))
                .transpose()?
                .unwrap_or(false),
            tier: f.int("tier")?,
            owner: f.sym("owner"),
            custom: f.custom().into(),
        })),
        Kind::Touches => {
            let at = f.time("at", tz)?.ok_or("`at` is empty")?;
            Ok(Record::Touch {
                person: f.required("person")?.to_string(),
                touch: Touch {
                    id: 0,
                    external_id: f.string("external_id").map(String::into_boxed_str),
                    person_id: 0,
                    at,
                    kind: label_sym(f.required("kind")?),
                    channel: f.get("channel").map(label_sym),
                    campaign: f.sym("campaign"),
                    source: f.sym("source"),
                    medium: f.get("medium").map(|m| m.to_lowercase()).map(Sym::from),
                    cost: f.money("cost", ctx.currency)?.map(Minor::new),
                },
            })
        }
        Kind::Activities => {
            let at = f.time("at", tz)?.ok_or("`at` is empty")?;
            let kind_raw = f.required("kind")?;
            let kind = ActivityKind::parse(kind_raw).ok_or_else(|| {
                format!("`kind`: {kind_raw:?} is not call, email, meeting or demo")
            })?;
            Ok(Record::Activity {
                person: f.required("person")?.to_string(),
                activity: Activity {
                    id: 0,
                    external_id: f.string("external_id").map(String::into_boxed_str),
                    person_id: 0,
                    at,
                    kind,
                    actor: f.sym("actor"),
                    outcome: f.sym("outcome"),
                },
            })
        }
        Kind::Deals => {
            let currency = match f.get("currency") {
                Some(c) => Currency::parse(c).map_err(|e| format!("`currency`: {e}"))?,
                None => ctx.currency,
            };
            let status = match (f.get("status"), f.get("stage")) {
                (Some(s), _) => DealStatus::parse(s)
                    .ok_or_else(|| format!("`status`: {s:?} is not open, won or lost"))?,
                (None, Some(stage)) => deal_status_from_stage(stage),
                (None, None) => DealStatus::Open,
            };
            let closed_at = f.time("closed_at", tz)?;
            let created_at = f
                .time("created_at", tz)?
                .or(closed_at)
                .ok_or("`created_at` is empty (and there is no close date)")?;
            let amount = f.money("amount", currency)?.ok_or("`amount` is empty")?;
            let person_updates = f
                .pairs()
                .filter_map(|(t, v)| match t {
                    Target::PersonField(p) if !v.trim().is_empty() => {
                        Some((p.clone(), v.trim().to_string()))
                    }
                    _ => None,
                })
                .collect();
            Ok(Record::Deal {
                deal: Deal {
                    id: 0,
                    external_id: f.required("external_id")?.to_string(),
                    account_id: None,
                    person_id: None,
                    name: f.string("name"),
                    amount: Money {
                        minor: amount,
                        currency,
                    },
                    created_at,
                    closed_at,
                    status,
                    lost_reason: f.sym("lost_reason"),
                    owner: f.sym("owner"),
                    kind: f
                        .get("kind")
                        .map(deal_kind)
                        .transpose()?
                        .unwrap_or("new")
                        .into(),
                },
                person: f.string("person"),
                account: f.string("account"),
                person_updates,
            })
        }
        Kind::Transitions => {
            let raw = f.required("stage")?;
            let stage = ctx
                .stage(raw)?
                .ok_or_else(|| format!("unknown stage `{raw}`"))?;
            Ok(Record::Transition {
                person: f.required("person")?.to_string(),
                stage,
                at: f.time("at", tz)?.ok_or("`at` is empty")?,
                actor: f.string("actor").unwrap_or_else(|| "import".into()),
                reason: f.string("reason"),
                note: f.string("note"),
            })
        }
    }
}

/// `Paid Search` → `paid_search`: CRM labels as ids.
pub fn normalize_label(s: &str) -> String {
    crate::mapping::normalize(s)
}

/// [`normalize_label`] of `raw`, interned. A source or channel column
/// holds a few labels over a million rows, so each thread remembers the
/// labels it normalized (normalizing copied every value twice, and was a
/// sixth of converting a row).
fn label_sym(raw: &str) -> Sym {
    /// Labels kept per thread; past this the map starts over.
    const MAX: usize = 4096;
    thread_local! {
        static LABELS: RefCell<Recent<Box<str>, Sym>> = RefCell::new(Recent::new(MAX));
    }
    LABELS.with(|labels| {
        labels
            .borrow_mut()
            .get_or_make(raw, || (raw.into(), Sym::from(normalize_label(raw))))
    })
}

fn deal_status_from_stage(stage: &str) -> DealStatus {
    let n: String = stage
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    match n.as_str() {
        "closedwon" | "won" => DealStatus::Won,
        "closedlost" | "lost" => DealStatus::Lost,
        _ => DealStatus::Open,
    }
}

/// The deal kind of a CRM value: `new|renewal|expansion` or the usual CRM
/// labels (HubSpot `newbusiness`/`existingbusiness`, Salesforce `New
/// Customer`, `Existing Customer - Upgrade|Downgrade|Replacement`); empty is
/// `new`. Anything else is refused so a typo never passes as a new deal.
fn deal_kind(s: &str) -> Result<&'static str, String> {
    let n: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    match n.as_str() {
        "" | "new" | "newbusiness" | "newcustomer" => Ok("new"),
        "renewal"
        | "existingcustomerrenewal"
        | "existingcustomerdowngrade"
        | "existingcustomerreplacement" => Ok("renewal"),
        "expansion"
        | "upsell"
        | "existingbusiness"
        | "existingcustomerupgrade"
        | "existingcustomerupsell" => Ok("expansion"),
        _ => Err(format!(
            "`kind`: {s:?} is not new, renewal or expansion (nor a CRM deal type tandem knows)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;
    use crate::mapping::Preset;

    fn ctx(tz: &TimeZone) -> RowContext<'_> {
        RowContext {
            tz,
            currency: Currency::parse("USD").unwrap(),
            stages: ["inquiry", "mql", "sal", "sql", "opportunity", "customer"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn conv(kind: Kind, preset: Preset, headers: &[&str], row: &[&str]) -> Result<Record, String> {
        let h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        let m = Mapping::resolve(kind, preset, &h, &BTreeMap::new()).unwrap();
        let tz = TimeZone::UTC;
        convert(&m, &row.iter().collect(), &ctx(&tz))
    }

    #[test]
    fn labels_interned_per_thread_are_the_normalized_labels() {
        // More distinct labels than a thread keeps, each asked twice.
        let raws: Vec<String> = (0..5000).map(|i| format!("Paid  Search {i}")).collect();
        for _ in 0..2 {
            for raw in &raws {
                assert_eq!(label_sym(raw), Sym::from(normalize_label(raw)));
            }
        }
        assert_eq!(label_sym(" Paid Search ").as_str(), "paid_search");
    }

    #[test]
    fn hubspot_contact_with_lifecycle_dates() {
        let r = conv(
            Kind::People,
            Preset::Hubspot,
            &[
                "Record ID",
                "First Name",
                "Email",
                "Lifecycle Stage",
                "Create Date",
                "Original Source",
                "Became a Marketing Qualified Lead Date",
                "Favourite Colour",
            ],
            &[
                "101",
                "Ana",
                "ana@acme.io",
                "Sales Qualified Lead",
                "2026-01-05 10:00",
                "Paid Search",
                "2026-01-07 09:00",
                "teal",
            ],
        )
        .unwrap();
        let Record::Person {
            person,
            created_at,
            stages,
            ..
        } = r
        else {
            panic!()
        };
        assert_eq!(person.external_id(), "101");
        assert_eq!(person.source.as_deref(), Some("paid_search"));
        assert_eq!(person.custom["favourite_colour"], "teal");
        assert_eq!(created_at.unwrap().to_string(), "2026-01-05T10:00:00Z");
        assert_eq!(stages.len(), 2);
        assert_eq!(
            (stages[0].stage.as_str(), stages[0].at.unwrap().to_string()),
            ("mql", "2026-01-07T09:00:00Z".into())
        );
        assert_eq!((stages[1].stage.as_str(), stages[1].at), ("sql", None));
    }

    #[test]
    fn deal_kind_columns_map_and_typos_are_refused() {
        let kind = |col: &str, v: &str| {
            conv(
                Kind::Deals,
                Preset::Generic,
                &["external_id", "amount", "created_at", col],
                &["d1", "100", "2026-01-05", v],
            )
            .map(|r| match r {
                Record::Deal { deal, .. } => deal.kind,
                _ => panic!("not a deal"),
            })
        };
        assert_eq!(kind("deal_kind", "Renewal").unwrap(), "renewal");
        assert_eq!(
            kind("type", "Existing Customer - Upgrade").unwrap(),
            "expansion"
        );
        assert_eq!(kind("kind", "").unwrap(), "new");
        assert_eq!(kind("deal_kind", "newbusiness").unwrap(), "new");
        let e = kind("deal_kind", "renwal").unwrap_err();
        assert!(e.contains("`kind`") && e.contains("renwal"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = conv(
            Kind::People,
            Preset::Generic,
            &["external_id", "created_at"],
            &["1", "yesterday"],
        )
        .unwrap_err();
        assert!(
            e.starts_with("`created_at`: invalid date/time \"yesterday\""),
            "{e}"
        );
        let e = conv(
            Kind::People,
            Preset::Generic,
            &["external_id", "email"],
            &["", "a@b.c"],
        )
        .unwrap_err();
        assert_eq!(e, "`external_id` is empty");
        let e = conv(
            Kind::Deals,
            Preset::Generic,
            &["external_id", "amount", "created_at"],
            &["d1", "12x", "2026-01-01"],
        )
        .unwrap_err();
        assert!(e.starts_with("`amount`: invalid amount"), "{e}");
        let e = conv(
            Kind::People,
            Preset::Generic,
            &["external_id", "stage"],
            &["1", "Happy"],
        )
        .unwrap_err();
        assert!(e.starts_with("unknown stage `Happy`"), "{e}");
    }

    #[test]
    fn salesforce_opportunity_stage_sets_status_and_us_dates_parse() {
        let r = conv(
            Kind::Deals,
            Preset::Salesforce,
            &[
                "Id",
                "AccountId",
                "Name",
                "Amount",
                "StageName",
                "CloseDate",
                "CreatedDate",
                "CurrencyIsoCode",
            ],
            &[
                "006A",
                "001A",
                "Acme renewal",
                "12,500.00",
                "Closed Won",
                "3/31/2026",
                "2026-01-15T08:00:00.000Z",
                "EUR",
            ],
        )
        .unwrap();
        let Record::Deal { deal, account, .. } = r else {
            panic!()
        };
        assert_eq!(deal.status, DealStatus::Won);
        assert_eq!(deal.amount.to_string(), "12500.00 EUR");
        assert_eq!(deal.closed_at.unwrap().to_string(), "2026-03-31T00:00:00Z");
        assert_eq!(account.as_deref(), Some("001A"));
    }

    #[test]
    fn custom_values_keep_numbers_numeric() {
        assert_eq!(custom_value("42"), Value::from(42));
        assert_eq!(custom_value("0.5"), Value::from(0.5));
        assert_eq!(custom_value("TRUE"), Value::Bool(true));
        assert_eq!(custom_value("pro"), Value::from("pro"));
    }
}
