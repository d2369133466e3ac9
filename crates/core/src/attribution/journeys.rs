//! Conversion paths from stored history: each person's (or account's)
//! touches up to a conversion (a won deal, or the first entry into a stage),
//! within a lookback window, as interned attribution paths ([`PathTable`]).
//!
//! At person level, deals without a `person_id` (account-only deals) are not
//! attributed; at account level they are, and people without an account are
//! left out.

use std::collections::BTreeMap;

use super::table::TableBuilder;
use super::PathTable;
use crate::domain::{Deal, DealStatus, Person, Subject};
use crate::facts::Channels;
use crate::fxhash::{FxHashMap, Interner};
use crate::idmap::{self, IdMap};
use crate::metrics::retention::DealKind;
use crate::playbook::Playbook;
use crate::time::{Timestamp, DAY_MS};
use crate::touches::{TouchRef, Touches};
use crate::transitions::Transitions;

/// The key used for a touch without a channel (or campaign).
pub const NO_KEY: &str = "(none)";

/// Default lookback window in days.
pub const DEFAULT_LOOKBACK_DAYS: i64 = 90;

/// What counts as a conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// Every won deal of the person closed by `as_of`: the instant is its
    /// `closed_at`, the value its amount in minor units.
    Won,
    /// The person's first entry into this stage by `as_of` (value 0).
    Stage(String),
}

/// What each step of a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// The touch's channel ([`channel_of`](crate::facts::channel_of)).
    Channel,
    /// The touch's campaign id.
    Campaign,
}

/// Whose journey a path is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Level {
    /// One journey per person; every won deal of the person converts.
    #[default]
    Person,
    /// One journey per account: the touches of all its people, up to the
    /// account's first conversion only.
    Account,
}

/// Options of [`build_paths`].
#[derive(Clone, Debug)]
pub struct JourneyOptions {
    /// What counts as a conversion.
    pub conversion: Conversion,
    /// Channel or campaign paths.
    pub by: By,
    /// Person or account journeys.
    pub level: Level,
    /// Only touches at most this many days before the conversion (or
    /// `as_of` for people who did not convert) are part of the path.
    pub lookback_days: i64,
    /// Nothing after this instant is read.
    pub as_of: Timestamp,
}

/// The paths of [`build_paths`] and the conversions that have no touch in
/// their lookback window (and so cannot be credited to any channel).
#[derive(Clone, Debug, Default)]
pub struct Journeys {
    /// One path per conversion and one null path per person (account) with
    /// touches but no conversion; ordered by person (account) id, then time.
    /// Every path has touch ages; milestones where known.
    pub paths: PathTable,
    /// Conversions without any touch in their window.
    pub untouched_conversions: f64,
    /// Their value.
    pub untouched_value: f64,
}

/// Builds conversion paths from stored history (pure).
///
/// At [`Level::Account`] a journey is an account: its touches are those of
/// the people whose `account_id` is the account, and its single conversion
/// is the first won deal of the account (the deal's `account_id`, or else its
/// person's account) or the first entry of one of its people (or of the
/// account itself) into the conversion stage; milestones are the first
/// entries of any of its people. Everything below then reads "account" for
/// "person".
///
/// For every person, each conversion by `as_of` gives one converting path:
/// the touches in `(previous conversion, conversion]` that are at most
/// `lookback_days` old at the conversion, ordered by time (ties by touch id).
/// Touches after a person's last conversion are not part of any path. A
/// person with touches but no conversion gives one null path of the touches
/// in the lookback window before `as_of`.
///
/// `ages_days` is the age of each touch at the conversion (or `as_of`).
/// `lead_touch` is the last touch of the path at or before the person's first
/// entry into the MQL stage (`sla.sales.stage`, or else the second funnel
/// stage) and `opportunity_touch` the last one at or before the first entry
/// into `opportunity`, when those entries happen by the end of the path.
pub fn build_paths(
    pb: &Playbook,
    people: &[Person],
    touches: &Touches,
    deals: &[Deal],
    transitions: &Transitions,
    opts: &JourneyOptions,
) -> Journeys {
    let steps = TouchSteps::build(pb, people, touches, opts.level, opts.by);
    build_paths_from(&steps, people, deals, transitions, pb, opts)
}

/// Every touch of a history as a step of its journey, in (journey, at, id)
/// order, with its channel (or campaign) interned: the part of
/// [`build_paths`] that reads every touch and depends on neither the
/// conversion, nor the lookback, nor the as-of instant. A caller that keeps
/// the history keeps this beside it, extends it when touches are appended
/// ([`TouchSteps::extend`]) and builds paths from it
/// ([`build_paths_from`]).
///
/// Kept by column, a run per journey: a step is its time and step id (12
/// bytes; the attribution page keeps one per touch, ten million on the
/// large demo), a journey its id and where its run starts. Rows of
/// (journey, at, step) were 24 bytes, sorted with a buffer of half as
/// many again; a count per journey places each step instead.
#[derive(Clone, Debug)]
pub struct TouchSteps {
    level: Level,
    by: By,
    /// Step names; ids are in order of first appearance.
    names: Interner,
    /// The journeys with a step, ascending.
    journeys: Vec<i64>,
    /// Journey `journeys[i]`'s steps are `starts[i]..starts[i + 1]` of
    /// `at` and `step`, in (at, id) order.
    starts: Vec<usize>,
    at: Vec<Timestamp>,
    step: Vec<u32>,
    /// The largest touch id covered (`None` before any touch).
    last_id: Option<i64>,
}

impl TouchSteps {
    /// The steps of all `touches`. At [`Level::Account`] a touch of a person
    /// without an account (or not in `people`) is left out.
    pub fn build(
        pb: &Playbook,
        people: &[Person],
        touches: &Touches,
        level: Level,
        by: By,
    ) -> TouchSteps {
        let mut steps = TouchSteps {
            level,
            by,
            names: Interner::default(),
            journeys: Vec::new(),
            starts: vec![0],
            at: Vec::new(),
            step: Vec::new(),
            last_id: None,
        };
        steps.extend(pb, people, touches);
        steps
    }

    /// Adds the touches stored since these steps were built: those with an
    /// id above [`TouchSteps::last_id`] (ids only grow; a history keeps
    /// touches in time order, so new ones are not a suffix). Only valid
    /// when the touches already covered, the people the steps read (their
    /// accounts, and their rows when the playbook's channel rules read the
    /// person) and the playbook are unchanged; otherwise
    /// [`TouchSteps::build`] again.
    pub fn extend(&mut self, pb: &Playbook, people: &[Person], touches: &Touches) {
        let after = self.last_id;
        let new = || {
            touches
                .iter()
                .filter(move |t| after.is_none_or(|a| t.id > a))
        };
        // Read in (at, id) order, each journey's new steps land in that
        // order. Touches out of it (not a kept history's) are put in it
        // first; a kept history's are read twice rather than collected: a
        // touch read from its columns is 72 bytes.
        if touches.is_sorted() {
            self.add(pb, people, new());
        } else {
            let mut ordered: Vec<TouchRef<'_>> = new().collect();
            ordered.sort_unstable_by_key(TouchRef::key);
            self.add(pb, people, ordered.iter().copied());
        }
    }

    /// Adds `new` touches, given in (at, id) order, every id above those
    /// covered. Each journey's run is its old steps, then its new ones, by
    /// a count per journey; a run the new steps put out of time order (a
    /// back-dated touch) is sorted stably by time, which keeps the old
    /// steps (smaller ids) first at an instant.
    fn add<'t>(
        &mut self,
        pb: &Playbook,
        people: &[Person],
        new: impl Iterator<Item = TouchRef<'t>> + Clone,
    ) {
        let mut position = IdMap::over(people.iter().map(|p| p.id));
        for (i, p) in people.iter().enumerate() {
            *position.entry(p.id) = idmap::position(i);
        }
        let person_of = |id: i64| position.get(id).and_then(|i| people.get(i as usize));
        let level = self.level;
        let journey_of = |t: &TouchRef<'_>| -> Option<i64> {
            match level {
                Level::Person => Some(t.person_id),
                Level::Account => person_of(t.person_id).and_then(|p| p.account_id),
            }
        };
        // New steps per journey, then every journey's slot and run.
        let mut slot = match level {
            Level::Person => IdMap::over(people.iter().map(|p| p.id)),
            Level::Account => IdMap::over(people.iter().filter_map(|p| p.account_id)),
        };
        let mut last = None;
        for t in new.clone() {
            last = last.max(Some(t.id));
            if let Some(j) = journey_of(&t) {
                let n = slot.entry(j);
                *n = if *n == IdMap::NONE { 1 } else { *n + 1 };
            }
        }
        if last.is_none() {
            return;
        }
        self.last_id = self.last_id.max(last);
        let mut added: Vec<(i64, usize)> = slot.iter().map(|(j, n)| (j, n as usize)).collect();
        added.sort_unstable();
        let old = self.runs();
        let mut journeys = Vec::with_capacity(self.journeys.len() + added.len());
        let mut starts = Vec::with_capacity(journeys.capacity() + 1);
        starts.push(0);
        let len = self.at.len() + added.iter().map(|a| a.1).sum::<usize>();
        let mut at = Vec::with_capacity(len);
        let mut step = Vec::with_capacity(len);
        // Where each journey's next new step goes.
        let mut next: Vec<usize> = Vec::with_capacity(journeys.capacity());
        let (mut o, mut a) = (old.peekable(), added.into_iter().peekable());
        loop {
            let j = match (o.peek(), a.peek()) {
                (Some(&(x, _)), Some(&(y, _))) => x.min(y),
                (Some(&(x, _)), None) => x,
                (None, Some(&(y, _))) => y,
                (None, None) => break,
            };
            if let Some((_, run)) = o.next_if(|r| r.0 == j) {
                at.extend_from_slice(&self.at[run.clone()]);
                step.extend_from_slice(&self.step[run]);
            }
            next.push(at.len());
            let n = a.next_if(|r| r.0 == j).map_or(0, |r| r.1);
            // Fewer journeys than touches, so a u32 holds the slot.
            *slot.entry(j) = idmap::position(journeys.len());
            at.resize(at.len() + n, Timestamp::default());
            step.resize(step.len() + n, 0);
            journeys.push(j);
            starts.push(at.len());
        }
        drop(o);
        let channels = Channels::new(pb);
        let names = &mut self.names;
        // Interned in the order the touches are read (storage order for a
        // kept history's), so their columns are read front to back.
        for t in new {
            let Some(j) = journey_of(&t) else {
                continue;
            };
            let person = person_of(t.person_id);
            let mut intern =
                |k: Option<&str>| names.id(k.filter(|k| !k.is_empty()).unwrap_or(NO_KEY));
            let id = match (self.by, person) {
                // The resolver gives the touch's own channel when set.
                (By::Channel, Some(p)) => channels.with(t, p, &mut intern),
                (By::Channel, None) => intern(t.channel.as_deref()),
                (By::Campaign, _) => intern(t.campaign.as_deref()),
            };
            if let Some(i) = slot.get(j).map(|i| i as usize) {
                at[next[i]] = t.at;
                step[next[i]] = id;
                next[i] += 1;
            }
        }
        for w in starts.windows(2) {
            let run = w[0]..w[1];
            if !at[run.clone()].is_sorted() {
                let mut rows: Vec<(Timestamp, u32)> =
                    run.clone().map(|i| (at[i], step[i])).collect();
                rows.sort_by_key(|r| r.0);
                for (i, (t, s)) in run.zip(rows) {
                    (at[i], step[i]) = (t, s);
                }
            }
        }
        (self.journeys, self.starts, self.at, self.step) = (journeys, starts, at, step);
    }

    /// Every journey with the range of its steps.
    fn runs(&self) -> impl Iterator<Item = (i64, std::ops::Range<usize>)> + '_ {
        self.journeys
            .iter()
            .zip(self.starts.windows(2))
            .map(|(&j, w)| (j, w[0]..w[1]))
    }

    /// The largest touch id the steps cover (`None` before any touch).
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    /// The level and step kind the steps were built for.
    pub fn kind(&self) -> (Level, By) {
        (self.level, self.by)
    }
}

/// [`build_paths`] from steps built (or kept) for the same history: `steps`
/// must cover `people`'s touches at `opts.level` and `opts.by` (panics if
/// the level or step kind differ).
pub fn build_paths_from(
    steps: &TouchSteps,
    people: &[Person],
    deals: &[Deal],
    transitions: &Transitions,
    pb: &Playbook,
    opts: &JourneyOptions,
) -> Journeys {
    assert_eq!(
        steps.kind(),
        (opts.level, opts.by),
        "steps built for another level or step kind"
    );
    let as_of = opts.as_of;
    let mql_stage: Option<String> = pb
        .sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .or_else(|| pb.funnel().nth(1).map(|s| s.id.clone()));

    // Only account journeys look people up.
    let people_by_id: FxHashMap<i64, &Person> = match opts.level {
        Level::Person => FxHashMap::default(),
        Level::Account => people.iter().map(|p| (p.id, p)).collect(),
    };
    // The journey a person belongs to: themselves, or their account.
    let journey_of = |pid: i64| -> Option<i64> {
        match opts.level {
            Level::Person => Some(pid),
            Level::Account => people_by_id.get(&pid).and_then(|p| p.account_id),
        }
    };
    let journey_of_subject = |s: &Subject| -> Option<i64> {
        match (*s, opts.level) {
            (Subject::Person(pid), _) => journey_of(pid),
            (Subject::Account(aid), Level::Account) => Some(aid),
            (Subject::Account(_), Level::Person) => None,
        }
    };
    let mut table = TableBuilder::with_names(steps.names.clone());
    // Touches after `as_of` stay in the steps: every path below selects
    // touches at or before its end, which is at or before `as_of`.

    // First entries per journey, by (at, seq), into the MQL stage,
    // `opportunity` and the conversion stage: one pass over the history.
    let conversion_stage = match &opts.conversion {
        Conversion::Stage(s) => Some(s.as_str()),
        Conversion::Won => None,
    };
    let stages = [mql_stage.as_deref(), Some("opportunity"), conversion_stage];
    let mut firsts: [FxHashMap<i64, (Timestamp, i64)>; 3] = Default::default();
    for tr in transitions {
        if tr.at > as_of {
            continue;
        }
        for (stage, first) in stages.iter().zip(&mut firsts) {
            if *stage != Some(tr.to.as_str()) {
                continue;
            }
            if let Some(j) = journey_of_subject(&tr.subject) {
                let e = first.entry(j).or_insert((tr.at, tr.seq));
                if (tr.at, tr.seq) < *e {
                    *e = (tr.at, tr.seq);
                }
            }
        }
    }
    let [mql_entry, opp_entry, conversion_entry] = firsts;

    // Conversions per journey: (instant, value in minor units), time order.
    let mut conversions: BTreeMap<i64, Vec<(Timestamp, i64)>> = BTreeMap::new();
    match &opts.conversion {
        Conversion::Won => {
            let mut won: Vec<&Deal> = deals
                .iter()
                .filter(|d| d.status == DealStatus::Won)
                .filter(|d| d.closed_at.is_some_and(|c| c <= as_of))
                // Renewals and expansions are retention, not marketing's
                // conversions.
                .filter(|d| DealKind::is_new_business(d))
                .collect();
            won.sort_by_key(|d| (d.closed_at, d.id));
            for d in won {
                let journey = match opts.level {
                    Level::Person => d.person_id,
                    Level::Account => d.account_id.or(d.person_id.and_then(journey_of)),
                };
                if let (Some(j), Some(at)) = (journey, d.closed_at) {
                    let convs = conversions.entry(j).or_default();
                    if opts.level == Level::Person || convs.is_empty() {
                        convs.push((at, d.amount.minor));
                    }
                }
            }
        }
        Conversion::Stage(_) => {
            for (j, (at, _)) in conversion_entry {
                conversions.entry(j).or_default().push((at, 0));
            }
        }
    }

    let window = opts.lookback_days.max(0).saturating_mul(DAY_MS);
    let mut out = Journeys::default();
    let mut journeys: Vec<i64> = steps
        .runs()
        .filter(|(_, run)| steps.at[run.start] <= as_of)
        .map(|(j, _)| j)
        .chain(conversions.keys().copied())
        .collect();
    journeys.sort_unstable();
    journeys.dedup();
    // The (at, step) of the path being built; reused from path to path.
    let mut sel: Vec<(Timestamp, u32)> = Vec::new();
    // Journeys ascend, as the steps' do: the next run is at or after this.
    let mut runs = steps.runs().peekable();
    for j in journeys {
        // Skip journeys left out above (all their touches after as_of).
        while runs.next_if(|r| r.0 < j).is_some() {}
        let run = runs.next_if(|r| r.0 == j).map_or(0..0, |r| r.1);
        let ts = steps.at[run.clone()].iter().zip(&steps.step[run]);
        // Appends the path of the touches in (after, end] within the window
        // with its weights; false (and nothing appended) if it has none.
        let mut path = |after: Option<Timestamp>, end: Timestamp, weights: [f64; 3]| -> bool {
            let start = Timestamp::from_millis(end.millis().saturating_sub(window));
            sel.clear();
            sel.extend(
                ts.clone()
                    .filter(|&(&at, _)| at <= end && at >= start && after.is_none_or(|a| at > a))
                    .map(|(&at, &step)| (at, step)),
            );
            if sel.is_empty() {
                return false;
            }
            for &(at, step) in &sel {
                table.aged_step_id(step, at.days_until(end));
            }
            let milestone = |entry: Option<&(Timestamp, i64)>| -> Option<usize> {
                let e = entry?.0;
                if e > end {
                    return None;
                }
                sel.iter().rposition(|&(at, _)| at <= e)
            };
            let [conversions, value, nulls] = weights;
            table.end_path(
                conversions,
                value,
                nulls,
                milestone(mql_entry.get(&j)),
                milestone(opp_entry.get(&j)),
            );
            true
        };
        match conversions.get(&j) {
            Some(convs) => {
                let mut prev = None;
                for &(at, value) in convs {
                    let value = value.max(0) as f64;
                    if !path(prev, at, [1.0, value, 0.0]) {
                        out.untouched_conversions += 1.0;
                        out.untouched_value += value;
                    }
                    prev = Some(at);
                }
            }
            None => {
                path(None, as_of, [0.0, 0.0, 1.0]);
            }
        }
    }
    out.paths = table.finish();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::attribution::{first_touch, last_touch, linear, totals, Credit};
    use crate::domain::Transition;
    use crate::domain::{PersonTexts, Touch};
    use crate::playbook::STARTER;
    use crate::{Currency, Money};

    fn day(d: i64) -> Timestamp {
        Timestamp::from_millis(0).plus_days(d)
    }

    fn touch(id: i64, person: i64, d: i64, channel: &str) -> Touch {
        Touch {
            id,
            person_id: person,
            at: day(d),
            kind: "web_visit".into(),
            channel: Some(channel.into()),
            campaign: Some(format!("{channel}-1").into()),
            ..Touch::default()
        }
    }

    fn person(id: i64) -> Person {
        Person {
            id,
            texts: PersonTexts::new(&format!("p{id}"), None, None, None),
            ..Person::default()
        }
    }

    fn won(id: i64, person: i64, d: i64, minor: i64) -> Deal {
        Deal {
            id,
            external_id: format!("d{id}"),
            account_id: None,
            person_id: Some(person),
            name: None,
            amount: Money {
                minor,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: day(d - 10),
            closed_at: Some(day(d)),
            status: DealStatus::Won,
            lost_reason: None,
            owner: None,
            kind: "new".into(),
        }
    }

    fn enter(seq: i64, person: i64, d: i64, to: &str) -> Transition {
        Transition {
            seq,
            subject: Subject::Person(person),
            from: None,
            to: to.into(),
            at: day(d),
            actor: "system".into(),
            reason: None,
            note: None,
            cycle: 1,
            skipped: false,
        }
    }

    /// p1: search (d1), email (d5), search (d10), won d20 for 1000.00 (MQL
    /// on d5, opportunity on d12); a display touch on d30 after the win is
    /// dropped. p2: display d2, social d3 (same instant as touch 5 → id order),
    /// email d3, won d8 for 500.00. p3: social d50, never converts.
    /// p4: search d1 only, outside a 90-day window before its d200 win.
    fn history() -> (Vec<Person>, Touches, Vec<Deal>, Transitions) {
        let people = (1..=4).map(person).collect();
        let touches = vec![
            touch(1, 1, 1, "search"),
            touch(2, 1, 5, "email"),
            touch(3, 1, 10, "search"),
            touch(9, 1, 30, "display"),
            touch(4, 2, 2, "display"),
            touch(6, 2, 3, "email"),
            touch(5, 2, 3, "social"),
            touch(7, 3, 50, "social"),
            touch(8, 4, 1, "search"),
        ];
        let deals = vec![
            won(1, 1, 20, 1000_00),
            won(2, 2, 8, 500_00),
            won(3, 4, 200, 1),
        ];
        let transitions = vec![
            enter(1, 1, 5, "mql"),
            enter(2, 1, 12, "opportunity"),
            enter(3, 2, 3, "mql"),
        ];
        let transitions = Transitions::from_iter(transitions);
        (people, touches.into(), deals, transitions)
    }

    fn opts(conversion: Conversion) -> JourneyOptions {
        JourneyOptions {
            conversion,
            by: By::Channel,
            level: Level::Person,
            lookback_days: DEFAULT_LOOKBACK_DAYS,
            as_of: day(100),
        }
    }

    fn build(o: &JourneyOptions) -> Journeys {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let (people, touches, deals, transitions) = history();
        build_paths(&pb, &people, &touches, &deals, &transitions, o)
    }

    fn get(c: &[Credit], ch: &str) -> (f64, f64) {
        let c = c.iter().find(|c| c.channel == ch).unwrap();
        (c.conversions, c.value)
    }

    #[test]
    fn won_deal_paths() {
        let j = build(&opts(Conversion::Won));
        // p4's deal closes after as_of (day 200 > 100): not a conversion, and
        // its only touch (day 1) is outside the 90 days before as_of.
        assert_eq!(j.paths.to_paths().len(), 3, "{:?}", j.paths.to_paths());
        let p1 = &j.paths.to_paths()[0];
        assert_eq!(p1.steps, ["search", "email", "search"]);
        assert_eq!(p1.ages_days, Some(vec![19.0, 15.0, 10.0]));
        assert_eq!((p1.lead_touch, p1.opportunity_touch), (Some(1), Some(2)));
        assert_eq!((p1.conversions, p1.value, p1.nulls), (1.0, 1000_00.0, 0.0));
        let p2 = &j.paths.to_paths()[1];
        assert_eq!(p2.steps, ["display", "social", "email"]);
        assert_eq!((p2.lead_touch, p2.opportunity_touch), (Some(2), None));
        assert_eq!(p2.value, 500_00.0);
        // p3: null path up to as_of.
        assert_eq!(j.paths.to_paths()[2].steps, ["social"]);
        assert_eq!(
            (
                j.paths.to_paths()[2].conversions,
                j.paths.to_paths()[2].nulls
            ),
            (0.0, 1.0)
        );
        assert_eq!(j.paths.to_paths()[2].ages_days, Some(vec![50.0]));
        assert_eq!(j.untouched_conversions, 0.0);
        assert_eq!(totals(&j.paths.to_paths()), (2.0, 1500_00.0));

        // Hand-computed credits.
        let f = first_touch(&j.paths.to_paths()).unwrap();
        assert_eq!(get(&f, "search"), (1.0, 1000_00.0));
        assert_eq!(get(&f, "display"), (1.0, 500_00.0));
        assert_eq!(get(&f, "email"), (0.0, 0.0));
        let l = last_touch(&j.paths.to_paths()).unwrap();
        assert_eq!(get(&l, "search"), (1.0, 1000_00.0));
        assert_eq!(get(&l, "email"), (1.0, 500_00.0));
        let lin = linear(&j.paths.to_paths()).unwrap();
        let third = 1.0 / 3.0;
        let close = |a: (f64, f64), b: (f64, f64)| {
            assert!(
                (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-6,
                "{a:?} vs {b:?}"
            )
        };
        close(get(&lin, "search"), (2.0 * third, 2.0 * third * 1000_00.0));
        close(get(&lin, "email"), (2.0 * third, third * 1500_00.0));
        close(get(&lin, "display"), (third, third * 500_00.0));
        close(get(&lin, "social"), (third, third * 500_00.0));
    }

    #[test]
    fn lookback_and_later_conversions() {
        let mut o = opts(Conversion::Won);
        o.as_of = day(300);
        o.lookback_days = 15;
        let j = build(&o);
        // p1: only touches at or after day 5 (20 − 15); the d30 touch follows the win.
        assert_eq!(j.paths.to_paths()[0].steps, ["email", "search"]);
        // p4 wins on day 200 with no touch in 15 days.
        assert_eq!(j.untouched_conversions, 1.0);
        assert_eq!(j.untouched_value, 1.0);
        // p3 is a null path, its touch is 250 days before as_of: dropped.
        assert!(j.paths.to_paths().iter().all(|p| p.nulls == 0.0));
    }

    #[test]
    fn stage_conversion_and_campaigns() {
        let mut o = opts(Conversion::Stage("mql".into()));
        o.by = By::Campaign;
        let j = build(&o);
        assert_eq!(j.paths.to_paths()[0].steps, ["search-1", "email-1"]);
        assert_eq!(
            j.paths.to_paths()[1].steps,
            ["display-1", "social-1", "email-1"]
        );
        assert_eq!(totals(&j.paths.to_paths()), (2.0, 0.0));
        // p3 is a null path; p4's touch is outside the 90 days before as_of.
        assert_eq!(
            j.paths.to_paths().iter().filter(|p| p.nulls == 1.0).count(),
            1
        );
    }

    /// Account 10: people 1 and 2; account 20: person 3; person 4 has no
    /// account. Account 10 wins an account-only deal on d10 (1000.00) and a
    /// second deal through person 2 on d20 (ignored: first win only);
    /// person 4 wins on d8 (no account: left out).
    fn accounts() -> (Vec<Person>, Touches, Vec<Deal>, Transitions) {
        let people = vec![
            Person {
                account_id: Some(10),
                ..person(1)
            },
            Person {
                account_id: Some(10),
                ..person(2)
            },
            Person {
                account_id: Some(20),
                ..person(3)
            },
            person(4),
        ];
        let touches = vec![
            touch(1, 1, 1, "search"),
            touch(2, 2, 2, "display"),
            touch(3, 1, 4, "email"),
            touch(4, 2, 6, "search"),
            touch(5, 2, 12, "social"),
            touch(6, 3, 3, "social"),
            touch(7, 3, 5, "display"),
            touch(8, 4, 2, "search"),
        ];
        let account_deal = Deal {
            account_id: Some(10),
            person_id: None,
            ..won(1, 1, 10, 1000_00)
        };
        let deals = vec![account_deal, won(2, 2, 20, 300_00), won(3, 4, 8, 50_00)];
        let mut opportunity = enter(3, 0, 5, "opportunity");
        opportunity.subject = Subject::Account(10);
        let transitions = vec![enter(1, 2, 3, "mql"), enter(2, 1, 5, "mql"), opportunity];
        let transitions = Transitions::from_iter(transitions);
        (people, touches.into(), deals, transitions)
    }

    /// Steps built from a prefix of the touches and extended with the rest
    /// give the paths of steps built at once, at every split, level, step
    /// kind, conversion and as-of instant (touches after it stay in the
    /// steps and must not reach a path).
    #[test]
    fn extended_steps_give_the_paths_of_steps_built_at_once() {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        for (people, mut pushed, deals, transitions) in [history(), accounts()] {
            // A touch stored last but dated before every other: steps built
            // without it put it first in its journey once extended.
            let latest = pushed.iter().max_by_key(|t| t.at).unwrap().to_touch();
            let id = pushed.iter().map(|t| t.id).max().unwrap() + 1;
            pushed.push(Touch {
                id,
                at: day(0),
                ..latest
            });
            // As pushed (out of time order), and in time order as a kept
            // history holds them.
            let mut sorted = pushed.clone();
            sorted.sort();
            for ((level, by), touches) in [
                (Level::Person, By::Channel),
                (Level::Person, By::Campaign),
                (Level::Account, By::Channel),
            ]
            .into_iter()
            .flat_map(|k| [(k, &pushed), (k, &sorted)])
            {
                let whole = TouchSteps::build(&pb, &people, touches, level, by);
                if matches!((level, by), (Level::Person, By::Campaign)) {
                    // A journey's touches by (at, id): history() has two
                    // of person 2 on day 3, id 6 stored before id 5.
                    let mut want = touches.to_vec();
                    want.sort_by_key(|t| (t.person_id, t.at, t.id));
                    let want: Vec<_> = (want.iter())
                        .map(|t| (t.person_id, t.at, t.campaign.map_or(NO_KEY, |c| c.as_str())))
                        .map(|(j, at, c)| (j, at, c.to_string()))
                        .collect();
                    assert_eq!(named(&whole), want, "sorted: {}", touches.is_sorted());
                }
                // Ids say what is new, not positions: touches are kept in
                // time order, and a new one can be older than the last.
                for upto in 0..=touches.len() as i64 {
                    let old: Touches = touches
                        .iter()
                        .filter(|t| t.id <= upto)
                        .map(|t| t.to_touch())
                        .collect();
                    let mut steps = TouchSteps::build(&pb, &people, &old, level, by);
                    steps.extend(&pb, &people, touches);
                    assert_eq!(steps.last_id(), whole.last_id());
                    assert_eq!(named(&steps), named(&whole), "{level:?} {by:?} upto {upto}");
                    for as_of in [0, 2, 4, 8, 25, 100, 300] {
                        for conversion in [Conversion::Won, Conversion::Stage("mql".into())] {
                            let mut o = opts(conversion);
                            (o.level, o.by, o.as_of) = (level, by, day(as_of));
                            let want = build_paths(&pb, &people, touches, &deals, &transitions, &o);
                            let got =
                                build_paths_from(&steps, &people, &deals, &transitions, &pb, &o);
                            assert_eq!(got.paths, want.paths, "{level:?} {by:?} as of d{as_of}");
                            assert_eq!(got.untouched_conversions, want.untouched_conversions);
                            assert_eq!(got.untouched_value, want.untouched_value);
                        }
                    }
                }
            }
        }
    }

    /// The rows of `steps` with step names for ids (ids depend on the order
    /// steps were interned in).
    fn named(steps: &TouchSteps) -> Vec<(i64, Timestamp, String)> {
        let names = steps.names.names();
        steps
            .runs()
            .flat_map(|(j, run)| run.map(move |i| (j, i)))
            .map(|(j, i)| (j, steps.at[i], names[steps.step[i] as usize].to_string()))
            .collect()
    }

    /// Touches after `as_of` are in the steps but never in a path: person 3
    /// (one touch, d50) has no null path as of d40, and person 1's path as
    /// of d6 stops at its d5 touch.
    #[test]
    fn touches_after_as_of_stay_out_of_paths() {
        let mut o = opts(Conversion::Won);
        o.as_of = day(6);
        let paths = build(&o).paths.to_paths();
        let steps: Vec<Vec<String>> = paths.iter().map(|p| p.steps.clone()).collect();
        assert_eq!(
            steps,
            [
                vec!["search", "email"],
                vec!["display", "social", "email"],
                vec!["search"]
            ]
        );
        assert!(paths.iter().all(|p| p.conversions == 0.0));
        o.as_of = day(40);
        let paths = build(&o).paths.to_paths();
        assert!(paths.iter().all(|p| p.steps != ["social"]), "{paths:?}");
    }

    #[test]
    fn account_journeys() {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let (people, touches, deals, transitions) = accounts();
        let mut o = opts(Conversion::Won);
        o.level = Level::Account;
        o.as_of = day(30);
        let j = build_paths(&pb, &people, &touches, &deals, &transitions, &o);
        assert_eq!(j.paths.to_paths().len(), 2, "{:?}", j.paths.to_paths());
        let a10 = &j.paths.to_paths()[0];
        assert_eq!(a10.steps, ["search", "display", "email", "search"]);
        assert_eq!(a10.ages_days, Some(vec![9.0, 8.0, 6.0, 4.0]));
        // MQL on d3 (person 2) after display; account opportunity on d5 after email.
        assert_eq!((a10.lead_touch, a10.opportunity_touch), (Some(1), Some(2)));
        assert_eq!(
            (a10.conversions, a10.value, a10.nulls),
            (1.0, 1000_00.0, 0.0)
        );
        let a20 = &j.paths.to_paths()[1];
        assert_eq!(a20.steps, ["social", "display"]);
        assert_eq!((a20.conversions, a20.nulls), (0.0, 1.0));
        assert_eq!(j.untouched_conversions, 0.0);

        // Hand-computed credits.
        let f = first_touch(&j.paths.to_paths()).unwrap();
        assert_eq!(get(&f, "search"), (1.0, 1000_00.0));
        assert_eq!(get(&f, "social"), (0.0, 0.0));
        let lin = linear(&j.paths.to_paths()).unwrap();
        assert_eq!(get(&lin, "search"), (0.5, 500_00.0));
        assert_eq!(get(&lin, "display"), (0.25, 250_00.0));
        assert_eq!(get(&lin, "email"), (0.25, 250_00.0));
        // Markov order 1: P(conversion) = 1/2; removal effects search 1,
        // display 1/2, email 1/2, social 1/3 (sum 7/3).
        let m = crate::attribution::markov(&j.paths.to_paths(), 1).unwrap();
        assert!((m.conversion_probability - 0.5).abs() < 1e-12);
        for (ch, want) in [
            ("search", 3.0 / 7.0),
            ("display", 3.0 / 14.0),
            ("email", 3.0 / 14.0),
            ("social", 1.0 / 7.0),
        ] {
            let (c, v) = get(&m.credits, ch);
            assert!((c - want).abs() < 1e-12, "{ch}: {c} vs {want}");
            assert!((v - want * 1000_00.0).abs() < 1e-6, "{ch}: {v}");
        }

        // Stage conversion: the account converts when its first person
        // enters the stage (person 2, d3).
        o.conversion = Conversion::Stage("mql".into());
        let j = build_paths(&pb, &people, &touches, &deals, &transitions, &o);
        assert_eq!(j.paths.to_paths()[0].steps, ["search", "display"]);
        assert_eq!(j.paths.to_paths()[0].conversions, 1.0);
        assert_eq!(j.paths.to_paths()[1].nulls, 1.0);

        // Person level for comparison: person 4's deal and person 2's deal
        // convert; the account-only deal does not.
        o.level = Level::Person;
        o.conversion = Conversion::Won;
        let j = build_paths(&pb, &people, &touches, &deals, &transitions, &o);
        assert_eq!(totals(&j.paths.to_paths()), (2.0, 350_00.0));
    }
}
