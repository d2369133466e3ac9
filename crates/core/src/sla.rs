//! SLA clocks both ways and the stalled-lead list (DESIGN §4, §5).
//!
//! * **Business time**: [`business_deadline`] and [`business_hours_between`]
//!   count working time in the company timezone. Working hours are local
//!   wall-clock times (09:00–17:00 stays 09:00–17:00 across a DST change);
//!   inside a working window the clock measures real elapsed time.
//!   Non-working weekdays and configured holidays have no window.
//! * **Sales SLA** ([`sales_sla`]): one [`Handoff`] per entry into the SLA
//!   stage, with a first-response clock and an attempts clock.
//! * **Marketing SLA** ([`marketing_sla`]): MQL volume per week and the SAL
//!   rate of each week's MQL cohort.
//! * **Stalled** ([`stalled`]): people in a stage longer than its `max_days`.
//!
//! Everything is a pure function of its inputs and `as_of`: facts after
//! `as_of` are ignored, and output order is fully determined.

use std::collections::BTreeMap;

use jiff::civil::{Date, DateTime, Time};
use jiff::SignedDuration;
use serde::Serialize;

use crate::activities::Activities;
use crate::domain::Person;
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::idmap::{position, IdMap};
use crate::lifecycle::latest_per_person;
use crate::playbook::{Company, Playbook, StageKind};
use crate::sym::Sym;
use crate::time::{Timestamp, DAY_MS};
use crate::transitions::Transitions;

const HOUR_MS: f64 = 3_600_000.0;

/// Why an SLA report cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    /// The playbook has no `[sla.sales]` table.
    #[error("the playbook defines no [sla.sales]")]
    NoSalesSla,
    /// The playbook has no `[sla.marketing]` table.
    #[error("the playbook defines no [sla.marketing]")]
    NoMarketingSla,
    /// The SLA (MQL) stage is not a stage of the playbook.
    #[error("unknown SLA stage `{0}`")]
    UnknownStage(String),
    /// No funnel stage follows the MQL stage, so nothing counts as accepted.
    #[error("no funnel stage follows `{0}`: the SAL rate needs a next stage")]
    NoAcceptStage(String),
}

// ---------------------------------------------------------------------------
// Business-time arithmetic
// ---------------------------------------------------------------------------

/// Local midnight-relative minute `minute` of `date` as an instant; minute
/// 1440 is the next day's midnight. DST gaps resolve to the time after the
/// gap, folds to the first occurrence (jiff's "compatible" strategy).
fn local_instant(company: &Company, date: Date, minute: u32) -> Option<i64> {
    let (date, minute) = if minute >= 24 * 60 {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, minute)
    };
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
    let ts = company
        .timezone
        .to_timestamp(DateTime::from_parts(date, time))
        .ok()?;
    Some(ts.as_millisecond())
}

/// The local calendar date of an instant in the company timezone.
fn local_date(company: &Company, t: Timestamp) -> Date {
    company.timezone.to_datetime(t.to_jiff()).date()
}

/// True when the company calendar has any working time at all.
fn has_working_time(company: &Company) -> bool {
    company.hours.start_minute < company.hours.end_minute && company.hours.days.iter().any(|d| *d)
}

/// The working window of a local date as `[start, end)` epoch milliseconds,
/// or `None` on a non-working weekday or a holiday.
fn window(company: &Company, date: Date) -> Option<(i64, i64)> {
    let day = date.weekday().to_monday_zero_offset() as usize;
    if !company.hours.days.get(day).copied().unwrap_or(false)
        || company.holidays.binary_search(&date).is_ok()
    {
        return None;
    }
    let start = local_instant(company, date, company.hours.start_minute)?;
    let end = local_instant(company, date, company.hours.end_minute)?;
    (start < end).then_some((start, end))
}

/// The instant `hours` working hours after `start` in the company calendar.
///
/// A start outside working time begins at the next working instant (a
/// handoff at 22:00 Tuesday starts counting at 09:00 Wednesday); time on
/// non-working days and holidays is skipped. Working hours are local
/// wall-clock times, so a deadline that crosses a DST change lands on the
/// right local time. With `hours <= 0` the result is the next working
/// instant at or after `start`.
///
/// A calendar without working time (no working day, or an empty day) counts
/// all elapsed time, so the clock still ends.
pub fn business_deadline(start: Timestamp, hours: f64, company: &Company) -> Timestamp {
    let mut remaining = if hours.is_finite() && hours > 0.0 {
        (hours * HOUR_MS).round() as i64
    } else {
        0
    };
    if !has_working_time(company) {
        return Timestamp::from_millis(start.millis().saturating_add(remaining));
    }
    let mut date = local_date(company, start);
    loop {
        if let Some((ws, we)) = window(company, date) {
            let from = ws.max(start.millis());
            if from < we {
                let available = we - from;
                if remaining <= available {
                    return Timestamp::from_millis(from + remaining);
                }
                remaining -= available;
            }
        }
        date = match date.tomorrow() {
            Ok(d) => d,
            // End of jiff's calendar (year 9999): nothing further to count.
            Err(_) => return Timestamp::from_millis(start.millis().saturating_add(remaining)),
        };
    }
}

/// Working hours between two instants in the company calendar; negative
/// when `b` is before `a`.
///
/// A calendar without working time counts all elapsed time.
pub fn business_hours_between(a: Timestamp, b: Timestamp, company: &Company) -> f64 {
    if b < a {
        return -business_hours_between(b, a, company);
    }
    if !has_working_time(company) {
        return (b.millis() - a.millis()) as f64 / HOUR_MS;
    }
    let last = local_date(company, b);
    let mut date = local_date(company, a);
    let mut total: i64 = 0;
    while date <= last {
        if let Some((ws, we)) = window(company, date) {
            let from = ws.max(a.millis());
            let to = we.min(b.millis());
            if from < to {
                total += to - from;
            }
        }
        date = match date.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    total as f64 / HOUR_MS
}

/// One clock of a handoff as of `as_of`: met when its work was done in
/// time (`done`), stopped when the lead left the stage by the deadline,
/// breached once the deadline passed, else open. The direct computation
/// and the kept index ([`SlaIndex`]) both decide through this.
pub(crate) fn clock_status(
    done: bool,
    left_at: Option<Timestamp>,
    deadline: Timestamp,
    as_of: Timestamp,
) -> ClockStatus {
    if done {
        ClockStatus::Met
    } else if left_at.is_some_and(|l| l <= deadline) {
        ClockStatus::Stopped
    } else if as_of > deadline {
        ClockStatus::Breached
    } else {
        ClockStatus::Open
    }
}

/// A handoff's status from its two clocks: breached if either is, else
/// open if either is, else met if either is, else stopped.
pub(crate) fn handoff_status(response: ClockStatus, attempts: ClockStatus) -> ClockStatus {
    let both = [response, attempts];
    [ClockStatus::Breached, ClockStatus::Open, ClockStatus::Met]
        .into_iter()
        .find(|s| both.contains(s))
        .unwrap_or(ClockStatus::Stopped)
}

/// Business hours over a breached first-response deadline (up to the
/// response, the lead leaving or `as_of`, whichever came first), or left
/// on an open one.
pub(crate) fn response_hours(
    response: ClockStatus,
    deadline: Timestamp,
    responded_at: Option<Timestamp>,
    left_at: Option<Timestamp>,
    as_of: Timestamp,
    company: &Company,
) -> (Option<f64>, Option<f64>) {
    match response {
        ClockStatus::Breached => {
            let end = [responded_at, left_at, Some(as_of)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(as_of);
            (Some(business_hours_between(deadline, end, company)), None)
        }
        ClockStatus::Open => (None, Some(business_hours_between(as_of, deadline, company))),
        ClockStatus::Met | ClockStatus::Stopped => (None, None),
    }
}

/// `start` plus `days` calendar days in the company timezone: whole days
/// keep the local wall-clock time (so 14 days after 15:00 is 15:00 even
/// across a DST change); a fractional part is added as elapsed time.
pub fn calendar_days_after(start: Timestamp, days: f64, company: &Company) -> Timestamp {
    let days = if days.is_finite() { days.max(0.0) } else { 0.0 };
    let whole = days.trunc();
    let frac_ms = ((days - whole) * DAY_MS as f64).round() as i64;
    let local = company.timezone.to_datetime(start.to_jiff());
    let shifted = SignedDuration::from_hours(24)
        .checked_mul(whole as i32)
        .and_then(|d| local.checked_add(d).ok())
        .and_then(|dt| company.timezone.to_timestamp(dt).ok())
        .map(|ts| ts.as_millisecond())
        .unwrap_or_else(|| {
            start
                .millis()
                .saturating_add((whole as i64).saturating_mul(DAY_MS))
        });
    Timestamp::from_millis(shifted.saturating_add(frac_ms))
}

// ---------------------------------------------------------------------------
// Sales SLA
// ---------------------------------------------------------------------------

/// Where one SLA clock stands as of `as_of`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockStatus {
    /// Still running: the deadline is after `as_of` and nothing settled it.
    Open,
    /// Sales did what it owed before the deadline.
    Met,
    /// The deadline passed without it.
    Breached,
    /// The lead left the SLA stage before the deadline: the clock stopped
    /// without a verdict. Neither met nor breached.
    Stopped,
}

impl ClockStatus {
    /// `open`, `met`, `breached` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockStatus::Open => "open",
            ClockStatus::Met => "met",
            ClockStatus::Breached => "breached",
            ClockStatus::Stopped => "stopped",
        }
    }
}

/// One handoff to sales: a person entering the sales SLA stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Handoff {
    pub person_id: i64,
    /// The person's id in the source system, when the person is known.
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// The seller or SDR who owns the lead.
    pub owner: Option<String>,
    /// Funnel cycle of the entry (1 for the first pass).
    pub cycle: u32,
    /// When the lead entered the SLA stage: both clocks start here.
    pub entered_at: Timestamp,
    /// First-response deadline: `first_response_hours` business hours later.
    pub deadline: Timestamp,
    /// First sales activity at or after entry and not after the lead left
    /// the stage (up to `as_of`), if any.
    pub responded_at: Option<Timestamp>,
    /// The first-response clock.
    pub response: ClockStatus,
    /// Sales activities counted toward attempts (within the attempts window,
    /// before the lead left the stage, up to `as_of`).
    pub attempts: i64,
    /// Attempts the SLA asks for.
    pub attempts_required: i64,
    /// End of the attempts window: `attempts_within_days` calendar days
    /// after entry.
    pub attempts_deadline: Timestamp,
    /// The attempts clock.
    pub attempts_status: ClockStatus,
    /// When the lead left the SLA stage (moved on or off-ramped), if it did.
    pub left_at: Option<Timestamp>,
    /// The stage it moved to.
    pub left_to: Option<String>,
    /// Overall: breached if either clock is breached, else open if either
    /// is open, else met if either is met, else stopped.
    pub status: ClockStatus,
    /// For a breached first response: business hours from the deadline to
    /// the late response, the lead leaving, or `as_of`, whichever is first.
    pub overdue_hours: Option<f64>,
    /// For an open first-response clock: business hours left as of `as_of`.
    pub hours_left: Option<f64>,
    /// For a breached attempts clock: how many attempts were missing.
    pub attempts_short: i64,
}

/// SLA compliance of a group of handoffs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Compliance {
    pub handoffs: i64,
    pub open: i64,
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    /// `100 × met / (met + breached)`; `None` when nothing is settled.
    /// Open and stopped handoffs do not count.
    pub compliance_pct: Option<f64>,
}

/// One owner's compliance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerCompliance {
    /// `None` collects handoffs of leads without an owner.
    pub owner: Option<String>,
    #[serde(flatten)]
    pub compliance: Compliance,
}

/// The sales side of the SLA.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SalesSlaReport {
    pub as_of: Timestamp,
    pub stage: String,
    pub first_response_hours: f64,
    pub attempts: i64,
    pub attempts_within_days: f64,
    /// Every handoff up to `as_of`, by entry time then person id.
    pub handoffs: Vec<Handoff>,
    /// Per owner, by owner name (unowned last).
    pub by_owner: Vec<OwnerCompliance>,
    pub overall: Compliance,
}

/// Compliance counts of the overall status of `handoffs`.
pub fn compliance<'a>(handoffs: impl IntoIterator<Item = &'a Handoff>) -> Compliance {
    tally(handoffs.into_iter().map(|h| h.status))
}

/// Per-owner compliance, by owner name with unowned leads last.
pub fn compliance_by_owner<'a>(
    handoffs: impl IntoIterator<Item = &'a Handoff>,
) -> Vec<OwnerCompliance> {
    tally_by_owner(handoffs.into_iter().map(|h| (h.owner.as_deref(), h.status)))
}

/// [`compliance`] of overall statuses.
fn tally(statuses: impl IntoIterator<Item = ClockStatus>) -> Compliance {
    let mut counts = Counts::default();
    for status in statuses {
        counts.add(status);
    }
    counts.compliance()
}

/// How many handoffs have each overall status.
#[derive(Clone, Copy, Debug, Default)]
struct Counts([i64; 4]);

impl Counts {
    fn add(&mut self, status: ClockStatus) {
        self.0[status as usize] += 1;
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    fn compliance(self) -> Compliance {
        let [open, met, breached, stopped] = self.0;
        let settled = met + breached;
        Compliance {
            handoffs: open + met + breached + stopped,
            open,
            met,
            breached,
            stopped,
            compliance_pct: (settled > 0).then(|| 100.0 * met as f64 / settled as f64),
        }
    }
}

/// [`compliance_by_owner`] of (owner, overall status) pairs.
fn tally_by_owner<'a>(
    handoffs: impl IntoIterator<Item = (Option<&'a str>, ClockStatus)>,
) -> Vec<OwnerCompliance> {
    let mut groups: BTreeMap<(bool, Option<&str>), Vec<ClockStatus>> = BTreeMap::new();
    for (owner, status) in handoffs {
        groups
            .entry((owner.is_none(), owner))
            .or_default()
            .push(status);
    }
    groups
        .into_iter()
        .map(|((_, owner), statuses)| OwnerCompliance {
            owner: owner.map(str::to_string),
            compliance: tally(statuses),
        })
        .collect()
}

/// The people a computation groups items of ([`PerPerson`]), each with a
/// slot: made once and shared by its groupings (transitions, activities,
/// people), so a large history's 700,000 handed-off people are numbered
/// once, in an [`IdMap`], rather than hashed into a map per grouping.
struct Wanted {
    /// The people, in slot order (ascending id).
    ids: Vec<i64>,
    slot: IdMap,
}

impl Wanted {
    /// The people of `ids` (repeats and any order).
    fn new(ids: impl Iterator<Item = i64>) -> Self {
        let mut ids: Vec<i64> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        let mut slot = IdMap::over(ids.iter().copied());
        for (i, &id) in ids.iter().enumerate() {
            // Past `u32` ([`position`]) a person is left out, not misplaced.
            *slot.entry(id) = position(i);
        }
        Wanted { ids, slot }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn slot(&self, id: i64) -> Option<usize> {
        self.slot.get(id).map(|s| s as usize)
    }
}

/// Items of some people grouped by person: each person's items contiguous
/// in one vector, in the order they came. A map of per-person vectors
/// allocated once per lead, and a large history hands off hundreds of
/// thousands of them.
struct PerPerson<'w, T> {
    wanted: &'w Wanted,
    /// Slot `i`'s items are `items[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    items: Vec<T>,
}

/// The slot of a pair whose person is not grouped.
const UNGROUPED: u32 = IdMap::NONE;

impl<'w, T: Copy> PerPerson<'w, T> {
    /// Groups the `(person id, item)` pairs of the people in `wanted`,
    /// leaving the others out.
    ///
    /// A counting sort by slot, stable, so each run keeps input order. The
    /// pairs are read twice, to count and to place; each pair's slot is
    /// looked up once and kept as four bytes in between. A copy of every
    /// pair with its slot took 16 bytes a pair, the largest part of
    /// building the SLA index of a large history.
    fn new(wanted: &'w Wanted, pairs: impl Iterator<Item = (i64, T)> + Clone) -> Self {
        let slots: Vec<u32> = pairs
            .clone()
            .map(|(id, _)| wanted.slot.get(id).unwrap_or(UNGROUPED))
            .collect();
        let mut starts = vec![0; wanted.len() + 1];
        for &s in slots.iter().filter(|&&s| s != UNGROUPED) {
            starts[s as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let total = starts[wanted.len()];
        let placed = || {
            pairs
                .clone()
                .zip(&slots)
                .filter(|(_, &s)| s != UNGROUPED)
                .map(|((_, item), &s)| (s as usize, item))
        };
        let mut items = Vec::with_capacity(total);
        if let Some((_, first)) = placed().next() {
            items.resize(total, first);
            let mut next = starts.clone();
            for (s, item) in placed() {
                items[next[s]] = item;
                next[s] += 1;
            }
        }
        PerPerson {
            wanted,
            starts,
            items,
        }
    }

    /// Sorts each person's run by `key` (stable). Runs usually come sorted
    /// (the store reads in time order): checking first skips the sort's
    /// setup, which cost more than the check on a large history.
    fn sort_runs_by_key<K: Ord>(&mut self, key: impl Fn(&T) -> K) {
        for w in self.starts.windows(2) {
            let run = &mut self.items[w[0]..w[1]];
            if !run.is_sorted_by_key(&key) {
                run.sort_by_key(&key);
            }
        }
    }

    /// The items of `id` (empty for someone not grouped).
    fn of(&self, id: i64) -> &[T] {
        &self.items[self.range_of(id)]
    }

    /// Where the items of `id` are in `items` (empty for someone not
    /// grouped).
    fn range_of(&self, id: i64) -> std::ops::Range<usize> {
        self.wanted
            .slot(id)
            .map_or(0..0, |s| self.starts[s]..self.starts[s + 1])
    }

    /// Every grouped person with their items, in slot order.
    fn runs(&self) -> impl Iterator<Item = (i64, &[T])> {
        self.wanted
            .ids
            .iter()
            .zip(self.starts.windows(2))
            .map(|(&id, w)| (id, &self.items[w[0]..w[1]]))
    }
}

/// Positions of the transitions of the people in `wanted` up to `as_of`,
/// grouped by person, each group in (time, sequence) order.
fn person_transitions<'w>(
    transitions: &Transitions,
    as_of: Timestamp,
    wanted: &'w Wanted,
) -> PerPerson<'w, u32> {
    let ats = transitions.ats();
    let mut by_person = PerPerson::new(
        wanted,
        (transitions.people())
            .filter(|&(i, _)| ats[i] <= as_of)
            .map(|(i, id)| (id, position(i))),
    );
    by_person.sort_runs_by_key(|&i| transitions.key(i as usize));
    by_person
}

/// People who entered `stage` from `from` (when given) up to `as_of`. Only
/// they matter to the SLA clocks: most of a large history never reaches the
/// handoff stage, and grouping it all was most of the SLA's time.
fn entered(
    transitions: &Transitions,
    from: Option<Timestamp>,
    as_of: Timestamp,
    stage: &str,
) -> Wanted {
    let ats = transitions.ats();
    Wanted::new(
        (transitions.people())
            .filter(|&(i, _)| {
                let at = ats[i];
                at <= as_of && from.is_none_or(|f| at >= f) && transitions.to(i) == stage
            })
            .map(|(_, id)| id),
    )
}

/// The sales SLA as of `as_of` (DESIGN §4).
///
/// Definitions:
/// * A **handoff** is a transition of a person into `sla.sales.stage` at or
///   before `as_of`. Entries marked `skipped` (the lead passed through the
///   stage on its way further in the same move) open no clock.
/// * The lead **leaves** at its next transition to any other stage (a later
///   funnel stage or an off-ramp).
/// * **First response**: the first [`crate::domain::Activity`] of the person at or after
///   entry, not after the lead left, and at or before `as_of`. Met when it comes by the deadline
///   (`first_response_hours` business hours after entry) and not after the
///   lead left; stopped when the lead leaves by the deadline without one;
///   breached when `as_of` is past the deadline without either; else open.
/// * **Attempts**: activities from entry to the end of the window
///   (`attempts_within_days` calendar days, see [`calendar_days_after`]),
///   the lead leaving, or `as_of`, whichever is first. Met once there are
///   `attempts`; stopped when the lead leaves inside the window with fewer;
///   breached when `as_of` is past the window with fewer; else open.
pub fn sales_sla(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    activities: &Activities,
    as_of: Timestamp,
) -> Result<SalesSlaReport, SlaError> {
    let sla = sales_terms(pb)?;
    let wanted = entered(transitions, None, as_of, &sla.stage);
    let handoffs = handoffs_of(pb, sla, people, transitions, activities, as_of, &wanted);
    let by_owner = compliance_by_owner(&handoffs);
    let overall = compliance(&handoffs);
    Ok(SalesSlaReport {
        as_of,
        stage: sla.stage.clone(),
        first_response_hours: sla.first_response_hours,
        attempts: sla.attempts,
        attempts_within_days: sla.attempts_within_days,
        handoffs,
        by_owner,
        overall,
    })
}

/// The handoffs still waiting in the SLA stage as of `as_of`: those of
/// [`sales_sla`] with no `left_at`, by entry time then person id. This is
/// the SLA inbox; it computes only the people whose latest transition is
/// into the stage (a lead that moved anywhere since has left every earlier
/// entry too), not the whole history's settled handoffs.
pub fn waiting_handoffs(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    activities: &Activities,
    as_of: Timestamp,
) -> Result<Vec<Handoff>, SlaError> {
    let sla = sales_terms(pb)?;
    let wanted = Wanted::new(
        latest_per_person(transitions, as_of)
            .into_iter()
            .map(|p| p as usize)
            .filter(|&p| transitions.to(p) == sla.stage)
            .map(|p| transitions.subject(p).id()),
    );
    let mut handoffs = handoffs_of(pb, sla, people, transitions, activities, as_of, &wanted);
    handoffs.retain(|h| h.left_at.is_none());
    Ok(handoffs)
}

/// The handoffs that entered the SLA stage within `window` (up to
/// `as_of`): those of [`sales_sla`] with `entered_at` in the window, by
/// [`HandoffKey`], computed only for the people who entered the stage in
/// it (a weekly report reads one week of a long history).
pub fn handoffs_entered(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    activities: &Activities,
    window: crate::metrics::Window,
    as_of: Timestamp,
) -> Result<Vec<Handoff>, SlaError> {
    let q = HandoffQuery {
        window: Some(window),
        limit: usize::MAX,
        ..HandoffQuery::default()
    };
    Ok(handoff_page(pb, people, transitions, activities, as_of, q)?.handoffs)
}

/// Which handoffs [`handoff_page`] counts and writes out.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandoffQuery<'a> {
    /// Only the handoffs entered within this window (up to `as_of`).
    pub window: Option<crate::metrics::Window>,
    /// Only the handoffs of this owner's leads.
    pub owner: Option<&'a str>,
    /// List only the handoffs after this key, the [`HandoffPage::next`]
    /// of the page before. It does not change the counts.
    pub after: Option<HandoffKey>,
    /// List at most this many.
    pub limit: usize,
}

/// The handoffs of [`sales_sla`] that match a [`HandoffQuery`]: all of them
/// counted, one page written out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HandoffPage {
    /// How many handoffs match the window and owner.
    pub total: usize,
    /// Their compliance.
    pub overall: Compliance,
    /// Their compliance per owner ([`compliance_by_owner`]).
    pub by_owner: Vec<OwnerCompliance>,
    /// The page: at most `limit` of them after `after`, in order.
    pub handoffs: Vec<Handoff>,
    /// When more match after the page, the key to ask for them with.
    pub next: Option<HandoffKey>,
}

/// Where a handoff is in the list: entry time, person id and the entry
/// transition's sequence number (unique even when a person enters the
/// stage twice at one instant).
pub type HandoffKey = (Timestamp, i64, i64);

/// One page of the sales SLA's handoffs with the compliance of all that
/// match: equal to filtering [`sales_sla`]'s handoffs, but only the page's
/// handoffs copy their person's strings (a large history hands off
/// hundreds of thousands of leads), and with a window only the people who
/// entered the stage in it are computed.
pub fn handoff_page(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    activities: &Activities,
    as_of: Timestamp,
    q: HandoffQuery<'_>,
) -> Result<HandoffPage, SlaError> {
    let sla = sales_terms(pb)?;
    let (from, until) = match q.window {
        Some(w) => (
            Some(w.from),
            Timestamp::from_millis(w.to.millis().saturating_sub(1)).min(as_of),
        ),
        None => (None, as_of),
    };
    let wanted = entered(transitions, from, until, &sla.stage);
    let mut clocks = clocks_of(pb, sla, people, transitions, activities, as_of, &wanted);
    clocks.retain(|c| {
        q.window.is_none_or(|w| w.contains(c.entered_at))
            && q.owner.is_none_or(|o| c.owner() == Some(o))
    });
    let start = q
        .after
        .map_or(0, |a| clocks.partition_point(|c| c.key() <= a));
    let rest = &clocks[start..];
    let page = &rest[..rest.len().min(q.limit)];
    Ok(HandoffPage {
        total: clocks.len(),
        overall: tally(clocks.iter().map(|c| c.status)),
        by_owner: tally_by_owner(clocks.iter().map(|c| (c.owner(), c.status))),
        handoffs: page.iter().map(|c| c.handoff(sla)).collect(),
        next: (rest.len() > page.len())
            .then(|| page.last().map(Clock::key))
            .flatten(),
    })
}

/// The playbook's sales SLA, checked to name a known stage.
pub fn sales_terms(pb: &Playbook) -> Result<&crate::playbook::SalesSla, SlaError> {
    let sla = pb.sla.sales.as_ref().ok_or(SlaError::NoSalesSla)?;
    if pb.stage(&sla.stage).is_none() {
        return Err(SlaError::UnknownStage(sla.stage.clone()));
    }
    Ok(sla)
}

/// Every handoff of the people in `wanted` (see [`sales_sla`]), by
/// [`HandoffKey`].
fn handoffs_of(
    pb: &Playbook,
    sla: &crate::playbook::SalesSla,
    people: &[Person],
    transitions: &Transitions,
    activities: &Activities,
    as_of: Timestamp,
    wanted: &Wanted,
) -> Vec<Handoff> {
    clocks_of(pb, sla, people, transitions, activities, as_of, wanted)
        .iter()
        .map(|c| c.handoff(sla))
        .collect()
}

/// A [`Handoff`] with the person borrowed rather than its strings copied:
/// what compliance and paging need of every handoff, the strings only of
/// the handoffs written out.
struct Clock<'a> {
    person_id: i64,
    person: Option<&'a Person>,
    /// When the lead left the stage, and for which stage.
    leave: Option<(Timestamp, Sym)>,
    /// The entry transition's sequence number: with the entry time and
    /// person, a unique key (a person can enter twice at one instant).
    seq: i64,
    cycle: u32,
    entered_at: Timestamp,
    deadline: Timestamp,
    responded_at: Option<Timestamp>,
    response: ClockStatus,
    attempts: i64,
    attempts_deadline: Timestamp,
    attempts_status: ClockStatus,
    status: ClockStatus,
    overdue_hours: Option<f64>,
    hours_left: Option<f64>,
    attempts_short: i64,
}

impl Clock<'_> {
    fn owner(&self) -> Option<&str> {
        self.person.and_then(|p| p.owner.as_deref())
    }

    /// The order of handoffs: entry time, person id, entry sequence.
    fn key(&self) -> HandoffKey {
        (self.entered_at, self.person_id, self.seq)
    }

    fn handoff(&self, sla: &crate::playbook::SalesSla) -> Handoff {
        Handoff {
            person_id: self.person_id,
            external_id: self.person.map(|p| p.external_id().to_string()),
            email: self.person.and_then(|p| p.email().map(String::from)),
            owner: self.owner().map(str::to_string),
            cycle: self.cycle,
            entered_at: self.entered_at,
            deadline: self.deadline,
            responded_at: self.responded_at,
            response: self.response,
            attempts: self.attempts,
            attempts_required: sla.attempts,
            attempts_deadline: self.attempts_deadline,
            attempts_status: self.attempts_status,
            left_at: self.leave.map(|l| l.0),
            left_to: self.leave.map(|l| l.1.to_string()),
            status: self.status,
            overdue_hours: self.overdue_hours,
            hours_left: self.hours_left,
            attempts_short: self.attempts_short,
        }
    }
}

/// The [`Clock`] of every handoff of the people in `wanted`, in
/// [`Clock::key`] order.
fn clocks_of<'a>(
    pb: &Playbook,
    sla: &crate::playbook::SalesSla,
    people: &'a [Person],
    transitions: &'a Transitions,
    activities: &Activities,
    as_of: Timestamp,
    wanted: &Wanted,
) -> Vec<Clock<'a>> {
    let company = &pb.company;
    let people = PerPerson::new(wanted, people.iter().map(|p| (p.id, p)));
    let mut acts = PerPerson::new(
        wanted,
        activities.people_and_times().filter(|&(_, at)| at <= as_of),
    );
    acts.sort_runs_by_key(|&at| at);

    // Most people enter the stage once: this is about the final size.
    let mut handoffs = Vec::with_capacity(wanted.len());
    let by_person = person_transitions(transitions, as_of, wanted);
    for (person_id, ts) in by_person.runs() {
        let person = people.of(person_id).first();
        let person_acts = acts.of(person_id);
        for (i, &p) in ts.iter().enumerate() {
            let entry = transitions.get(p as usize);
            if entry.to != sla.stage || entry.skipped {
                continue;
            }
            let leave = ts[i + 1..]
                .iter()
                .map(|&j| j as usize)
                .find(|&j| transitions.to(j) != sla.stage)
                .map(|j| (transitions.ats()[j], transitions.to(j)));
            let entered_at = entry.at;
            let left_at = leave.map(|l| l.0);
            let deadline = business_deadline(entered_at, sla.first_response_hours, company);
            let attempts_deadline =
                calendar_days_after(entered_at, sla.attempts_within_days, company);

            // First response.
            let responded_at = person_acts
                .iter()
                .copied()
                .find(|a| *a >= entered_at && left_at.is_none_or(|l| *a <= l));
            let response = clock_status(
                responded_at.is_some_and(|r| r <= deadline),
                left_at,
                deadline,
                as_of,
            );
            let (overdue_hours, hours_left) =
                response_hours(response, deadline, responded_at, left_at, as_of, company);

            // Attempts.
            let window_end = [Some(attempts_deadline), left_at, Some(as_of)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(as_of);
            let attempts = person_acts
                .iter()
                .filter(|a| **a >= entered_at && **a <= window_end)
                .count() as i64;
            let attempts_status =
                clock_status(attempts >= sla.attempts, left_at, attempts_deadline, as_of);
            let attempts_short = if attempts_status == ClockStatus::Breached {
                sla.attempts - attempts
            } else {
                0
            };

            let status = handoff_status(response, attempts_status);

            handoffs.push(Clock {
                person_id,
                person: person.copied(),
                leave,
                seq: entry.seq,
                cycle: entry.cycle,
                entered_at,
                deadline,
                responded_at,
                response,
                attempts,
                attempts_deadline,
                attempts_status,
                status,
                overdue_hours,
                hours_left,
                attempts_short,
            });
        }
    }
    // The key is unique (it ends in the entry's seq): an unstable sort
    // gives the one order.
    handoffs.sort_unstable_by_key(Clock::key);
    handoffs
}

// ---------------------------------------------------------------------------
// Marketing SLA
// ---------------------------------------------------------------------------

/// Marketing's commitments for one week.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketingWeek {
    /// Monday of the week in the company timezone (`YYYY-MM-DD`).
    pub week_start_date: String,
    /// ISO week, e.g. `2026-W10`.
    pub iso_week: String,
    /// Monday 00:00 local time, as an instant.
    pub starts_at: Timestamp,
    /// The next Monday 00:00 local time (exclusive end).
    pub ends_at: Timestamp,
    /// Entries into the MQL stage during the week.
    pub mqls: i64,
    pub mql_target: f64,
    /// Open while the week is not over as of `as_of`; then met when
    /// `mqls >= mql_per_week`, else breached.
    pub volume_status: ClockStatus,
    /// MQLs of this week's cohort that entered the SAL stage by `as_of`.
    pub sals: i64,
    /// Cohort MQLs still in the MQL stage as of `as_of` (not yet decided).
    pub pending: i64,
    /// `sals / mqls`; `None` without MQLs.
    pub sal_rate: Option<f64>,
    pub sal_rate_min: f64,
    /// Open while the week is not over; then met when the rate reaches
    /// `sal_rate_min`, breached when below it, and `None` without MQLs.
    pub sal_rate_status: Option<ClockStatus>,
}

/// The marketing side of the SLA.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketingSlaReport {
    pub as_of: Timestamp,
    /// The MQL stage (the sales SLA stage, or `mql`).
    pub mql_stage: String,
    /// The SAL stage: the funnel stage right after the MQL stage.
    pub sal_stage: String,
    /// Every week from the first reported week to the week of `as_of`.
    pub weeks: Vec<MarketingWeek>,
    /// `100 × met / (met + breached)` over weeks' volume status.
    pub volume_compliance_pct: Option<f64>,
    /// `100 × met / (met + breached)` over weeks' SAL-rate status.
    pub sal_rate_compliance_pct: Option<f64>,
}

/// Monday 00:00 (local) of the week containing `t`, as a local date.
fn week_monday(company: &Company, t: Timestamp) -> Date {
    let d = local_date(company, t);
    let back = i64::from(d.weekday().to_monday_zero_offset());
    d.checked_sub(SignedDuration::from_hours(24 * back))
        .unwrap_or(d)
}

fn pct(met: i64, breached: i64) -> Option<f64> {
    let settled = met + breached;
    (settled > 0).then(|| 100.0 * met as f64 / settled as f64)
}

/// The marketing SLA as of `as_of`, week by week (DESIGN §4).
///
/// Weeks start Monday 00:00 in the company timezone. The MQL stage is the
/// sales SLA stage (or the stage `mql` when there is no sales SLA); the SAL
/// stage is the funnel stage right after it. Every MQL entry counts toward
/// volume, passed-through (skipped) entries included, as in the waterfall.
/// An MQL entry is accepted when the same person enters the SAL stage after
/// it and before that person's next MQL entry (recycled leads start a new
/// cycle), by `as_of`. Weeks run from the week of `since` (or of the first
/// MQL entry) to the week containing `as_of`, weeks without MQLs included.
pub fn marketing_sla(
    pb: &Playbook,
    transitions: &Transitions,
    since: Option<Timestamp>,
    as_of: Timestamp,
) -> Result<MarketingSlaReport, SlaError> {
    let terms = MarketingTerms::of(pb)?;
    let (mql, sal) = (terms.mql, terms.sal);
    let company = &pb.company;

    // (entry time, accepted, still pending) per MQL entry. With `since`,
    // only people with an entry from the start of its week on can count.
    let mut entries: Vec<(Timestamp, bool, bool)> = Vec::new();
    let from = since
        .and_then(|s| local_instant(company, week_monday(company, s), 0))
        .map(Timestamp::from_millis);
    let wanted = entered(transitions, from, as_of, &mql.id);
    for (_, ts) in person_transitions(transitions, as_of, &wanted).runs() {
        let to = |&x: &u32| transitions.to(x as usize);
        for (i, t) in ts.iter().enumerate() {
            if to(t) != mql.id {
                continue;
            }
            let rest = &ts[i + 1..];
            let cycle_end = rest
                .iter()
                .position(|x| to(x) == mql.id)
                .unwrap_or(rest.len());
            let cycle = &rest[..cycle_end];
            let accepted = cycle.iter().any(|x| to(x) == sal.id);
            let pending = !accepted && cycle.iter().all(|x| to(x) == mql.id);
            entries.push((transitions.ats()[*t as usize], accepted, pending));
        }
    }
    entries.sort();

    let first = since.or_else(|| entries.first().map(|e| e.0));
    Ok(terms.report(company, first, as_of, |starts_at, ends_at| {
        // `entries` is sorted by time.
        let lo = entries.partition_point(|e| e.0 < starts_at);
        let hi = entries.partition_point(|e| e.0 < ends_at);
        let cohort = &entries[lo..hi.max(lo)];
        Cohort {
            mqls: cohort.len() as i64,
            sals: cohort.iter().filter(|e| e.1).count() as i64,
            pending: cohort.iter().filter(|e| e.2).count() as i64,
        }
    }))
}

/// One week's MQL entries: how many, how many accepted, how many pending.
struct Cohort {
    mqls: i64,
    sals: i64,
    pending: i64,
}

/// The playbook's marketing SLA with its MQL and SAL stages.
struct MarketingTerms<'p> {
    msla: &'p crate::playbook::MarketingSla,
    mql: &'p crate::playbook::Stage,
    sal: &'p crate::playbook::Stage,
}

impl<'p> MarketingTerms<'p> {
    /// The terms, or why the playbook has none (see [`marketing_sla`]).
    fn of(pb: &'p Playbook) -> Result<Self, SlaError> {
        let msla = pb.sla.marketing.as_ref().ok_or(SlaError::NoMarketingSla)?;
        let mql = mql_stage(pb);
        let mql = pb
            .stage(mql)
            .ok_or_else(|| SlaError::UnknownStage(mql.to_string()))?;
        let sal = mql
            .funnel_index
            .and_then(|i| pb.funnel().find(|s| s.funnel_index == Some(i + 1)))
            .ok_or_else(|| SlaError::NoAcceptStage(mql.id.clone()))?;
        Ok(MarketingTerms { msla, mql, sal })
    }

    /// The report from the week of `first` to the week of `as_of` (none
    /// without `first`), each week's numbers from `cohort(starts_at,
    /// ends_at)`.
    fn report(
        &self,
        company: &Company,
        first: Option<Timestamp>,
        as_of: Timestamp,
        cohort: impl Fn(Timestamp, Timestamp) -> Cohort,
    ) -> MarketingSlaReport {
        let msla = self.msla;
        let mut weeks = Vec::new();
        if let Some(first) = first {
            let last_monday = week_monday(company, as_of);
            let mut monday = week_monday(company, first);
            while monday <= last_monday {
                let next = match monday.checked_add(SignedDuration::from_hours(24 * 7)) {
                    Ok(d) => d,
                    Err(_) => break,
                };
                let (Some(start), Some(end)) = (
                    local_instant(company, monday, 0),
                    local_instant(company, next, 0),
                ) else {
                    break;
                };
                let (starts_at, ends_at) =
                    (Timestamp::from_millis(start), Timestamp::from_millis(end));
                let Cohort {
                    mqls,
                    sals,
                    pending,
                } = cohort(starts_at, ends_at);
                let over = as_of >= ends_at;
                let volume_status = if !over {
                    ClockStatus::Open
                } else if mqls as f64 >= msla.mql_per_week {
                    ClockStatus::Met
                } else {
                    ClockStatus::Breached
                };
                let sal_rate = (mqls > 0).then(|| sals as f64 / mqls as f64);
                let sal_rate_status = sal_rate.map(|r| {
                    if !over {
                        ClockStatus::Open
                    } else if r >= msla.sal_rate_min {
                        ClockStatus::Met
                    } else {
                        ClockStatus::Breached
                    }
                });
                let iso = monday.iso_week_date();
                weeks.push(MarketingWeek {
                    week_start_date: monday.to_string(),
                    iso_week: format!("{}-W{:02}", iso.year(), iso.week()),
                    starts_at,
                    ends_at,
                    mqls,
                    mql_target: msla.mql_per_week,
                    volume_status,
                    sals,
                    pending,
                    sal_rate,
                    sal_rate_min: msla.sal_rate_min,
                    sal_rate_status,
                });
                monday = next;
            }
        }
        let count = |f: &dyn Fn(&MarketingWeek) -> Option<ClockStatus>, s: ClockStatus| {
            weeks.iter().filter(|w| f(w) == Some(s)).count() as i64
        };
        let vol = |w: &MarketingWeek| Some(w.volume_status);
        let rate = |w: &MarketingWeek| w.sal_rate_status;
        MarketingSlaReport {
            as_of,
            mql_stage: self.mql.id.clone(),
            sal_stage: self.sal.id.clone(),
            volume_compliance_pct: pct(
                count(&vol, ClockStatus::Met),
                count(&vol, ClockStatus::Breached),
            ),
            sal_rate_compliance_pct: pct(
                count(&rate, ClockStatus::Met),
                count(&rate, ClockStatus::Breached),
            ),
            weeks,
        }
    }
}

/// The MQL stage of the marketing SLA: the sales SLA stage, or `mql`.
fn mql_stage(pb: &Playbook) -> &str {
    pb.sla.sales.as_ref().map_or("mql", |s| s.stage.as_str())
}

// ---------------------------------------------------------------------------
// Stalled leads
// ---------------------------------------------------------------------------

/// A person left in a stage longer than its `max_days`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StalledLead {
    pub person_id: i64,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub owner: Option<String>,
    pub stage: String,
    pub entered_at: Timestamp,
    /// Elapsed days (24-hour days) from entry to `as_of`.
    pub days_in_stage: f64,
    pub max_days: f64,
    /// `days_in_stage - max_days`.
    pub days_over: f64,
}

/// People whose current stage (as of `as_of`) has `max_days` and who have
/// been in it longer than that, oldest entry first (ties by person id).
/// Days are elapsed time divided by 24 hours, not business days. Terminal
/// stages (disqualified) are never stalled.
pub fn stalled(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    as_of: Timestamp,
) -> Vec<StalledLead> {
    stalled_summary(pb, people, transitions, as_of, usize::MAX).leads
}

/// How many leads are stalled ([`stalled`]), per stage, and the first few.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StalledSummary {
    /// All stalled leads.
    pub total: usize,
    /// Stalled leads per stage id, in playbook stage order, stages with
    /// none left out.
    pub by_stage: Vec<(String, usize)>,
    /// The first `shown` of [`stalled`]'s list.
    pub leads: Vec<StalledLead>,
}

/// [`stalled`] counted per stage, with only its first `shown` leads written
/// out (the tens of thousands of others are counted, not copied).
pub fn stalled_summary(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    as_of: Timestamp,
    shown: usize,
) -> StalledSummary {
    stalled_page(
        pb,
        people,
        transitions,
        as_of,
        StalledPage {
            owner: None,
            after: None,
            limit: shown,
        },
    )
}

/// Which stalled leads [`stalled_page`] counts and writes out.
#[derive(Clone, Copy, Debug, Default)]
pub struct StalledPage<'a> {
    /// Only the leads of this owner, counted and listed.
    pub owner: Option<&'a str>,
    /// List only the leads after this `(entered_at, person_id)`, the key
    /// the list is sorted by (the last lead of the page before). It does
    /// not change the counts.
    pub after: Option<(Timestamp, i64)>,
    /// List at most this many.
    pub limit: usize,
}

/// [`stalled`] of one owner (or all), counted per stage, with one page of
/// the list written out.
pub fn stalled_page(
    pb: &Playbook,
    people: &[Person],
    transitions: &Transitions,
    as_of: Timestamp,
    page: StalledPage<'_>,
) -> StalledSummary {
    let owned: Option<FxHashSet<i64>> = page.owner.map(|o| {
        people
            .iter()
            .filter(|p| p.owner.as_deref() == Some(o))
            .map(|p| p.id)
            .collect()
    });
    // Where each person is now is their latest transition's stage, entered
    // at its time (what replaying their history gives). Sort keys first,
    // with the stage's position in the playbook.
    // (entered at, person) and the stage's position: 24 bytes a lead.
    let mut found: Vec<((Timestamp, i64), u32)> = Vec::new();
    for p in latest_per_person(transitions, as_of) {
        let p = p as usize;
        let person_id = transitions.subject(p).id();
        if owned.as_ref().is_some_and(|o| !o.contains(&person_id)) {
            continue;
        }
        let to = transitions.to(p);
        let Some(i) = pb.stages.iter().position(|s| s.id == to) else {
            continue;
        };
        let stage = &pb.stages[i];
        let Some(max_days) = stage.max_days else {
            continue;
        };
        let at = transitions.ats()[p];
        if stage.kind != StageKind::Terminal && at.days_until(as_of) > max_days {
            found.push(((at, person_id), position(i)));
        }
    }
    let mut per_stage = vec![0; pb.stages.len()];
    for &(_, i) in &found {
        per_stage[i as usize] += 1;
    }
    if let Some(after) = page.after {
        found.retain(|f| f.0 > after);
    }
    let shown = page.limit.min(found.len());
    if shown < found.len() {
        found.select_nth_unstable_by_key(shown, |f| f.0);
    }
    found.truncate(shown);
    found.sort_unstable_by_key(|f| f.0);
    // Only the listed people are looked up: a map of every person cost
    // more than the rest of the list.
    let listed: FxHashSet<i64> = found.iter().map(|f| f.0 .1).collect();
    let people: FxHashMap<i64, &Person> = people
        .iter()
        .filter(|p| listed.contains(&p.id))
        .map(|p| (p.id, p))
        .collect();
    let leads = found
        .into_iter()
        .map(|((entered_at, person_id), i)| {
            let stage = &pb.stages[i as usize];
            let max_days = stage.max_days.unwrap_or_default();
            let person = people.get(&person_id);
            let days_in_stage = entered_at.days_until(as_of);
            StalledLead {
                person_id,
                external_id: person.map(|p| p.external_id().to_string()),
                email: person.and_then(|p| p.email().map(String::from)),
                owner: person.and_then(|p| p.owner.map(String::from)),
                stage: stage.id.clone(),
                entered_at,
                days_in_stage,
                max_days,
                days_over: days_in_stage - max_days,
            }
        })
        .collect();
    StalledSummary {
        total: per_stage.iter().sum(),
        by_stage: pb
            .stages
            .iter()
            .zip(per_stage)
            .filter(|&(_, n)| n > 0)
            .map(|(s, n)| (s.id.clone(), n))
            .collect(),
        leads,
    }
}

mod kept;
pub use kept::SlaIndex;

#[cfg(test)]
mod tests;
