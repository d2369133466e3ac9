//! The playbook: the shared definitions of both teams, as code (DESIGN §3).
//!
//! [`Playbook::load`] parses the TOML text, compiles every CEL criterion and
//! checks every reference, returning either a [`Playbook`] or the list of
//! problems, each with its place in the file.

mod accounts;
pub mod criteria;
mod diagnostic;
mod raw;
mod report;
mod starter;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Range;

use jiff::civil::Date;
use jiff::tz::TimeZone;

pub use accounts::{AccountList, AccountSla, CommitteeRole, RoleMatch};
pub use criteria::{Criterion, Read, Reads, Scope, Var, Vars};
pub use diagnostic::{line_col, Diagnostic, Severity};
pub use starter::STARTER;

use crate::money::Currency;
use crate::sym::Sym;
use raw::{RawPlaybook, S};
pub use report::{email_problem, ReportConfig, SmtpConfig, RECIPIENT_LISTS};

/// The team a stage, goal or SLA belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Team {
    Marketing,
    Sales,
    Shared,
    /// Account managers: onboarding, renewals and expansion after the sale.
    AccountManagement,
}

impl Team {
    fn parse(s: &str) -> Option<Team> {
        match s {
            "marketing" => Some(Team::Marketing),
            "sales" => Some(Team::Sales),
            "shared" => Some(Team::Shared),
            "account_management" => Some(Team::AccountManagement),
            _ => None,
        }
    }

    /// `marketing`, `sales`, `shared` or `account_management`.
    pub fn as_str(self) -> &'static str {
        match self {
            Team::Marketing => "marketing",
            Team::Sales => "sales",
            Team::Shared => "shared",
            Team::AccountManagement => "account_management",
        }
    }
}

/// The role a stage plays in the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// On the main path, in file order.
    Funnel,
    /// Off-ramp back to nurture; the lead may come back in a new cycle.
    Recycle,
    /// Off-ramp with no way back (disqualified, churned).
    Terminal,
}

/// One lifecycle stage.
#[derive(Clone, Debug)]
pub struct Stage {
    pub id: String,
    /// `id` interned, as moves and transitions carry it.
    pub sym: Sym,
    pub name: String,
    pub owner: Option<Team>,
    pub kind: StageKind,
    /// Automatic entry criterion; `None` for manual-only stages.
    pub entry: Option<Criterion>,
    /// Entered by a person (accept, qualify) rather than by a rule.
    pub manual: bool,
    /// Longer than this in the stage counts as stalled.
    pub max_days: Option<f64>,
    /// Stages a subject may come from. Explicit in the file, or derived:
    /// funnel stages from any earlier funnel stage or a recycle stage,
    /// off-ramps from any funnel stage.
    pub from: Vec<String>,
    /// Position among funnel stages (0 = first); `None` for off-ramps.
    pub funnel_index: Option<usize>,
}

/// A structured reason for a reject, recycle or lost deal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reason {
    pub code: String,
    pub name: String,
    /// Stage ids (and `lost` for deals) this reason may be given for.
    pub applies_to: Vec<String>,
}

/// One fit rule: `points` when `criterion` holds.
#[derive(Clone, Debug)]
pub struct FitRule {
    pub name: String,
    pub criterion: Criterion,
    pub points: f64,
}

/// One engagement rule: `points` per touch of kind `touch`, decaying.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EngagementRule {
    pub touch: String,
    pub points: f64,
}

/// Scoring definitions (DESIGN §4).
#[derive(Clone, Debug, Default)]
pub struct Scoring {
    pub fit_rules: Vec<FitRule>,
    /// Letter grades by minimum fit, best first.
    pub grades: Vec<(String, f64)>,
    pub half_life_days: f64,
    pub engagement_rules: Vec<EngagementRule>,
}

/// What sales owes marketing for every handoff.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SalesSla {
    /// The clock starts when a lead enters this stage.
    pub stage: String,
    pub first_response_hours: f64,
    pub attempts: i64,
    pub attempts_within_days: f64,
}

/// What marketing owes sales.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MarketingSla {
    pub mql_per_week: f64,
    pub sal_rate_min: f64,
}

/// Service-level agreements both ways.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sla {
    pub sales: Option<SalesSla>,
    pub marketing: Option<MarketingSla>,
    /// What account managers owe new customers, when the playbook says.
    pub account_management: Option<AccountSla>,
}

/// A persona, segment or channel: an id with a CEL match rule.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub id: String,
    pub name: String,
    pub criterion: Criterion,
}

/// A goal's period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    /// Parses `week`, `month`, `quarter`, `year`.
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "quarter" => Some(Period::Quarter),
            "year" => Some(Period::Year),
            _ => None,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }
}

/// A shared goal.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Goal {
    pub id: String,
    pub metric: String,
    pub period: Period,
    /// Money metrics are in minor units, rates are 0..1, counts are counts.
    pub target: f64,
    pub owner: Option<Team>,
    pub persona: Option<String>,
    pub segment: Option<String>,
}

/// Metrics a goal (or scorecard line) can track, with what each counts.
pub const METRICS: &[(&str, &str)] = &[
    ("inquiries", "people entering the first funnel stage"),
    ("mqls", "entries into mql"),
    ("sals", "entries into sal"),
    ("sqls", "entries into sql"),
    ("opportunities", "entries into opportunity"),
    ("customers", "entries into customer"),
    ("web_visits", "web_visit touches"),
    ("email_opens", "email_open touches"),
    ("email_clicks", "email_click touches"),
    ("paid_clicks", "ad_click touches"),
    ("form_fills", "form_fill touches"),
    ("calls", "call activities"),
    ("emails_sent", "email activities"),
    ("meetings", "meeting and demo activities"),
    ("pipeline_created", "amount of deals created (minor units)"),
    ("revenue_won", "amount of deals won (minor units)"),
    ("deals_won", "number of deals won"),
    ("win_rate", "won / (won + lost) deals closed in the period"),
    ("sal_rate", "share of MQLs accepted by sales"),
    (
        "retention",
        "share of customers at period start still customers at its end",
    ),
    (
        "nrr",
        "net revenue retention: ARR of period-start customers at its end / at its start",
    ),
    (
        "grr",
        "gross revenue retention: start ARR less contraction and churn / start ARR",
    ),
    (
        "logo_retention",
        "share of accounts with ARR at period start that still have ARR at its end",
    ),
    (
        "expansion_revenue",
        "amount of expansion deals won (minor units)",
    ),
];

/// Working days and hours in the company timezone, for SLA clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkingHours {
    /// Minutes after midnight the working day starts.
    pub start_minute: u32,
    /// Minutes after midnight the working day ends.
    pub end_minute: u32,
    /// Monday..Sunday.
    pub days: [bool; 7],
}

impl Default for WorkingHours {
    fn default() -> Self {
        WorkingHours {
            start_minute: 9 * 60,
            end_minute: 17 * 60,
            days: [true, true, true, true, true, false, false],
        }
    }
}

/// The company the playbook is for.
#[derive(Clone, Debug)]
pub struct Company {
    pub name: String,
    pub currency: Currency,
    pub timezone_name: String,
    pub timezone: TimeZone,
    pub hours: WorkingHours,
    pub holidays: Vec<Date>,
}

/// A checked playbook.
#[derive(Clone, Debug)]
pub struct Playbook {
    pub company: Company,
    /// Funnel stages first in funnel order, then off-ramps in file order.
    pub stages: Vec<Stage>,
    pub reasons: Vec<Reason>,
    pub scoring: Scoring,
    pub sla: Sla,
    pub personas: Vec<Matcher>,
    pub segments: Vec<Matcher>,
    pub channels: Vec<Matcher>,
    pub goals: Vec<Goal>,
    /// `[import.<kind>]` column → field maps for the generic importer.
    pub import: BTreeMap<String, BTreeMap<String, String>>,
    /// `[[account_lists]]`: rules proposing target accounts.
    pub account_lists: Vec<AccountList>,
    /// `[[buying_committee.roles]]`, in file order.
    pub buying_committee: Vec<CommitteeRole>,
    /// `[report]`: recipients, delivery and schedule of the weekly report.
    pub report: Option<ReportConfig>,
    /// What the fit rules and the stages' entries read of `person`
    /// ([`Playbook::profile_person_read`]), derived once at load.
    profile_person_read: Read,
}

/// The result of loading a playbook: the playbook when there is no error, and
/// every problem found (errors and warnings) in file order.
#[derive(Debug)]
pub struct Loaded {
    pub playbook: Option<Playbook>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// What the fit rules and the stages' entries read of `person`: the
/// fields a lead's profile needs ([`crate::lifecycle::Profile`]).
pub(crate) fn person_read(scoring: &Scoring, stages: &[Stage]) -> Read {
    let rules = scoring.fit_rules.iter().map(|r| &r.criterion);
    let entries = stages.iter().filter_map(|s| s.entry.as_ref());
    rules.chain(entries).fold(Read::Nothing, |read, c| {
        read.union(c.reads().of(Var::Person))
    })
}

impl Playbook {
    /// What automatic stage entry and the fit rules read of `person`, as
    /// the playbook was loaded (its criteria are not meant to change
    /// after that: load the changed file instead). A lead's profile is
    /// built with only these fields: a person's name, ids and owner, never
    /// read by the starter playbook's rules, were a third of building it.
    pub fn profile_person_read(&self) -> &Read {
        &self.profile_person_read
    }

    /// Parses and checks a playbook. Never panics on any input.
    pub fn load(source: &str) -> Loaded {
        let raw: RawPlaybook = match toml::from_str(source) {
            Ok(r) => r,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                return Loaded {
                    playbook: None,
                    diagnostics: vec![Diagnostic::error(span, e.message().trim().to_string())],
                };
            }
        };
        let mut checker = Checker {
            source,
            diags: Vec::new(),
        };
        let playbook = checker.build(raw);
        let mut diagnostics = checker.diags;
        diagnostics.sort_by_key(|d| (d.span.start, d.severity));
        let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
        Loaded {
            playbook: if has_errors { None } else { playbook },
            diagnostics,
        }
    }

    /// The stage with this id.
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Funnel stages in order.
    pub fn funnel(&self) -> impl Iterator<Item = &Stage> {
        self.stages.iter().filter(|s| s.kind == StageKind::Funnel)
    }

    /// The first funnel stage (where new leads start).
    pub fn first_stage(&self) -> Option<&Stage> {
        self.funnel().next()
    }

    /// The first recycle off-ramp.
    pub fn recycle_stage(&self) -> Option<&Stage> {
        self.stages.iter().find(|s| s.kind == StageKind::Recycle)
    }

    /// The first terminal off-ramp of the funnel (the disqualify stage).
    pub fn disqualify_stage(&self) -> Option<&Stage> {
        self.stages.iter().find(|s| s.kind == StageKind::Terminal)
    }

    /// The reason with this code.
    pub fn reason(&self, code: &str) -> Option<&Reason> {
        self.reasons.iter().find(|r| r.code == code)
    }
}

struct Checker<'a> {
    source: &'a str,
    diags: Vec<Diagnostic>,
}

const STAGE_REASON_EXTRA: &[&str] = &["lost"];

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg));
    }

    fn warning(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(span, msg));
    }

    /// Compiles a CEL string and reports its problems at their column inside
    /// the expression.
    fn criterion(&mut self, expr: &S<String>, scope: Scope) -> Option<Criterion> {
        let (criterion, problems) = Criterion::compile(expr.get_ref(), scope);
        let content_start = self.string_content_start(expr.span());
        for p in problems {
            let at = byte_offset_of_char(expr.get_ref(), p.offset) + content_start;
            let span = at..at + 1;
            if p.warning {
                self.warning(span, p.message);
            } else {
                self.error(span, p.message);
            }
        }
        criterion
    }

    /// Byte offset of the first content character of a TOML string whose
    /// span (quotes included) is `span`.
    fn string_content_start(&self, span: Range<usize>) -> usize {
        let text = self.source.get(span.clone()).unwrap_or("");
        let quote = if text.starts_with("\"\"\"") || text.starts_with("'''") {
            3
        } else if text.starts_with('"') || text.starts_with('\'') {
            1
        } else {
            0
        };
        let mut start = span.start + quote;
        // A multi-line string drops the newline right after its opening quotes.
        if quote == 3 && self.source.get(start..start + 1) == Some("\n") {
            start += 1;
        }
        start
    }

    fn unique<'b>(&mut self, what: &str, ids: impl Iterator<Item = &'b S<String>>) {
        let mut seen: HashSet<&str> = HashSet::new();
        for id in ids {
            if id.get_ref().trim().is_empty() {
                self.error(id.span(), format!("{what} id must not be empty"));
            } else if !seen.insert(id.get_ref().as_str()) {
                self.error(id.span(), format!("duplicate {what} id `{}`", id.get_ref()));
            }
        }
    }

    fn positive(&mut self, v: &S<f64>, what: &str) -> f64 {
        let x = *v.get_ref();
        if !(x.is_finite() && x > 0.0) {
            self.error(
                v.span(),
                format!("{what} must be a positive number, got {x}"),
            );
        }
        x
    }

    fn build(&mut self, raw: RawPlaybook) -> Option<Playbook> {
        let company = self.company(raw.company);

        // Stages.
        self.unique("stage", raw.stages.iter().map(|s| &s.get_ref().id));
        if raw.stages.is_empty() {
            self.error(0..0, "the playbook declares no [[stage]]");
        }
        let stage_ids: Vec<String> = raw
            .stages
            .iter()
            .map(|s| s.get_ref().id.get_ref().clone())
            .collect();
        let mut stages = Vec::new();
        for s in &raw.stages {
            let span = s.span();
            let s = s.get_ref();
            let kind = match s.kind.as_ref().map(|k| k.get_ref().as_str()) {
                None | Some("funnel") => StageKind::Funnel,
                Some("recycle") => StageKind::Recycle,
                Some("terminal") => StageKind::Terminal,
                Some(other) => {
                    let k = s.kind.as_ref().map(|k| k.span()).unwrap_or(span.clone());
                    self.error(
                        k,
                        format!(
                            "unknown stage kind `{other}`; expected funnel, recycle or terminal"
                        ),
                    );
                    StageKind::Funnel
                }
            };
            let owner = s.owner.as_ref().and_then(|o| {
                let t = Team::parse(o.get_ref());
                if t.is_none() {
                    self.error(
                        o.span(),
                        format!(
                            "unknown team `{}`; expected marketing, sales, shared or account_management",
                            o.get_ref()
                        ),
                    );
                }
                t
            });
            let entry = s
                .entry
                .as_ref()
                .and_then(|e| self.criterion(e, Scope::StageEntry));
            if let Some(m) = &s.max_days {
                self.positive(m, "max_days");
            }
            if let Some(from) = &s.from {
                for f in from {
                    if !stage_ids.contains(f.get_ref()) {
                        self.error(
                            f.span(),
                            format!("unknown stage `{}` in `from`", f.get_ref()),
                        );
                    }
                }
            }
            stages.push(Stage {
                id: s.id.get_ref().clone(),
                sym: Sym::new(s.id.get_ref()),
                name: s.name.clone().unwrap_or_else(|| s.id.get_ref().clone()),
                owner,
                kind,
                entry,
                manual: s.manual,
                max_days: s.max_days.as_ref().map(|m| *m.get_ref()),
                from: s
                    .from
                    .as_ref()
                    .map(|f| f.iter().map(|x| x.get_ref().clone()).collect())
                    .unwrap_or_default(),
                funnel_index: None,
            });
        }
        if stages.iter().all(|s| s.kind != StageKind::Funnel) && !stages.is_empty() {
            self.error(0..0, "the playbook declares no funnel stage");
        }
        let explicit_from: Vec<bool> = raw
            .stages
            .iter()
            .map(|s| s.get_ref().from.is_some())
            .collect();
        derive_graph(&mut stages, &explicit_from);
        self.reachability(&stages, &raw.stages);

        // Reasons.
        self.unique("reason", raw.reasons.iter().map(|r| &r.code));
        let mut reasons = Vec::new();
        for r in &raw.reasons {
            for a in &r.applies_to {
                if !stage_ids.contains(a.get_ref())
                    && !STAGE_REASON_EXTRA.contains(&a.get_ref().as_str())
                {
                    self.error(
                        a.span(),
                        format!(
                            "reason `{}` applies to unknown stage `{}`",
                            r.code.get_ref(),
                            a.get_ref()
                        ),
                    );
                }
            }
            reasons.push(Reason {
                code: r.code.get_ref().clone(),
                name: r.name.clone().unwrap_or_else(|| r.code.get_ref().clone()),
                applies_to: r.applies_to.iter().map(|a| a.get_ref().clone()).collect(),
            });
        }

        let scoring = self.scoring(raw.scoring);
        let sla = self.sla(raw.sla, &stage_ids);

        self.unique("persona", raw.personas.iter().map(|m| &m.id));
        self.unique("segment", raw.segments.iter().map(|m| &m.id));
        self.unique("channel", raw.channels.iter().map(|m| &m.id));
        let personas = self.matchers(&raw.personas, Scope::Profile);
        let segments = self.matchers(&raw.segments, Scope::Profile);
        let channels = self.matchers(&raw.channels, Scope::Channel);

        let goals = self.goals(&raw.goals, &personas, &segments);
        let account_lists = self.account_lists(&raw.account_lists);
        let buying_committee = self.committee(raw.buying_committee, &personas);
        let report = self.report(raw.report);

        let profile_person_read = person_read(&scoring, &stages);
        Some(Playbook {
            company: company?,
            stages,
            reasons,
            scoring,
            sla,
            personas,
            segments,
            channels,
            goals,
            import: raw.import,
            account_lists,
            buying_committee,
            report,
            profile_person_read,
        })
    }

    fn company(&mut self, raw: S<raw::RawCompany>) -> Option<Company> {
        let c = raw.into_inner();
        let currency = match Currency::parse(c.currency.get_ref()) {
            Ok(cur) => Some(cur),
            Err(e) => {
                self.error(c.currency.span(), e.to_string());
                None
            }
        };
        let timezone = match TimeZone::get(c.timezone.get_ref()) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.error(
                    c.timezone.span(),
                    format!(
                        "unknown timezone `{}`; use an IANA name such as America/New_York",
                        c.timezone.get_ref()
                    ),
                );
                None
            }
        };
        let mut hours = WorkingHours::default();
        if let Some(h) = &c.hours {
            match (parse_hhmm(h.start.get_ref()), parse_hhmm(h.end.get_ref())) {
                (Some(s), Some(e)) if s < e => {
                    hours.start_minute = s;
                    hours.end_minute = e;
                }
                (Some(_), Some(_)) => {
                    self.error(h.end.span(), "working hours must end after they start")
                }
                (None, _) => self.error(h.start.span(), "expected a time as HH:MM"),
                (_, None) => self.error(h.end.span(), "expected a time as HH:MM"),
            }
            if let Some(days) = &h.days {
                hours.days = [false; 7];
                for d in days {
                    match weekday_index(d.get_ref()) {
                        Some(i) => hours.days[i] = true,
                        None => self.error(
                            d.span(),
                            format!("unknown weekday `{}`; expected mon, tue, wed, thu, fri, sat or sun", d.get_ref()),
                        ),
                    }
                }
                if !hours.days.iter().any(|d| *d) {
                    self.error(0..0, "working hours need at least one day");
                }
            }
        }
        let mut holidays = Vec::new();
        for h in &c.holidays {
            match h.get_ref().parse::<Date>() {
                Ok(d) => holidays.push(d),
                Err(_) => self.error(
                    h.span(),
                    format!(
                        "invalid holiday date `{}`; expected YYYY-MM-DD",
                        h.get_ref()
                    ),
                ),
            }
        }
        holidays.sort();
        Some(Company {
            name: c.name,
            currency: currency?,
            timezone_name: c.timezone.get_ref().clone(),
            timezone: timezone?,
            hours,
            holidays,
        })
    }

    fn reachability(&mut self, stages: &[Stage], raw: &[S<raw::RawStage>]) {
        let Some(first) = stages.iter().position(|s| s.kind == StageKind::Funnel) else {
            return;
        };
        let mut reached = vec![false; stages.len()];
        reached[first] = true;
        let mut queue = VecDeque::from([first]);
        while let Some(i) = queue.pop_front() {
            for (j, s) in stages.iter().enumerate() {
                if !reached[j] && s.from.iter().any(|f| *f == stages[i].id) {
                    reached[j] = true;
                    queue.push_back(j);
                }
            }
        }
        for (j, s) in stages.iter().enumerate() {
            if !reached[j] {
                let span = raw
                    .iter()
                    .find(|r| r.get_ref().id.get_ref() == &s.id)
                    .map(|r| r.get_ref().id.span())
                    .unwrap_or(0..0);
                self.warning(
                    span,
                    format!(
                        "stage `{}` is unreachable from the first stage `{}`",
                        s.id, stages[first].id
                    ),
                );
            }
        }
    }

    fn scoring(&mut self, raw: raw::RawScoring) -> Scoring {
        let mut fit_rules = Vec::new();
        for (i, r) in raw.fit.rules.iter().enumerate() {
            let points = *r.points.get_ref();
            if !points.is_finite() {
                self.error(r.points.span(), "points must be a finite number");
            }
            if let Some(c) = self.criterion(&r.when, Scope::Profile) {
                fit_rules.push(FitRule {
                    name: r
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("fit rule {}", i + 1)),
                    criterion: c,
                    points,
                });
            }
        }
        let mut grades: Vec<(String, f64)> = Vec::new();
        if let Some(g) = &raw.fit.grades {
            for (letter, min) in g.get_ref() {
                if !(0.0..=100.0).contains(min) {
                    self.error(
                        g.span(),
                        format!("grade {letter} needs a minimum fit in 0..100, got {min}"),
                    );
                }
                grades.push((letter.clone(), *min));
            }
            grades.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        let half_life_days = match &raw.engagement.half_life_days {
            Some(h) => self.positive(h, "half_life_days"),
            None => 30.0,
        };
        let mut engagement_rules = Vec::new();
        let mut seen = HashSet::new();
        for r in &raw.engagement.rules {
            if !seen.insert(r.touch.get_ref().clone()) {
                self.error(
                    r.touch.span(),
                    format!(
                        "duplicate engagement rule for touch `{}`",
                        r.touch.get_ref()
                    ),
                );
            }
            engagement_rules.push(EngagementRule {
                touch: r.touch.get_ref().clone(),
                points: *r.points.get_ref(),
            });
        }
        Scoring {
            fit_rules,
            grades,
            half_life_days,
            engagement_rules,
        }
    }

    fn sla(&mut self, raw: raw::RawSla, stage_ids: &[String]) -> Sla {
        let account_management = self.account_sla(raw.account_management);
        let sales = raw.sales.map(|s| {
            let s = s.into_inner();
            if !stage_ids.contains(s.stage.get_ref()) {
                self.error(
                    s.stage.span(),
                    format!("unknown stage `{}` in [sla.sales]", s.stage.get_ref()),
                );
            }
            let attempts = *s.attempts.get_ref();
            if attempts <= 0 {
                self.error(
                    s.attempts.span(),
                    format!("attempts must be a positive number, got {attempts}"),
                );
            }
            SalesSla {
                stage: s.stage.get_ref().clone(),
                first_response_hours: self
                    .positive(&s.first_response_hours, "first_response_hours"),
                attempts,
                attempts_within_days: self
                    .positive(&s.attempts_within_days, "attempts_within_days"),
            }
        });
        let marketing = raw.marketing.map(|m| {
            let rate = *m.sal_rate_min.get_ref();
            if !(rate > 0.0 && rate <= 1.0) {
                self.error(
                    m.sal_rate_min.span(),
                    format!("sal_rate_min is a share in (0, 1], got {rate}"),
                );
            }
            MarketingSla {
                mql_per_week: self.positive(&m.mql_per_week, "mql_per_week"),
                sal_rate_min: rate,
            }
        });
        Sla {
            sales,
            marketing,
            account_management,
        }
    }

    fn matchers(&mut self, raw: &[raw::RawMatcher], scope: Scope) -> Vec<Matcher> {
        raw.iter()
            .filter_map(|m| {
                self.criterion(&m.match_, scope).map(|criterion| Matcher {
                    id: m.id.get_ref().clone(),
                    name: m.name.clone().unwrap_or_else(|| m.id.get_ref().clone()),
                    criterion,
                })
            })
            .collect()
    }

    fn goals(
        &mut self,
        raw: &[S<raw::RawGoal>],
        personas: &[Matcher],
        segments: &[Matcher],
    ) -> Vec<Goal> {
        let mut goals = Vec::new();
        let mut ids = HashSet::new();
        for g in raw {
            let span = g.span();
            let g = g.get_ref();
            let metric = g.metric.get_ref();
            if !METRICS.iter().any(|(m, _)| m == metric) {
                self.error(
                    g.metric.span(),
                    format!(
                        "unknown metric `{metric}`; known metrics: {}",
                        METRICS
                            .iter()
                            .map(|(m, _)| *m)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            let period = Period::parse(g.period.get_ref()).unwrap_or_else(|| {
                self.error(
                    g.period.span(),
                    format!(
                        "unknown period `{}`; expected week, month, quarter or year",
                        g.period.get_ref()
                    ),
                );
                Period::Quarter
            });
            let target = self.positive(&g.target, "target");
            let owner = match &g.owner {
                Some(o) => {
                    let t = Team::parse(o.get_ref());
                    if t.is_none() {
                        self.error(
                            o.span(),
                            format!(
                                "unknown team `{}`; expected marketing, sales, shared or account_management",
                                o.get_ref()
                            ),
                        );
                    }
                    t
                }
                None => {
                    self.warning(
                        span.start..span.start + 1,
                        format!("goal `{metric}` has no owner team"),
                    );
                    None
                }
            };
            if let Some(p) = &g.persona {
                if !personas.iter().any(|m| &m.id == p.get_ref()) {
                    self.error(p.span(), format!("unknown persona `{}`", p.get_ref()));
                }
            }
            if let Some(s) = &g.segment {
                if !segments.iter().any(|m| &m.id == s.get_ref()) {
                    self.error(s.span(), format!("unknown segment `{}`", s.get_ref()));
                }
            }
            let id =
                g.id.as_ref()
                    .map(|i| i.get_ref().clone())
                    .unwrap_or_else(|| format!("{}_{}", metric, period.as_str()));
            if !ids.insert(id.clone()) {
                let s = g.id.as_ref().map(|i| i.span()).unwrap_or(span.clone());
                self.error(s, format!("duplicate goal id `{id}` (give goals on the same metric and period an `id`)"));
            }
            goals.push(Goal {
                id,
                metric: metric.clone(),
                period,
                target,
                owner,
                persona: g.persona.as_ref().map(|p| p.get_ref().clone()),
                segment: g.segment.as_ref().map(|s| s.get_ref().clone()),
            });
        }
        goals
    }
}

/// Fills in funnel positions and the default `from` of every stage.
fn derive_graph(stages: &mut [Stage], explicit_from: &[bool]) {
    let mut idx = 0;
    for s in stages.iter_mut() {
        if s.kind == StageKind::Funnel {
            s.funnel_index = Some(idx);
            idx += 1;
        }
    }
    let funnel: Vec<String> = stages
        .iter()
        .filter(|s| s.kind == StageKind::Funnel)
        .map(|s| s.id.clone())
        .collect();
    let recycle: Vec<String> = stages
        .iter()
        .filter(|s| s.kind == StageKind::Recycle)
        .map(|s| s.id.clone())
        .collect();
    for (i, s) in stages.iter_mut().enumerate() {
        if explicit_from.get(i).copied().unwrap_or(false) {
            continue;
        }
        s.from = match (s.kind, s.funnel_index) {
            (StageKind::Funnel, Some(fi)) => funnel[..fi]
                .iter()
                .chain(if fi > 0 { recycle.iter() } else { [].iter() })
                .cloned()
                .collect(),
            _ => funnel.clone(),
        };
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn weekday_index(s: &str) -> Option<usize> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| s.to_ascii_lowercase().starts_with(d))
}

fn byte_offset_of_char(s: &str, char_offset: usize) -> usize {
    s.char_indices()
        .nth(char_offset)
        .map(|(i, _)| i)
        .unwrap_or(s.len())
}

#[cfg(test)]
mod tests;
