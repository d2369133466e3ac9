//! The joint meeting's agenda (DESIGN §7): lead quality, handoff problems,
//! goal progress, open obstacles and requests, and the decisions log.

use std::collections::BTreeMap;

use serde::Serialize;
use tandem_core::domain::Subject;
use tandem_core::fxhash::{FxHashMap, FxHashSet};
use tandem_core::metrics::Window;
use tandem_core::playbook::{Playbook, StageKind};
use tandem_core::Timestamp;
use tandem_store::weekly::Decision;

use crate::report::{goal_rows, goals, local, local_date, mql_stage, sla_section};
use crate::report::{GoalRow, Inputs, SlaSection, WeeklyReport};
use crate::{FeedbackNote, ReportError, Week};

/// Examples listed per rejection reason.
pub const EXAMPLES: usize = 3;

/// Which meeting: the weekly one, or the joint marketing–sales meeting
/// every two weeks (`marsale`), whose agenda covers two weeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Meeting {
    Weekly,
    Marsale,
}

impl Meeting {
    /// Parses `weekly` or `marsale`.
    pub fn parse(s: &str) -> Result<Meeting, ReportError> {
        match s {
            "weekly" => Ok(Meeting::Weekly),
            "marsale" => Ok(Meeting::Marsale),
            other => Err(ReportError::invalid(
                "meeting",
                format!("unknown meeting `{other}`; use weekly or marsale"),
            )),
        }
    }

    /// `weekly` or `marsale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Meeting::Weekly => "weekly",
            Meeting::Marsale => "marsale",
        }
    }

    /// Weeks the agenda looks back over.
    pub fn weeks(self) -> i64 {
        match self {
            Meeting::Weekly => 1,
            Meeting::Marsale => 2,
        }
    }
}

/// A rejected lead shown as an example.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedLead {
    pub person: String,
    pub owner: String,
    pub actor: String,
    pub at: String,
    pub to: String,
    pub note: String,
}

/// Rejections with one reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasonRow {
    pub reason: String,
    pub name: String,
    pub count: u64,
    pub examples: Vec<RejectedLead>,
}

/// A decision or action item as the agenda shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionRow {
    pub id: i64,
    pub text: String,
    pub kind: &'static str,
    pub owner: String,
    pub due: String,
    pub overdue: bool,
    pub created: String,
    pub done: String,
}

/// The agenda.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agenda {
    pub company: String,
    pub meeting: Meeting,
    /// The last week the agenda covers (`2026-W47`).
    pub week: String,
    pub period_from: String,
    pub period_to: String,
    pub as_of: String,
    /// MQLs rejected (moved from the handoff stage to an off-ramp) in the period.
    pub rejected_total: u64,
    pub rejected: Vec<ReasonRow>,
    pub handoffs: Option<SlaSection>,
    pub goals: Vec<GoalRow>,
    pub obstacles: Vec<FeedbackNote>,
    pub requests: Vec<FeedbackNote>,
    pub lead_quality_notes: Vec<FeedbackNote>,
    /// Decisions and action items still open, oldest first.
    pub open_decisions: Vec<DecisionRow>,
    /// Done since the last meeting.
    pub done_decisions: Vec<DecisionRow>,
}

fn decision_row(pb: &Playbook, d: &Decision, as_of: Timestamp) -> DecisionRow {
    DecisionRow {
        id: d.id,
        text: d.text.clone(),
        kind: if d.action { "action" } else { "decision" },
        owner: d.owner.clone().unwrap_or_else(|| "-".into()),
        due: d
            .due_at
            .map(|t| local_date(pb, t))
            .unwrap_or_else(|| "-".into()),
        overdue: d.due_at.is_some_and(|t| t < as_of) && d.open_at(as_of),
        created: local_date(pb, d.created_at),
        done: d
            .done_at
            .filter(|t| *t <= as_of)
            .map(|t| local_date(pb, t))
            .unwrap_or_else(|| "-".into()),
    }
}

/// Builds the agenda of `meeting` covering the week `week` (default: the
/// last complete week before `as_of`) and, for `marsale`, the week before.
pub fn agenda(
    pb: &Playbook,
    inputs: &Inputs<'_>,
    meeting: Meeting,
    week: Option<Week>,
    as_of: Timestamp,
) -> Result<Agenda, ReportError> {
    agenda_with(pb, inputs, meeting, week, as_of, None)
}

/// [`agenda`] of `week` as of the instant `report` was built for, beside
/// that report (built from the same inputs for the same week): the goals
/// and, when the meeting covers that week alone, the sales SLA section are
/// the report's, not computed again.
pub fn agenda_beside(
    pb: &Playbook,
    inputs: &Inputs<'_>,
    meeting: Meeting,
    week: Week,
    report: &WeeklyReport,
) -> Result<Agenda, ReportError> {
    agenda_with(
        pb,
        inputs,
        meeting,
        Some(week),
        report.as_of_ts,
        Some(report),
    )
}

fn agenda_with(
    pb: &Playbook,
    inputs: &Inputs<'_>,
    meeting: Meeting,
    week: Option<Week>,
    as_of: Timestamp,
    report: Option<&WeeklyReport>,
) -> Result<Agenda, ReportError> {
    let tz = &pb.company.timezone;
    let week = match week {
        Some(w) => w,
        None => Week::last_complete(as_of, tz)?,
    };
    let mut first = week;
    for _ in 1..meeting.weeks() {
        first = first.previous(tz)?;
    }
    let period = Window::new(first.window.from, week.window.to)?;
    let snap = &inputs.snap;

    // Lead quality: MQLs moved from the handoff stage to an off-ramp.
    // The instant is tested first: the stage names are behind a pointer
    // per transition.
    let handoff = mql_stage(pb);
    let mut by_reason: BTreeMap<String, Vec<RejectedLead>> = BTreeMap::new();
    let mut rejected: Vec<tandem_core::transitions::TransitionRef> = snap
        .transitions
        .iter()
        .filter(|t| {
            period.contains(t.at)
                && t.at <= as_of
                && t.from.as_deref() == Some(handoff.as_str())
                && pb
                    .stage(&t.to)
                    .is_some_and(|s| matches!(s.kind, StageKind::Recycle | StageKind::Terminal))
        })
        .collect();
    rejected.sort_by_key(|t| (t.at, t.seq));
    // Only the rejected leads' people are looked up.
    let wanted: FxHashSet<i64> = rejected
        .iter()
        .filter_map(|t| match t.subject {
            Subject::Person(id) => Some(id),
            Subject::Account(_) => None,
        })
        .collect();
    let people: FxHashMap<i64, &tandem_core::domain::Person> = snap
        .people
        .iter()
        .filter(|p| wanted.contains(&p.id))
        .map(|p| (p.id, p))
        .collect();
    for t in &rejected {
        let person = match t.subject {
            Subject::Person(id) => people.get(&id).copied(),
            Subject::Account(_) => None,
        };
        by_reason
            .entry(t.reason.map_or_else(|| "(none)".to_string(), String::from))
            .or_default()
            .push(RejectedLead {
                person: person
                    .map(|p| p.external_id().to_string())
                    .unwrap_or_else(|| format!("{:?}", t.subject)),
                owner: person
                    .and_then(|p| p.owner)
                    .unwrap_or_else(|| "-".into())
                    .to_string(),
                actor: t.actor.to_string(),
                at: local(pb, t.at),
                to: t.to.to_string(),
                note: t.note.unwrap_or_default().to_string(),
            });
    }
    let mut reasons: Vec<ReasonRow> = by_reason
        .into_iter()
        .map(|(code, leads)| ReasonRow {
            name: pb
                .reason(&code)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| code.clone()),
            reason: code,
            count: leads.len() as u64,
            examples: leads.into_iter().take(EXAMPLES).collect(),
        })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));

    let handoffs = match report {
        // The report's section without its marketing side, which the
        // agenda does not show.
        Some(r) if r.week_window == period => r.sla.clone().map(|s| SlaSection {
            marketing: None,
            ..s
        }),
        _ => sla_section(pb, snap, period, None, as_of)?,
    };
    let goals = match report {
        Some(r) => r.goals.clone(),
        None => {
            let index = inputs.index();
            goal_rows(pb, &goals(pb, inputs, &inputs.history(&index), as_of)?)
        }
    };
    let open = |kind: &str| -> Vec<FeedbackNote> {
        crate::report::dated(
            pb,
            crate::report::feedback_of(inputs, kind, as_of).filter(|f| f.is_open()),
        )
        .collect()
    };
    let open_decisions = inputs
        .decisions
        .iter()
        .filter(|d| d.open_at(as_of))
        .map(|d| decision_row(pb, d, as_of))
        .collect();
    let done_decisions = inputs
        .decisions
        .iter()
        .filter(|d| d.done_at.is_some_and(|t| period.contains(t) && t <= as_of))
        .map(|d| decision_row(pb, d, as_of))
        .collect();
    Ok(Agenda {
        company: pb.company.name.clone(),
        meeting,
        week: week.label(),
        period_from: local_date(pb, period.from),
        period_to: local_date(pb, period.to),
        as_of: local(pb, as_of),
        rejected_total: rejected.len() as u64,
        rejected: reasons,
        handoffs,
        goals,
        obstacles: open("obstacle"),
        requests: open("content_request"),
        lead_quality_notes: open("lead_quality"),
        open_decisions,
        done_decisions,
    })
}
