//! Revenue after the sale: annual recurring revenue (ARR) per account and
//! its movement over a period — net and gross revenue retention, logo
//! retention and expansion revenue (DESIGN §5 "retention", issue 13).
//!
//! **ARR of an account at an instant `t`** replays, in time order, the
//! account's won deals closed before `t` and its churn events before `t`:
//! a won `new` deal adds its amount, a won `expansion` deal adds its amount,
//! a won `renewal` replaces the ARR with its amount (the renewed contract
//! value, so a smaller renewal is a contraction), and a churn sets it to 0.
//! A churn event is a transition of the account into [`CHURNED`] or a lost
//! `renewal` deal. Deal amounts are annual contract values in the playbook
//! currency; deals without an account are not counted.
//!
//! **Period convention.** For a window `[from, to)` read as of `as_of`, the
//! start state is everything strictly before `from`, the end state everything
//! strictly before `min(to, as_of + 1 ms)` (events at `as_of` count). The
//! cohort is the accounts with ARR > 0 at the start. For each of them,
//! `delta = end − start`: a positive delta is expansion, a negative delta
//! with end > 0 is contraction, end = 0 is churn of the whole start ARR.
//!
//! - NRR = (start + expansion − contraction − churn) / start
//! - GRR = (start − contraction − churn) / start
//! - logo retention = cohort accounts with end ARR > 0 / cohort accounts
//! - expansion revenue = amounts of won `expansion` deals closed in the
//!   window (any account, including ones that became customers in it).
//!
//! Accounts that become customers during the period are new ARR, outside
//! the cohort.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Deal, DealStatus, Subject};
use crate::time::Timestamp;
use crate::transitions::Transitions;

use super::{ratio, Window};

/// The account stage a churn is recorded as.
pub const CHURNED: &str = "churned";

/// The kind of a deal: first sale, renewal of a contract, or more revenue
/// from an existing customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DealKind {
    /// A first (or additional) contract.
    New,
    /// The renewal of an existing contract; its amount replaces the ARR.
    Renewal,
    /// An upsell or cross-sell to an existing customer.
    Expansion,
}

impl DealKind {
    /// `new`, `renewal` or `expansion` (any case); `None` otherwise.
    pub fn parse(s: &str) -> Option<DealKind> {
        // Compared in place: this runs for every deal in most metrics, and a
        // lower-cased copy per deal was a visible share of the scorecard.
        let s = s.trim();
        [DealKind::New, DealKind::Renewal, DealKind::Expansion]
            .into_iter()
            .find(|k| s.eq_ignore_ascii_case(k.as_str()))
    }

    /// The kind of a stored deal; anything unknown is a new deal.
    pub fn of(deal: &Deal) -> DealKind {
        DealKind::parse(&deal.kind).unwrap_or(DealKind::New)
    }

    /// True for new business (`new`, or an unknown kind): what funnel-side
    /// metrics count (pipeline, won revenue and deals, win rate, lost deals,
    /// gaps, attribution revenue, plan deal size). Renewals and expansions
    /// belong to retention (NRR, GRR, expansion revenue).
    pub fn is_new_business(deal: &Deal) -> bool {
        DealKind::of(deal) == DealKind::New
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DealKind::New => "new",
            DealKind::Renewal => "renewal",
            DealKind::Expansion => "expansion",
        }
    }
}

/// One event that changes an account's ARR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ArrEvent {
    /// Won deal: kind and amount.
    Won(DealKind, i64),
    /// Churn (sorted after deals at the same instant).
    Churn,
}

/// The ARR-relevant events of every account, sorted by time.
#[derive(Clone, Debug, Default)]
pub struct ArrBook {
    events: BTreeMap<i64, Vec<(Timestamp, ArrEvent)>>,
    /// Won expansion deals: (account, closed at, amount).
    expansions: Vec<(i64, Timestamp, i64)>,
}

impl ArrBook {
    /// Collects events from deals and account transitions (person transitions
    /// are ignored). Nothing after `as_of` is read.
    pub fn new(deals: &[Deal], account_transitions: &Transitions, as_of: Timestamp) -> ArrBook {
        let mut book = ArrBook::default();
        for d in deals {
            let (Some(account), Some(closed)) = (d.account_id, d.closed_at) else {
                continue;
            };
            if closed > as_of {
                continue;
            }
            let kind = DealKind::of(d);
            let ev = match d.status {
                DealStatus::Won => ArrEvent::Won(kind, d.amount.minor),
                DealStatus::Lost if kind == DealKind::Renewal => ArrEvent::Churn,
                _ => continue,
            };
            if d.status == DealStatus::Won && kind == DealKind::Expansion {
                book.expansions.push((account, closed, d.amount.minor));
            }
            book.events.entry(account).or_default().push((closed, ev));
        }
        for t in account_transitions {
            if let Subject::Account(id) = t.subject {
                if t.to == CHURNED && t.at <= as_of {
                    book.events
                        .entry(id)
                        .or_default()
                        .push((t.at, ArrEvent::Churn));
                }
            }
        }
        for ev in book.events.values_mut() {
            ev.sort();
        }
        book
    }

    /// Account ids with any event, ascending.
    pub fn accounts(&self) -> impl Iterator<Item = i64> + '_ {
        self.events.keys().copied()
    }

    /// ARR of `account` from events strictly before `t` (module docs).
    pub fn arr_before(&self, account: i64, t: Timestamp) -> i64 {
        let mut arr = 0i64;
        for (at, ev) in self.events.get(&account).map(Vec::as_slice).unwrap_or(&[]) {
            if *at >= t {
                break;
            }
            arr = match ev {
                ArrEvent::Won(DealKind::Renewal, amount) => *amount,
                ArrEvent::Won(_, amount) => arr.saturating_add(*amount),
                ArrEvent::Churn => 0,
            };
        }
        arr
    }
}

/// How recurring revenue moved over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Retention {
    /// The measured window.
    pub window: Window,
    /// ARR of the cohort (customers at the start), minor units.
    pub start_arr: i64,
    /// ARR increases of cohort accounts.
    pub expansion: i64,
    /// ARR decreases of cohort accounts still customers at the end.
    pub contraction: i64,
    /// Start ARR of cohort accounts with no ARR at the end.
    pub churn: i64,
    /// ARR of accounts that were not customers at the start.
    pub new_arr: i64,
    /// Cohort accounts (customers at the start).
    pub start_logos: u64,
    /// Cohort accounts still customers at the end.
    pub retained_logos: u64,
    /// Won expansion deals closed in the window (any account).
    pub expansion_revenue: i64,
    /// Net revenue retention (`None` without start ARR).
    pub nrr: Option<f64>,
    /// Gross revenue retention.
    pub grr: Option<f64>,
    /// Logo retention.
    pub logo_retention: Option<f64>,
}

/// NRR and GRR from their components:
/// `((start + expansion − contraction − churn) / start, (start − contraction − churn) / start)`.
pub fn nrr_grr(
    start: i64,
    expansion: i64,
    contraction: i64,
    churn: i64,
) -> (Option<f64>, Option<f64>) {
    let s = start as f64;
    (
        ratio(s + expansion as f64 - contraction as f64 - churn as f64, s),
        ratio(s - contraction as f64 - churn as f64, s),
    )
}

/// Retention over `window` as of `as_of` for the accounts `include` keeps
/// (e.g. one tier or group; `|_| true` for all). See the module docs.
pub fn retention(
    book: &ArrBook,
    window: Window,
    as_of: Timestamp,
    include: &dyn Fn(i64) -> bool,
) -> Retention {
    let end = window
        .to
        .min(Timestamp::from_millis(as_of.millis().saturating_add(1)));
    let mut r = Retention {
        window,
        start_arr: 0,
        expansion: 0,
        contraction: 0,
        churn: 0,
        new_arr: 0,
        start_logos: 0,
        retained_logos: 0,
        expansion_revenue: 0,
        nrr: None,
        grr: None,
        logo_retention: None,
    };
    for a in book.accounts().filter(|a| include(*a)) {
        let start = book.arr_before(a, window.from);
        let finish = book.arr_before(a, end);
        if start > 0 {
            r.start_logos += 1;
            r.start_arr = r.start_arr.saturating_add(start);
            if finish == 0 {
                r.churn = r.churn.saturating_add(start);
            } else {
                r.retained_logos += 1;
                if finish > start {
                    r.expansion = r.expansion.saturating_add(finish - start);
                } else {
                    r.contraction = r.contraction.saturating_add(start - finish);
                }
            }
        } else {
            r.new_arr = r.new_arr.saturating_add(finish);
        }
    }
    r.expansion_revenue = book
        .expansions
        .iter()
        .filter(|(a, at, _)| include(*a) && window.contains_as_of(*at, as_of))
        .fold(0i64, |s, (_, _, amount)| s.saturating_add(*amount));
    (r.nrr, r.grr) = nrr_grr(r.start_arr, r.expansion, r.contraction, r.churn);
    r.logo_retention = ratio(r.retained_logos as f64, r.start_logos as f64);
    r
}

/// The value of a retention goal metric (`nrr`, `grr`, `logo_retention`,
/// `expansion_revenue`), `None` for other names.
pub fn metric_value(r: &Retention, metric: &str) -> Option<Option<f64>> {
    match metric {
        "nrr" => Some(r.nrr),
        "grr" => Some(r.grr),
        "logo_retention" => Some(r.logo_retention),
        "expansion_revenue" => Some(Some(r.expansion_revenue as f64)),
        _ => None,
    }
}

/// A retention goal metric per group, as [`super::scorecard::metric_actuals`]
/// reports it. An account's group is the group of the person on its
/// earliest deal (accounts without one are in [`super::NONE`]); without
/// grouping every account is in [`super::ALL`].
pub fn grouped(
    history: &super::History<'_>,
    metric: &str,
    window: Window,
    as_of: Timestamp,
    grouping: super::Grouping<'_>,
) -> BTreeMap<String, Option<f64>> {
    grouped_all(history, window, as_of, grouping)
        .into_iter()
        .filter_map(|(g, r)| metric_value(&r, metric).map(|v| (g, v)))
        .collect()
}

/// Every retention number per group ([`grouped`] reads one of them): the
/// leading indicators ask for four, and each used to build the same book.
pub fn grouped_all(
    history: &super::History<'_>,
    window: Window,
    as_of: Timestamp,
    grouping: super::Grouping<'_>,
) -> BTreeMap<String, Retention> {
    let book = ArrBook::new(history.deals, history.account_transitions, as_of);
    let mut first: BTreeMap<i64, &Deal> = BTreeMap::new();
    for d in history.deals {
        if let Some(a) = d.account_id {
            let e = first.entry(a).or_insert(d);
            if (d.created_at, d.id) < (e.created_at, e.id) {
                *e = d;
            }
        }
    }
    let group_of = |a: i64| grouping.person(first.get(&a).and_then(|d| d.person_id));
    let groups: std::collections::BTreeSet<String> = book.accounts().map(group_of).collect();
    groups
        .into_iter()
        .map(|g| {
            let r = retention(&book, window, as_of, &|a| group_of(a) == g);
            (g, r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Transition;
    use crate::money::{Currency, Money};
    use crate::time::DAY_MS;

    fn day(n: i64) -> Timestamp {
        Timestamp::from_millis(n * DAY_MS)
    }

    fn deal(
        id: i64,
        account: i64,
        kind: &str,
        status: DealStatus,
        amount: i64,
        closed: i64,
    ) -> Deal {
        Deal {
            id,
            external_id: format!("d{id}"),
            account_id: Some(account),
            person_id: None,
            name: None,
            amount: Money {
                minor: amount,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: day(closed - 10),
            closed_at: Some(day(closed)),
            status,
            lost_reason: None,
            owner: None,
            kind: kind.into(),
        }
    }

    fn churn(account: i64, at: i64) -> Transition {
        Transition {
            seq: at,
            subject: Subject::Account(account),
            from: Some("customer".into()),
            to: CHURNED.into(),
            at: day(at),
            actor: "alice".into(),
            reason: Some("budget".into()),
            note: None,
            cycle: 1,
            skipped: false,
        }
    }

    #[test]
    fn issue_oracle_components() {
        // Start 100,000, expansion 20,000, contraction 5,000, churn 10,000.
        let (nrr, grr) = nrr_grr(100_000, 20_000, 5_000, 10_000);
        assert!((nrr.unwrap() - 1.05).abs() < 1e-12);
        assert!((grr.unwrap() - 0.85).abs() < 1e-12);
        assert_eq!(nrr_grr(0, 1, 0, 0), (None, None));
    }

    #[test]
    fn hand_built_accounts_give_the_issue_oracle() {
        use DealStatus::*;
        // Window [day 100, day 200). Before it: A 40,000, B 30,000, C 20,000,
        // D 10,000 → start ARR 100,000, 4 logos.
        // In it: A expands +20,000; B renews at 25,000 (contraction 5,000);
        // C renews flat at 20,000; D churns (10,000); E is new (50,000).
        let deals = vec![
            deal(1, 1, "new", Won, 40_000, 10),
            deal(2, 2, "new", Won, 30_000, 20),
            deal(3, 3, "new", Won, 20_000, 30),
            deal(4, 4, "new", Won, 10_000, 40),
            deal(5, 1, "expansion", Won, 20_000, 150),
            deal(6, 2, "renewal", Won, 25_000, 120),
            deal(7, 3, "renewal", Won, 20_000, 130),
            deal(8, 5, "new", Won, 50_000, 160),
            // Lost open-ended deals and deals after as-of change nothing.
            deal(9, 1, "expansion", Lost, 99_000, 170),
            deal(10, 3, "expansion", Won, 7_000, 250),
        ];
        let transitions = vec![churn(4, 140)];
        let transitions = Transitions::from_iter(transitions);
        let book = ArrBook::new(&deals, &transitions, day(199));
        let w = Window::new(day(100), day(200)).unwrap();
        let r = retention(&book, w, day(199), &|_| true);
        assert_eq!(r.start_arr, 100_000);
        assert_eq!(r.expansion, 20_000);
        assert_eq!(r.contraction, 5_000);
        assert_eq!(r.churn, 10_000);
        assert_eq!(r.new_arr, 50_000);
        assert_eq!((r.start_logos, r.retained_logos), (4, 3));
        assert_eq!(r.expansion_revenue, 20_000);
        assert!((r.nrr.unwrap() - 1.05).abs() < 1e-12);
        assert!((r.grr.unwrap() - 0.85).abs() < 1e-12);
        assert!((r.logo_retention.unwrap() - 0.75).abs() < 1e-12);
        // Only tier "odd" accounts 1 and 3: start 60,000, +20,000 → 1.3333.
        let odd = retention(&book, w, day(199), &|a| a % 2 == 1);
        assert_eq!((odd.start_arr, odd.expansion), (60_000, 20_000));
        assert!((odd.nrr.unwrap() - 80_000.0 / 60_000.0).abs() < 1e-12);
    }

    #[test]
    fn lost_renewal_churns_and_win_back_is_new_arr() {
        use DealStatus::*;
        let deals = vec![
            deal(1, 1, "new", Won, 10_000, 10),
            deal(2, 1, "renewal", Lost, 10_000, 50),
            deal(3, 1, "new", Won, 8_000, 80),
        ];
        let book = ArrBook::new(&deals, &Transitions::new(), day(1000));
        assert_eq!(book.arr_before(1, day(50)), 10_000);
        assert_eq!(book.arr_before(1, day(51)), 0);
        assert_eq!(book.arr_before(1, day(81)), 8_000);
        let r = retention(
            &book,
            Window::new(day(20), day(60)).unwrap(),
            day(1000),
            &|_| true,
        );
        assert_eq!(
            (r.churn, r.nrr, r.logo_retention),
            (10_000, Some(0.0), Some(0.0))
        );
        let later = retention(
            &book,
            Window::new(day(60), day(90)).unwrap(),
            day(1000),
            &|_| true,
        );
        assert_eq!(
            (later.start_logos, later.new_arr, later.nrr),
            (0, 8_000, None)
        );
    }

    #[test]
    fn deal_kinds_parse() {
        assert_eq!(DealKind::parse(" Renewal "), Some(DealKind::Renewal));
        assert_eq!(DealKind::parse("upsell"), None);
        assert_eq!(DealKind::Expansion.as_str(), "expansion");
    }
}
