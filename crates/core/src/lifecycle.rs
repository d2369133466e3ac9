//! The lifecycle engine (DESIGN §4): from stored facts and transitions to the
//! transitions that must be appended next.
//!
//! The engine never changes history. It reads a subject's [`State`] (derived
//! from its transitions) and returns [`Move`]s for the store to append.

use serde::Serialize;

use crate::domain::{Note, Subject, Transition};
use crate::facts::{
    account_cel, person_cel, person_cel_of, score_cel, ActivityFacts, DealFacts, Facts,
};
use crate::fxhash::{FxHashMap, Recent};
use crate::idmap::{position, IdMap};
use crate::playbook::{Playbook, Read, Stage, StageKind, Var, Vars};
use crate::scoring;
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::transitions::Transitions;

/// Where a subject stands, derived from its transitions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct State {
    /// Current stage id, `None` before the first transition.
    pub stage: Option<Sym>,
    /// Current cycle (1 for the first pass, +1 after each recycle).
    pub cycle: u32,
    /// When the current stage was entered.
    pub entered_at: Option<Timestamp>,
    /// When the current cycle started.
    pub cycle_started_at: Option<Timestamp>,
}

impl State {
    /// Replays transitions (any order; sorted by time then sequence).
    pub fn replay(transitions: &[Transition]) -> State {
        let mut ts: Vec<&Transition> = transitions.iter().collect();
        ts.sort_by_key(|t| (t.at, t.seq));
        State::replay_sorted(&ts)
    }

    /// [`State::replay`] of transitions already sorted by time then
    /// sequence, without copying them.
    pub fn replay_sorted(ts: &[&Transition]) -> State {
        let mut state = State::default();
        for t in ts {
            if t.cycle != state.cycle || state.cycle_started_at.is_none() {
                state.cycle_started_at = Some(t.at);
            }
            state.stage = Some(t.to);
            state.cycle = t.cycle;
            state.entered_at = Some(t.at);
        }
        state
    }

    fn apply(&mut self, m: &Move) {
        if m.cycle != self.cycle || self.cycle_started_at.is_none() {
            self.cycle_started_at = Some(m.at);
        }
        self.stage = Some(m.to);
        self.cycle = m.cycle;
        self.entered_at = Some(m.at);
    }
}

/// The position of the latest transition (by time, then sequence) of each
/// person up to `as_of`, in order of each person's first transition.
/// Replaying a person's history ends in this transition's stage, entered
/// at its time ([`State::replay`]), so what needs only where people are
/// now (stalled leads, the SLA inbox) reads this one pass instead of
/// grouping and replaying every history.
///
/// People are slotted through an [`IdMap`] (a hash map of the large demo's
/// 1.2M people took 69 MB, and growing it held 104 MB at once), and each
/// keeps a four-byte position: 10 MB in all, where an id and a copy of the
/// transition's key and stage took 43 MB at the peak of a server that
/// answers the stalled list.
pub(crate) fn latest_per_person(transitions: &Transitions, as_of: Timestamp) -> Vec<u32> {
    // Two columns, not whole transitions: this runs over every one.
    let ats = transitions.ats();
    let person = |i: usize| match transitions.subject(i) {
        Subject::Person(id) if ats[i] <= as_of => Some(id),
        _ => None,
    };
    // Two passes: the first numbers people in order of first transition,
    // so the list is allocated once at its size (grown by doubling, it
    // held room for twice the people), and the second finds each person's
    // latest, a person's first transition coming when the list reaches
    // their number.
    let all = 0..transitions.len();
    let mut slot = IdMap::over(all.clone().filter_map(person));
    let mut people = 0u32;
    for id in all.clone().filter_map(person) {
        let s = slot.entry(id);
        if *s == IdMap::NONE && people < IdMap::NONE {
            *s = people;
            people += 1;
        }
    }
    // In a sorted history (a kept one is) each later transition is later
    // by (at, seq); else the keys are compared.
    let sorted = transitions.is_sorted();
    let mut latest: Vec<u32> = Vec::with_capacity(people as usize);
    for i in all {
        let Some(s) = person(i).and_then(|id| slot.get(id)) else {
            continue;
        };
        match latest.get_mut(s as usize) {
            Some(old) => {
                if sorted || transitions.key(i) > transitions.key(*old as usize) {
                    *old = position(i);
                }
            }
            None => latest.push(position(i)),
        }
    }
    latest
}

/// The latest transition up to `as_of` per key of its subject (`None`:
/// skip the subject); see [`latest_per_person`].
pub(crate) fn latest_by<K: std::hash::Hash + Eq>(
    transitions: &Transitions,
    as_of: Timestamp,
    key_of: impl Fn(Subject) -> Option<K>,
) -> FxHashMap<K, Latest> {
    let mut latest: FxHashMap<K, Latest> = FxHashMap::default();
    // By column: the time, subject, key and stage are all it reads.
    for (i, &at) in transitions.ats().iter().enumerate() {
        if at > as_of {
            continue;
        }
        let Some(k) = key_of(transitions.subject(i)) else {
            continue;
        };
        let l = Latest {
            key: transitions.key(i),
            to: transitions.to(i),
        };
        latest
            .entry(k)
            .and_modify(|old| {
                if l.key > old.key {
                    *old = l;
                }
            })
            .or_insert(l);
    }
    latest
}

/// What a subject's latest transition says of where it is: its (at, seq)
/// and the stage it entered, which is all [`latest_by`]'s callers read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latest {
    key: (Timestamp, i64),
    /// The stage entered.
    pub to: Sym,
}

/// A transition to append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Move {
    pub from: Option<Sym>,
    pub to: Sym,
    pub at: Timestamp,
    pub actor: Sym,
    pub reason: Option<Sym>,
    pub note: Option<String>,
    pub cycle: u32,
    pub skipped: bool,
}

impl Move {
    /// This move as stored: a transition of `subject` with sequence `seq`.
    pub fn to_transition(&self, subject: crate::domain::Subject, seq: i64) -> Transition {
        Transition {
            seq,
            subject,
            from: self.from,
            to: self.to,
            at: self.at,
            actor: self.actor,
            reason: self.reason,
            note: self.note.as_deref().map(Note::from),
            cycle: self.cycle,
            skipped: self.skipped,
        }
    }
}

/// Why a manual move was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    #[error("already in stage `{0}`")]
    AlreadyThere(String),
    #[error("stage `{0}` is terminal: nothing moves out of it")]
    Terminal(String),
    #[error("cannot move from `{from}` to `{to}`: `{to}` may be entered from {allowed}")]
    NotAllowed {
        from: String,
        to: String,
        allowed: String,
    },
    #[error("moving to `{0}` needs a reason code (--reason)")]
    ReasonRequired(String),
    #[error("unknown reason `{0}`")]
    UnknownReason(String),
    #[error("reason `{reason}` does not apply to `{stage}`; it applies to {applies}")]
    ReasonDoesNotApply {
        reason: String,
        stage: String,
        applies: String,
    },
    #[error("no stage follows `{0}` to accept into")]
    NothingToAccept(String),
    #[error("the playbook has no {0} stage")]
    MissingOffRamp(&'static str),
    #[error("moves must not go back in time: the current stage was entered at {entered}, the move is at {at}")]
    BackInTime { entered: Timestamp, at: Timestamp },
}

/// A manual move request: who moves the subject where, and why.
#[derive(Clone, Debug)]
pub struct ManualMove<'a> {
    pub to: &'a str,
    pub at: Timestamp,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
}

fn allowed(stage: &Stage, from: Option<&str>) -> bool {
    match from {
        None => stage.kind == StageKind::Funnel,
        Some(f) => stage.from.iter().any(|x| x == f),
    }
}

/// The moves from `state` to `to` at `at`: skipped funnel stages in between
/// first (marked `skipped`), then the target. Cycle goes up when leaving a
/// recycle stage.
fn path(
    pb: &Playbook,
    state: &State,
    to: &Stage,
    at: Timestamp,
    actor: Sym,
    reason: Option<&str>,
    note: Option<&str>,
) -> Vec<Move> {
    let current = state.stage.as_deref().and_then(|s| pb.stage(s));
    let leaving_recycle = current.is_some_and(|c| c.kind == StageKind::Recycle);
    let cycle = if state.cycle == 0 {
        1
    } else if leaving_recycle {
        state.cycle + 1
    } else {
        state.cycle
    };
    let mut moves = Vec::new();
    let mut from = state.stage;
    if let (Some(cur), Some(ti)) = (current.and_then(|c| c.funnel_index), to.funnel_index) {
        for s in pb
            .funnel()
            .filter(|s| s.funnel_index.is_some_and(|i| i > cur && i < ti))
        {
            moves.push(Move {
                from,
                to: s.sym,
                at,
                actor,
                reason: None,
                note: note.map(str::to_string),
                cycle,
                skipped: true,
            });
            from = Some(s.sym);
        }
    }
    moves.push(Move {
        from,
        to: to.sym,
        at,
        actor,
        reason: reason.map(Sym::new),
        note: note.map(str::to_string),
        cycle,
        skipped: false,
    });
    moves
}

/// A move made by a person (accept, qualify, reject, recycle) or an import.
pub fn manual(
    pb: &Playbook,
    state: &State,
    m: &ManualMove<'_>,
) -> Result<Vec<Move>, LifecycleError> {
    let to = pb
        .stage(m.to)
        .ok_or_else(|| LifecycleError::UnknownStage(m.to.to_string()))?;
    if let Some(entered) = state.entered_at {
        if m.at < entered {
            return Err(LifecycleError::BackInTime { entered, at: m.at });
        }
    }
    if let Some(cur) = state.stage.as_deref() {
        if cur == to.id {
            return Err(LifecycleError::AlreadyThere(cur.to_string()));
        }
        if pb.stage(cur).is_some_and(|s| s.kind == StageKind::Terminal) {
            return Err(LifecycleError::Terminal(cur.to_string()));
        }
    }
    if !allowed(to, state.stage.as_deref()) {
        return Err(LifecycleError::NotAllowed {
            from: state
                .stage
                .map_or_else(|| "(no stage)".into(), String::from),
            to: to.id.clone(),
            allowed: if to.from.is_empty() {
                "nowhere (it is where leads start)".into()
            } else {
                to.from
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    let needs_reason = to.kind != StageKind::Funnel;
    match m.reason {
        None if needs_reason => return Err(LifecycleError::ReasonRequired(to.id.clone())),
        None => {}
        Some(code) => {
            let r = pb
                .reason(code)
                .ok_or_else(|| LifecycleError::UnknownReason(code.to_string()))?;
            if needs_reason && !r.applies_to.contains(&to.id) {
                return Err(LifecycleError::ReasonDoesNotApply {
                    reason: code.to_string(),
                    stage: to.id.clone(),
                    applies: r.applies_to.join(", "),
                });
            }
        }
    }
    Ok(path(
        pb,
        state,
        to,
        m.at,
        Sym::new(m.actor),
        m.reason,
        m.note,
    ))
}

/// The stage `accept` moves a subject to: the funnel stage after its current one.
pub fn accept_target<'a>(pb: &'a Playbook, state: &State) -> Result<&'a Stage, LifecycleError> {
    let cur = state.stage.map(String::from).unwrap_or_default();
    let idx = pb
        .stage(&cur)
        .and_then(|s| s.funnel_index)
        .ok_or_else(|| LifecycleError::NothingToAccept(cur.clone()))?;
    pb.funnel()
        .find(|s| s.funnel_index == Some(idx + 1))
        .ok_or(LifecycleError::NothingToAccept(cur))
}

/// The off-ramp `reject` moves a subject to: disqualify, or recycle when asked.
pub fn reject_target(pb: &Playbook, recycle: bool) -> Result<&Stage, LifecycleError> {
    if recycle {
        pb.recycle_stage()
            .ok_or(LifecycleError::MissingOffRamp("recycle"))
    } else {
        pb.disqualify_stage()
            .ok_or(LifecycleError::MissingOffRamp("terminal (disqualify)"))
    }
}

/// Evaluates automatic stage entry at `at` with what was known then, and
/// returns the moves (possibly none). Only moves forward along the funnel, or
/// back into it from a recycle stage (a new cycle); never out of a terminal
/// stage. Of the automatic stages whose entry holds, the furthest wins.
pub fn evaluate(
    pb: &Playbook,
    state: &State,
    facts: &Facts<'_>,
    at: Timestamp,
    base: &Vars,
) -> Vec<Move> {
    let fit = scoring::fit_score(pb, base);
    let profile = Profile {
        base: base.clone(),
        fit,
    };
    evaluate_with(pb, state, facts, at, &mut Instants::new(pb, &profile))
}

/// What of a subject automatic entry reads that does not change with time:
/// the profile variables (person, account) and the fit score computed from
/// them. Computing it once per person instead of once per
/// [`advance`] call matters when a caller advances the same person many
/// times (the demo generator).
#[derive(Clone, Debug)]
pub struct Profile {
    base: Vars,
    fit: f64,
}

impl Profile {
    /// The profile of `facts`' person and account (the rest of `facts` is
    /// not read).
    pub fn new(pb: &Playbook, facts: &Facts<'_>) -> Profile {
        // Only the person's fields the rules read: see
        // `Playbook::profile_person_read`.
        let read = pb.profile_person_read();
        debug_assert_eq!(
            *read,
            crate::playbook::person_read(&pb.scoring, &pb.stages),
            "the playbook's rules changed after it was loaded"
        );
        let mut base = Vars::new();
        base.set_cel(Var::Person, person_cel_of(facts.person, read))
            .set_cel(Var::Account, account_cel(facts.account));
        let fit = scoring::fit_score(pb, &base);
        Profile { base, fit }
    }
}

/// The per-instant variables (`score`, `deal`, `activity`) of one subject
/// while [`advance`] walks its instants, and what each stage's entry gave
/// the last time it was evaluated.
///
/// An entry criterion is a function of the variables it reads; the profile
/// is the same at every instant and `deal` and `activity` change only when
/// a deal or activity enters the window. So a variable is converted to CEL
/// only when its value changed, and an entry is evaluated again only when
/// a variable it reads changed since its last evaluation (`mql` reads the
/// engagement score, which decays at every instant; `deal.open` does not).
/// Per-instant variables no entry reads are not computed at all.
struct Instants {
    vars: Vars,
    fit: f64,
    /// The grade of `fit`, when some entry reads `score`.
    grade: Option<Sym>,
    /// The engagement `score` is bound with (its bits), once bound.
    engagement: Option<u64>,
    /// Score, deal, activity: whether some entry reads it, its value as
    /// bound (deal and activity; the score's is `engagement`), and how
    /// many times it changed.
    slots: [Slot; 3],
    /// Per stage, as in `pb.stages`.
    entries: Vec<Entry>,
    /// The scoring touches since the cycle's start (the key), kept while
    /// it stays the same: scoring a lead at each of n instants would
    /// otherwise filter and sort its n touches n times.
    run: Option<(Timestamp, scoring::EngagementRun)>,
}

/// What [`Instants`] remembers of one stage's entry.
struct Entry {
    /// Which slots the entry reads.
    reads: [bool; 3],
    /// The slots' change counts when it was last evaluated, and the result.
    last: Option<([u64; 3], bool)>,
}

/// One per-instant variable of [`Instants`].
#[derive(Default)]
struct Slot {
    read: bool,
    value: Option<SlotValue>,
    changes: u64,
}

/// The value of the `deal` or `activity` slot, as numbers: compared at
/// every instant, converted to CEL only when it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SlotValue {
    Deal(DealFacts),
    Activity(ActivityFacts),
}

impl SlotValue {
    /// The variable's value as JSON (then CEL, as [`json_to_cel`] converts
    /// any other JSON variable).
    fn to_json(self) -> serde_json::Value {
        match self {
            SlotValue::Deal(d) => d.to_json(),
            SlotValue::Activity(a) => a.to_json(),
        }
    }
}

const SLOT_VARS: [Var; 3] = [Var::Score, Var::Deal, Var::Activity];

impl Instants {
    fn new(pb: &Playbook, profile: &Profile) -> Instants {
        let entries: Vec<Entry> = pb
            .stages
            .iter()
            .map(|s| Entry {
                reads: SLOT_VARS.map(|var| {
                    s.entry
                        .as_ref()
                        .is_some_and(|c| c.reads().of(var) != Read::Nothing)
                }),
                last: None,
            })
            .collect();
        let mut slots: [Slot; 3] = Default::default();
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.read = entries.iter().any(|e| e.reads[i]);
        }
        Instants {
            vars: profile.base.clone(),
            fit: profile.fit,
            grade: if slots[0].read {
                scoring::grade(pb, profile.fit).as_deref().map(Sym::new)
            } else {
                None
            },
            engagement: None,
            slots,
            entries,
            run: None,
        }
    }

    /// The engagement score at `at` of the touches at or after `since`.
    fn engagement(
        &mut self,
        pb: &Playbook,
        touches: &[crate::domain::Touch],
        since: Timestamp,
        at: Timestamp,
    ) -> f64 {
        let run = match &mut self.run {
            Some((key, run)) if *key == since => run,
            slot => {
                let recent = touches.iter().filter(|t| t.at >= since);
                &mut slot
                    .insert((since, scoring::EngagementRun::build(pb, recent)))
                    .1
            }
        };
        run.score(pb, at)
    }

    /// Binds `score` (slot 0) to the fit, its grade and `engagement`, when
    /// the engagement changed (the fit is the profile's). Built as CEL
    /// without JSON in between: it changes at nearly every instant.
    fn bind_score(&mut self, engagement: f64) {
        if self.engagement == Some(engagement.to_bits()) {
            return;
        }
        self.vars
            .set_cel(SLOT_VARS[0], score_cel_of(self.fit, engagement, self.grade));
        self.engagement = Some(engagement.to_bits());
        self.slots[0].changes += 1;
    }

    /// Binds slot `i` to `value`, converting it only when it changed.
    fn bind(&mut self, i: usize, value: SlotValue) {
        let slot = &mut self.slots[i];
        if slot.value != Some(value) {
            self.vars.set_cel(SLOT_VARS[i], slot_cel(value));
            slot.value = Some(value);
            slot.changes += 1;
        }
    }

    /// Whether the entry of `stage` (in `pb.stages`) holds on the bound
    /// variables, evaluated again only when a variable it reads changed.
    fn holds(&mut self, pb: &Playbook, stage: &Stage) -> bool {
        let Some(criterion) = stage.entry.as_ref() else {
            return false;
        };
        let Some(k) = pb.stages.iter().position(|s| std::ptr::eq(s, stage)) else {
            return criterion.matches(&self.vars);
        };
        let changes = [0, 1, 2].map(|i| self.slots[i].changes);
        let entry = &mut self.entries[k];
        if let Some((then, result)) = entry.last {
            if (0..3).all(|i| !entry.reads[i] || then[i] == changes[i]) {
                return result;
            }
        }
        let result = criterion.matches(&self.vars);
        entry.last = Some((changes, result));
        result
    }
}

/// [`score_cel`], remembered per thread by its inputs: new leads share a
/// few fit scores and start with no engagement, so nearly every lead's
/// first instant built a map that a lead before had built.
fn score_cel_of(fit: f64, engagement: f64, grade: Option<Sym>) -> cel::Value {
    type Key = (u64, u64, Option<Sym>);
    /// Maps kept per thread; past this the cache starts over (a lead
    /// with touches has a new engagement at each instant).
    const MAX: usize = 4096;
    thread_local! {
        static BUILT: std::cell::RefCell<Recent<Key, cel::Value>> =
            std::cell::RefCell::new(Recent::new(MAX));
    }
    let key = (fit.to_bits(), engagement.to_bits(), grade);
    BUILT.with(|built| {
        built
            .borrow_mut()
            .get_or_make(&key, || (key, score_cel(fit, engagement, grade.as_deref())))
    })
}

/// `value` converted to CEL ([`json_to_cel`]), or this thread's earlier
/// conversion of the same value: most new leads have no deal and no
/// activity yet, so each one's first instant converted the same two maps
/// again (4% of a first import).
fn slot_cel(value: SlotValue) -> cel::Value {
    /// Conversions kept per thread; past this the cache starts over.
    const MAX: usize = 4096;
    thread_local! {
        static CONVERTED: std::cell::RefCell<Recent<SlotValue, cel::Value>> =
            std::cell::RefCell::new(Recent::new(MAX));
    }
    CONVERTED.with(|converted| {
        converted.borrow_mut().get_or_make(&value, || {
            (
                value,
                crate::playbook::criteria::json_to_cel(&value.to_json()),
            )
        })
    })
}

/// The actor of automatic moves, interned once.
fn system() -> Sym {
    static SYSTEM: std::sync::LazyLock<Sym> = std::sync::LazyLock::new(|| Sym::new("system"));
    *SYSTEM
}

/// [`evaluate`] at one instant of an [`advance`] run: per-instant
/// variables and entry results carried over in `inst` from the instants
/// before.
fn evaluate_with(
    pb: &Playbook,
    state: &State,
    facts: &Facts<'_>,
    at: Timestamp,
    inst: &mut Instants,
) -> Vec<Move> {
    let current = state.stage.as_deref().and_then(|s| pb.stage(s));
    if current.is_some_and(|c| c.kind == StageKind::Terminal) {
        return Vec::new();
    }
    let since = if current.is_some_and(|c| c.kind == StageKind::Recycle) {
        // A recycled lead re-qualifies on what happens after it was recycled.
        state.entered_at.unwrap_or(at)
    } else if state.cycle <= 1 {
        // The first cycle owns every fact, even one dated before the lead's
        // first recorded stage (CRM exports do have deals won before the
        // first-contact date); history cannot go back, so such a fact takes
        // effect at the first instant evaluated.
        Timestamp::from_millis(i64::MIN)
    } else {
        state
            .cycle_started_at
            .unwrap_or(Timestamp::from_millis(i64::MIN))
    };
    if inst.slots[0].read {
        let engagement = inst.engagement(pb, facts.touches, since, at);
        inst.bind_score(engagement);
    }
    if inst.slots[1].read {
        inst.bind(1, SlotValue::Deal(DealFacts::of(facts.deals, since, at)));
    }
    if inst.slots[2].read {
        inst.bind(
            2,
            SlotValue::Activity(ActivityFacts::of(facts.activities, since, at)),
        );
    }

    let mut moves = Vec::new();
    let mut state = state.clone();
    // A new lead starts in the first stage when its entry holds.
    if state.stage.is_none() {
        if let Some(first) = pb.first_stage().filter(|s| inst.holds(pb, s)) {
            let m = path(pb, &state, first, at, system(), None, None);
            for mv in &m {
                state.apply(mv);
            }
            moves.extend(m);
        }
    }
    let cur_idx = state
        .stage
        .as_deref()
        .and_then(|s| pb.stage(s))
        .and_then(|s| s.funnel_index);
    let target = pb
        .funnel()
        .filter(|s| match (cur_idx, s.funnel_index) {
            (Some(c), Some(i)) => i > c,
            _ => allowed(s, state.stage.as_deref()),
        })
        .filter(|s| inst.holds(pb, s))
        .last();
    if let Some(t) = target {
        moves.extend(path(pb, &state, t, at, system(), None, None));
    }
    moves
}

/// Base variables (profile) for [`evaluate`], built once per person.
pub fn base_vars(facts: &Facts<'_>) -> Vars {
    let mut vars = Vars::new();
    vars.set_cel(Var::Person, person_cel(facts.person))
        .set_cel(Var::Account, account_cel(facts.account));
    vars
}

/// Runs automatic entry at every instant a fact changed from the current
/// stage's entry time (or the person's creation) up to `until`, in time order,
/// so a lead crossing a rule enters the stage at the instant it crossed.
/// Returns all moves to append, in order.
pub fn advance(pb: &Playbook, state: &State, facts: &Facts<'_>, until: Timestamp) -> Vec<Move> {
    advance_with(pb, state, facts, until, &Profile::new(pb, facts))
}

/// [`advance`] with the person's [`Profile`] computed by the caller (once
/// for all the times it advances the same person).
pub fn advance_with(
    pb: &Playbook,
    state: &State,
    facts: &Facts<'_>,
    until: Timestamp,
    profile: &Profile,
) -> Vec<Move> {
    advance_from(pb, state, facts, until, profile, EVERY_INSTANT)
}

/// The `from` of [`advance_after`] that skips nothing: every instant is
/// evaluated, as [`advance`] does.
pub const EVERY_INSTANT: Timestamp = Timestamp::from_millis(i64::MIN);

/// [`advance`] for a caller that advanced this subject before, in this
/// same state, up to an instant before `from`, and added no fact dated
/// before `from` since: the instants strictly between the state's entry
/// and `from` were evaluated then on the same facts and moved nobody, and
/// evaluation at an instant reads only facts up to it, so they would move
/// nobody now and are skipped. The entry instant is evaluated; if it moves
/// the subject, nothing is skipped. The moves are exactly [`advance`]'s:
/// the ingest committer uses it so a lead's next call costs its new
/// instants, not its whole history.
pub fn advance_after(
    pb: &Playbook,
    state: &State,
    facts: &Facts<'_>,
    until: Timestamp,
    from: Timestamp,
) -> Vec<Move> {
    advance_from(pb, state, facts, until, &Profile::new(pb, facts), from)
}

fn advance_from(
    pb: &Playbook,
    state: &State,
    facts: &Facts<'_>,
    until: Timestamp,
    profile: &Profile,
    from: Timestamp,
) -> Vec<Move> {
    let start = state.entered_at.unwrap_or(facts.person.created_at);
    let mut instants: Vec<Timestamp> = std::iter::once(facts.person.created_at)
        .chain(facts.touches.iter().map(|t| t.at))
        .chain(facts.activities.iter().map(|a| a.at))
        .chain(facts.deals.iter().map(|d| d.created_at))
        .chain(facts.deals.iter().filter_map(|d| d.closed_at))
        .filter(|t| *t >= start && *t <= until)
        .collect();
    instants.sort();
    instants.dedup();
    let mut inst = Instants::new(pb, profile);
    let mut state = state.clone();
    let mut out = Vec::new();
    for at in instants {
        if out.is_empty() && at > start && at < from {
            continue;
        }
        for m in evaluate_with(pb, &state, facts, at, &mut inst) {
            state.apply(&m);
            out.push(m);
        }
    }
    out
}

/// Turns moves into transitions for a subject, numbering them after `next_seq`.
pub fn to_transitions(
    subject: crate::domain::Subject,
    moves: &[Move],
    next_seq: i64,
) -> Vec<Transition> {
    moves
        .iter()
        .enumerate()
        .map(|(i, m)| m.to_transition(subject, next_seq + i as i64))
        .collect()
}

#[cfg(test)]
mod tests;
