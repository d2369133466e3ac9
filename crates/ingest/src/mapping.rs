//! Which column feeds which field: the generic mapper and the presets for
//! the standard exports of HubSpot, Salesforce, Marketo and the Olist funnel.

use std::collections::BTreeMap;
use std::fmt;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    People,
    Accounts,
    Touches,
    Activities,
    Deals,
    Transitions,
}

impl Kind {
    /// Every kind, in the order imports usually run.
    pub const ALL: [Kind; 6] = [
        Kind::Accounts,
        Kind::People,
        Kind::Touches,
        Kind::Activities,
        Kind::Deals,
        Kind::Transitions,
    ];

    /// The name used on the command line and in `[import.<kind>]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::People => "people",
            Kind::Accounts => "accounts",
            Kind::Touches => "touches",
            Kind::Activities => "activities",
            Kind::Deals => "deals",
            Kind::Transitions => "transitions",
        }
    }

    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Fields a column can map to. `entered:<stage>` (people) and
    /// `person.<field>` (deals) are accepted too.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::People => &[
                "external_id",
                "email",
                "first_name",
                "last_name",
                "name",
                "title",
                "account",
                "company",
                "persona",
                "segment",
                "country",
                "source",
                "owner",
                "created_at",
                "stage",
                "stage_at",
                "reason",
            ],
            Kind::Accounts => &[
                "external_id",
                "name",
                "domain",
                "industry",
                "employees",
                "annual_revenue",
                "segment",
                "target",
                "tier",
                "owner",
            ],
            Kind::Touches => &[
                "external_id",
                "person",
                "at",
                "kind",
                "channel",
                "campaign",
                "source",
                "medium",
                "cost",
            ],
            Kind::Activities => &["external_id", "person", "at", "kind", "actor", "outcome"],
            Kind::Deals => &[
                "external_id",
                "person",
                "account",
                "name",
                "amount",
                "currency",
                "created_at",
                "closed_at",
                "status",
                "stage",
                "lost_reason",
                "owner",
                "kind",
            ],
            Kind::Transitions => &["person", "stage", "at", "actor", "reason", "note"],
        }
    }

    /// Whether unmapped columns are kept as custom fields (people and
    /// accounts) rather than ignored.
    pub fn keeps_custom(self) -> bool {
        matches!(self, Kind::People | Kind::Accounts)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose export the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Generic,
    Olist,
    Hubspot,
    Salesforce,
    Marketo,
}

impl Preset {
    /// Parses a preset name.
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "generic" => Some(Preset::Generic),
            "olist" => Some(Preset::Olist),
            "hubspot" => Some(Preset::Hubspot),
            "salesforce" => Some(Preset::Salesforce),
            "marketo" => Some(Preset::Marketo),
            _ => None,
        }
    }

    /// `(normalised column, target fields)` of this preset's standard export.
    fn columns(self, kind: Kind) -> &'static [(&'static str, &'static [&'static str])] {
        use Kind::*;
        use Preset::*;
        match (self, kind) {
            (Olist, People) => &[
                ("mql_id", &["external_id"]),
                ("first_contact_date", &["created_at", "entered:mql"]),
                ("origin", &["source"]),
            ],
            (Olist, Deals) => &[
                ("mql_id", &["external_id", "person"]),
                ("won_date", &["created_at", "closed_at"]),
                ("sr_id", &["owner"]),
                ("sdr_id", &["person.owner"]),
                ("business_segment", &["person.segment"]),
                ("seller_id", &["person.custom.seller_id"]),
                ("lead_type", &["person.custom.lead_type"]),
                (
                    "lead_behaviour_profile",
                    &["person.custom.lead_behaviour_profile"],
                ),
                ("has_company", &["person.custom.has_company"]),
                ("has_gtin", &["person.custom.has_gtin"]),
                ("average_stock", &["person.custom.average_stock"]),
                ("business_type", &["person.custom.business_type"]),
                (
                    "declared_product_catalog_size",
                    &["person.custom.declared_product_catalog_size"],
                ),
                (
                    "declared_monthly_revenue",
                    &["person.custom.declared_monthly_revenue"],
                ),
            ],
            (Hubspot, People) => &[
                ("record_id", &["external_id"]),
                ("contact_id", &["external_id"]),
                ("email", &["email"]),
                ("first_name", &["first_name"]),
                ("last_name", &["last_name"]),
                ("job_title", &["title"]),
                ("company_name", &["company"]),
                ("associated_company_id", &["account"]),
                ("country_region", &["country"]),
                ("country", &["country"]),
                ("lifecycle_stage", &["stage"]),
                ("create_date", &["created_at"]),
                ("original_source", &["source"]),
                ("contact_owner", &["owner"]),
                ("became_a_lead_date", &["entered:inquiry"]),
                ("became_a_marketing_qualified_lead_date", &["entered:mql"]),
                ("became_a_sales_qualified_lead_date", &["entered:sql"]),
                ("became_an_opportunity_date", &["entered:opportunity"]),
                ("became_a_customer_date", &["entered:customer"]),
            ],
            (Hubspot, Accounts) => &[
                ("record_id", &["external_id"]),
                ("company_id", &["external_id"]),
                ("company_name", &["name"]),
                ("name", &["name"]),
                ("company_domain_name", &["domain"]),
                ("industry", &["industry"]),
                ("number_of_employees", &["employees"]),
                ("annual_revenue", &["annual_revenue"]),
                ("company_owner", &["owner"]),
            ],
            (Hubspot, Deals) => &[
                ("record_id", &["external_id"]),
                ("deal_id", &["external_id"]),
                ("deal_name", &["name"]),
                ("amount", &["amount"]),
                ("deal_stage", &["stage"]),
                ("create_date", &["created_at"]),
                ("close_date", &["closed_at"]),
                ("deal_owner", &["owner"]),
                ("associated_contact_id", &["person"]),
                ("associated_contact_ids", &["person"]),
                ("associated_company_id", &["account"]),
                ("associated_company_ids", &["account"]),
                ("closed_lost_reason", &["lost_reason"]),
                ("currency", &["currency"]),
                ("deal_type", &["kind"]),
            ],
            (Salesforce, People) => &[
                ("id", &["external_id"]),
                ("lead_id", &["external_id"]),
                ("contact_id", &["external_id"]),
                ("firstname", &["first_name"]),
                ("first_name", &["first_name"]),
                ("lastname", &["last_name"]),
                ("last_name", &["last_name"]),
                ("email", &["email"]),
                ("title", &["title"]),
                ("company", &["company"]),
                ("company_account", &["company"]),
                ("accountid", &["account"]),
                ("account_id", &["account"]),
                ("country", &["country"]),
                ("mailingcountry", &["country"]),
                ("leadsource", &["source"]),
                ("lead_source", &["source"]),
                ("status", &["stage"]),
                ("lead_status", &["stage"]),
                ("ownerid", &["owner"]),
                ("lead_owner", &["owner"]),
                ("contact_owner", &["owner"]),
                ("createddate", &["created_at"]),
                ("create_date", &["created_at"]),
            ],
            (Salesforce, Accounts) => &[
                ("id", &["external_id"]),
                ("account_id", &["external_id"]),
                ("name", &["name"]),
                ("account_name", &["name"]),
                ("website", &["domain"]),
                ("industry", &["industry"]),
                ("numberofemployees", &["employees"]),
                ("employees", &["employees"]),
                ("annualrevenue", &["annual_revenue"]),
                ("annual_revenue", &["annual_revenue"]),
                ("ownerid", &["owner"]),
                ("account_owner", &["owner"]),
            ],
            (Salesforce, Deals) => &[
                ("id", &["external_id"]),
                ("opportunity_id", &["external_id"]),
                ("accountid", &["account"]),
                ("account_id", &["account"]),
                ("contactid", &["person"]),
                ("contact_id", &["person"]),
                ("name", &["name"]),
                ("opportunity_name", &["name"]),
                ("amount", &["amount"]),
                ("stagename", &["stage"]),
                ("stage", &["stage"]),
                ("closedate", &["closed_at"]),
                ("close_date", &["closed_at"]),
                ("createddate", &["created_at"]),
                ("created_date", &["created_at"]),
                ("ownerid", &["owner"]),
                ("opportunity_owner", &["owner"]),
                ("currencyisocode", &["currency"]),
                ("type", &["kind"]),
                ("loss_reason_c", &["lost_reason"]),
            ],
            (Marketo, People) => &[
                ("id", &["external_id"]),
                ("first_name", &["first_name"]),
                ("last_name", &["last_name"]),
                ("email_address", &["email"]),
                ("job_title", &["title"]),
                ("company_name", &["company"]),
                ("country", &["country"]),
                ("lead_source", &["source"]),
                ("lead_status", &["stage"]),
                ("revenue_stage", &["stage"]),
                ("created_at", &["created_at"]),
                ("lead_owner_email_address", &["owner"]),
            ],
            // Deal kind (`new|renewal|expansion`) under its common names.
            (Generic, Deals) => &[("deal_kind", &["kind"]), ("type", &["kind"])],
            _ => &[],
        }
    }

    /// Fixed values every row of this preset gets.
    pub fn constants(self, kind: Kind) -> &'static [(&'static str, &'static str)] {
        match (self, kind) {
            // Olist's closed-deals file holds won deals only and no deal value.
            (Preset::Olist, Kind::Deals) => &[("status", "won"), ("amount", "0")],
            _ => &[],
        }
    }
}

/// Where one column's value goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A field of the record (one of `Kind::fields`, or `entered:<stage>`).
    Field(String),
    /// A field of the deal's person (`person.segment`, `person.custom.x`).
    PersonField(String),
    /// A custom field.
    Custom(String),
}

/// Column name as presets and `--map` compare it: lower-case, runs of
/// anything but letters and digits as one `_`.
pub fn normalize(col: &str) -> String {
    let mut out = String::with_capacity(col.len());
    for ch in col.trim().chars() {
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// A problem with the mapping itself (not with a row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("unknown field `{field}` for {kind} (mapped from column `{column}`); fields: {known}")]
    UnknownField {
        kind: Kind,
        column: String,
        field: String,
        known: String,
    },
    #[error("--map {0:?}: expected COLUMN=FIELD")]
    BadMap(String),
    #[error("no column maps to `external_id` for {kind}; map one with --map COLUMN=external_id or [import.{kind}]")]
    NoExternalId { kind: Kind },
    #[error("no column maps to `{field}`, which {kind} need; map one with --map COLUMN={field}")]
    Missing { kind: Kind, field: &'static str },
}

/// The resolved mapping of one file: targets per column.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub kind: Kind,
    pub columns: Vec<Vec<Target>>,
    pub constants: Vec<(String, String)>,
}

fn check_field(kind: Kind, column: &str, field: &str) -> Result<Target, MappingError> {
    if let Some(rest) = field.strip_prefix("custom.") {
        return Ok(Target::Custom(rest.to_string()));
    }
    if kind == Kind::Deals {
        if let Some(rest) = field.strip_prefix("person.") {
            return Ok(Target::PersonField(rest.to_string()));
        }
    }
    if kind == Kind::People && field.starts_with("entered:") {
        return Ok(Target::Field(field.to_string()));
    }
    if kind.fields().contains(&field) {
        Ok(Target::Field(field.to_string()))
    } else {
        Err(MappingError::UnknownField {
            kind,
            column: column.to_string(),
            field: field.to_string(),
            known: kind.fields().join(", "),
        })
    }
}

impl Mapping {
    /// Resolves targets for `headers`: explicit maps (`--map` and the
    /// playbook's `[import.<kind>]`) first, then the preset, then columns
    /// named like a field; for people and accounts every other column
    /// becomes a custom field.
    pub fn resolve(
        kind: Kind,
        preset: Preset,
        headers: &[String],
        explicit: &BTreeMap<String, String>,
    ) -> Result<Mapping, MappingError> {
        let explicit: BTreeMap<String, &String> =
            explicit.iter().map(|(k, v)| (normalize(k), v)).collect();
        let preset_cols = preset.columns(kind);
        let mut columns = Vec::with_capacity(headers.len());
        for h in headers {
            let n = normalize(h);
            let targets = if let Some(field) = explicit.get(&n) {
                if field.as_str() == "-" {
                    Vec::new()
                } else {
                    vec![check_field(kind, h, field)?]
                }
            } else if let Some((_, fields)) = preset_cols.iter().find(|(c, _)| *c == n) {
                fields
                    .iter()
                    .map(|f| check_field(kind, h, f))
                    .collect::<Result<Vec<_>, _>>()?
            } else if kind.fields().contains(&n.as_str()) {
                vec![Target::Field(n.clone())]
            } else if kind.keeps_custom() && !n.is_empty() {
                vec![Target::Custom(n.clone())]
            } else {
                Vec::new()
            };
            columns.push(targets);
        }
        let mapping = Mapping {
            kind,
            columns,
            constants: preset
                .constants(kind)
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
        };
        let has = |f: &str| {
            mapping
                .columns
                .iter()
                .flatten()
                .any(|t| *t == Target::Field(f.to_string()))
                || mapping.constants.iter().any(|(c, _)| c == f)
        };
        let needs_id = matches!(kind, Kind::People | Kind::Accounts | Kind::Deals);
        if needs_id && !has("external_id") {
            return Err(MappingError::NoExternalId { kind });
        }
        let required: &[&'static str] = match kind {
            Kind::Touches => &["person", "at", "kind"],
            Kind::Activities => &["person", "at", "kind"],
            Kind::Deals => &["amount"],
            Kind::Transitions => &["person", "stage", "at"],
            _ => &[],
        };
        for f in required {
            if !has(f) {
                return Err(MappingError::Missing { kind, field: f });
            }
        }
        Ok(mapping)
    }

    /// Parses `COLUMN=FIELD` flags.
    pub fn parse_flags(flags: &[String]) -> Result<BTreeMap<String, String>, MappingError> {
        flags
            .iter()
            .map(|f| match f.split_once('=') {
                Some((c, v)) if !c.trim().is_empty() && !v.trim().is_empty() => {
                    Ok((c.trim().to_string(), v.trim().to_string()))
                }
                _ => Err(MappingError::BadMap(f.clone())),
            })
            .collect()
    }
}

/// Maps a CRM's lifecycle label onto a stage id of the default playbook:
/// HubSpot lifecycle stages, Salesforce lead statuses, Marketo revenue
/// stages. `None` for labels that do not name a stage (e.g. "Other").
pub fn stage_alias(label: &str) -> Option<&'static str> {
    let n: String = label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    Some(match n.as_str() {
        "subscriber" | "lead" | "inquiry" | "known" | "engaged" | "new" | "anonymous" => "inquiry",
        "marketingqualifiedlead" | "mql" | "marketingqualified" | "opennotcontacted" => "mql",
        "salesacceptedlead" | "sal" | "salesaccepted" | "workingcontacted" | "contacted"
        | "working" => "sal",
        "salesqualifiedlead" | "sql" | "salesqualified" | "closedconverted" | "qualified" => "sql",
        "opportunity" => "opportunity",
        "customer" | "evangelist" => "customer",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes_column_names() {
        assert_eq!(
            normalize(" Became a Marketing Qualified Lead Date "),
            "became_a_marketing_qualified_lead_date"
        );
        assert_eq!(normalize("Country/Region"), "country_region");
        assert_eq!(normalize("Loss_Reason__c"), "loss_reason_c");
    }

    #[test]
    fn generic_maps_by_name_explicitly_and_keeps_the_rest_as_custom() {
        let mut explicit = BTreeMap::new();
        explicit.insert("Lead ID".to_string(), "external_id".to_string());
        let m = Mapping::resolve(
            Kind::People,
            Preset::Generic,
            &headers(&["Lead ID", "Email", "Plan Tier", "won"]),
            &explicit,
        )
        .unwrap();
        assert_eq!(
            m.columns,
            [
                vec![Target::Field("external_id".into())],
                vec![Target::Field("email".into())],
                vec![Target::Custom("plan_tier".into())],
                vec![Target::Custom("won".into())],
            ]
        );
    }

    #[test]
    fn mapping_errors_are_clear() {
        let none = BTreeMap::new();
        let e = Mapping::resolve(Kind::People, Preset::Generic, &headers(&["email"]), &none)
            .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("no column maps to `external_id` for people"));
        let mut bad = BTreeMap::new();
        bad.insert("x".to_string(), "colour".to_string());
        let e = Mapping::resolve(
            Kind::People,
            Preset::Generic,
            &headers(&["x", "external_id"]),
            &bad,
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown field `colour` for people (mapped from column `x`)"));
        let e = Mapping::resolve(
            Kind::Touches,
            Preset::Generic,
            &headers(&["person", "at"]),
            &none,
        )
        .unwrap_err();
        assert!(e.to_string().contains("`kind`"));
        assert!(Mapping::parse_flags(&["a".into()]).is_err());
    }

    #[test]
    fn crm_labels_map_to_stages() {
        assert_eq!(stage_alias("Marketing Qualified Lead"), Some("mql"));
        assert_eq!(stage_alias("marketingqualifiedlead"), Some("mql"));
        assert_eq!(stage_alias("Working - Contacted"), Some("sal"));
        assert_eq!(stage_alias("Closed - Converted"), Some("sql"));
        assert_eq!(stage_alias("Evangelist"), Some("customer"));
        assert_eq!(stage_alias("Other"), None);
    }
}
