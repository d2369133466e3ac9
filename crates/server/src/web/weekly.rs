//! The weekly report page (`/weekly`): the report of a chosen ISO week as
//! `tandem report --format html` renders it (and as it is e-mailed), the
//! meeting agenda with its decisions and action items, and the week's
//! funnel at a glance (chart and table). Roles that may decide (admin,
//! marketing, sales) also get a form to record a decision or action item
//! and a "Mark done" button on each open one ([`super::decisions`]); a
//! viewer reads only.
//!
//! The report's HTML is self-contained (inline CSS and SVG, made for
//! e-mail clients), which the dashboard's CSP forbids; so it is served on
//! its own (`/weekly/report`, `/weekly/agenda`) with a CSP that allows
//! inline style and nothing else (no script at all), and shown in a frame
//! of this origin. Numbers come from `tandem_report::build` and
//! `tandem_report::agenda` on the dashboard's kept snapshot, the same
//! functions the CLI's `tandem report` and `tandem agenda` call.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::http::HeaderValue;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::json;
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_report::render::{self, Style};
use tandem_report::{Agenda, Meeting, ReportError, Week, WeeklyReport};

use super::cache::{kept_groups, kept_index, SnapshotCache};
use super::decisions::NoteQuery;
use super::pages::{as_of, filter, grouped, nonempty, option, section, table};
use super::session::WebUser;
use super::svg::{self, Series};
use super::{base, render, urlencode, with, WebError};
use crate::auth::{allows, Action};
use crate::AppState;

/// Weeks offered in the picker (the last complete ones, newest first).
pub const WEEKS_OFFERED: usize = 12;

/// The CSP of the framed report: inline style (the e-mail HTML's), images
/// from data: URLs, no script, framed only by this origin.
const FRAMED_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

#[derive(Debug, Default, Deserialize)]
pub struct WeeklyQuery {
    week: Option<String>,
    meeting: Option<String>,
    as_of: Option<String>,
}

fn report_err(e: ReportError) -> WebError {
    match e {
        ReportError::Invalid { .. } => WebError::bad(e.to_string()),
        ReportError::Store(s) => s.into(),
        other => WebError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            other.to_string(),
        ),
    }
}

struct Ask {
    week: Week,
    meeting: Meeting,
    at: Timestamp,
}

fn ask(pb: &Playbook, q: &WeeklyQuery) -> Result<Ask, WebError> {
    let at = as_of(pb, q.as_of.as_deref())?;
    let tz = &pb.company.timezone;
    let week = match nonempty(&q.week) {
        Some(w) => Week::parse(w, tz),
        None => Week::last_complete(at, tz),
    }
    .map_err(report_err)?;
    let meeting = Meeting::parse(nonempty(&q.meeting).unwrap_or("weekly")).map_err(report_err)?;
    Ok(Ask { week, meeting, at })
}

/// The week's report and agenda, built together: the page shows parts of
/// both and its two frames render one each, all for the same instant.
struct Built {
    report: WeeklyReport,
    agenda: Agenda,
}

/// Builds the report and agenda of `a` on the kept history (borrowed, not
/// cloned), or recalls them when the page or a frame built them from the
/// same history, playbook, weekly-loop records and instant.
async fn built(
    s: &AppState,
    cache: &SnapshotCache,
    pb: &Arc<Playbook>,
    a: &Ask,
) -> Result<Arc<Built>, WebError> {
    let (snap, marks) = cache.get_marked(&s.store).await?;
    let mut inp = tandem_report::load_with(&s.store, Cow::Borrowed(&*snap))
        .await
        .map_err(report_err)?;
    inp.groups = Some(kept_groups(cache, &snap, marks, pb));
    inp.index = Some(kept_index(cache, &snap, marks, pb));
    // Decisions, content and feedback are read fresh each time (small
    // tables outside the kept history): they are part of the key.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!(
        "{:?}{:?}{:?}{:?}",
        inp.decisions, inp.assets, inp.uses, inp.feedback
    )
    .hash(&mut h);
    let key = format!(
        "weekly|{}|{}|{}|{:016x}",
        a.week.label(),
        a.meeting.as_str(),
        a.at.millis(),
        h.finish()
    );
    if let Some(b) = cache.recall::<Built>(&key, marks, pb) {
        return Ok(b);
    }
    let report = tandem_report::build(pb, &inp, Some(a.week), a.at).map_err(report_err)?;
    let agenda =
        tandem_report::agenda_beside(pb, &inp, a.meeting, a.week, &report).map_err(report_err)?;
    let b = Arc::new(Built { report, agenda });
    cache.keep(key, marks, pb.clone(), b.clone());
    Ok(b)
}

/// `GET /weekly`: week picker, the week at a glance, the framed report and
/// agenda, the open and done decisions; for roles that may decide, the
/// forms to record one and mark one done, and (after they post,
/// `?recorded=ID` / `?done=ID`) a note saying what was done.
#[tracing::instrument(skip_all)]
pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    Query(q): Query<WeeklyQuery>,
    Query(nq): Query<NoteQuery>,
) -> Result<Response, WebError> {
    let pba = s.playbook();
    let pb = &*pba;
    let a = ask(pb, &q)?;
    let b = built(&s, &cache, &pba, &a).await?;
    let (r, ag) = (&b.report, &b.agenda);
    let tz = &pb.company.timezone;

    // The picker: the last complete weeks, plus the asked one if older.
    let mut weeks: Vec<String> = Vec::new();
    let mut w = Week::last_complete(a.at, tz).map_err(report_err)?;
    for _ in 0..WEEKS_OFFERED {
        weeks.push(w.label());
        w = w.previous(tz).map_err(report_err)?;
    }
    let label = a.week.label();
    if !weeks.contains(&label) {
        weeks.insert(0, label.clone());
    }

    let names: Vec<String> = r.waterfall.iter().map(|s| s.name.clone()).collect();
    let chart = svg::bars(
        &format!("Stage entries in {label}, the week before and the 4-week average"),
        &names,
        &[
            Series {
                name: "this week".into(),
                values: r.waterfall.iter().map(|s| s.this_week as f64).collect(),
            },
            Series {
                name: "last week".into(),
                values: r.waterfall.iter().map(|s| s.last_week as f64).collect(),
            },
            Series {
                name: "4-week average".into(),
                values: r.waterfall.iter().map(|s| s.avg4).collect(),
            },
        ],
    );
    let rows = r
        .waterfall
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                grouped(s.this_week as i64),
                grouped(s.last_week as i64),
                format!("{:.1}", s.avg4),
                grouped(s.leaked as i64),
            ]
        })
        .collect();
    let decisions = |list: &[tandem_report::agenda::DecisionRow]| -> Vec<Vec<String>> {
        list.iter()
            .map(|d| {
                vec![
                    d.kind.to_string(),
                    d.text.clone(),
                    d.owner.clone(),
                    if d.overdue {
                        format!("{} (overdue)", d.due)
                    } else {
                        d.due.clone()
                    },
                    d.created.clone(),
                ]
            })
            .collect()
    };
    let done: Vec<Vec<String>> = ag
        .done_decisions
        .iter()
        .map(|d| {
            vec![
                d.kind.to_string(),
                d.text.clone(),
                d.owner.clone(),
                d.done.clone(),
            ]
        })
        .collect();
    let qs = format!(
        "week={}&meeting={}{}",
        urlencode(&label),
        match a.meeting {
            Meeting::Weekly => "weekly",
            Meeting::Marsale => "marsale",
        },
        nonempty(&q.as_of)
            .map(|x| format!("&as_of={}", urlencode(x)))
            .unwrap_or_default()
    );
    // The frames ask for the instant this page used, so they show the
    // report it built (recalled, not built again) even a second later.
    let frame_qs = format!(
        "week={}&meeting={}&as_of={}",
        urlencode(&label),
        a.meeting.as_str(),
        urlencode(&a.at.to_string())
    );
    let note = format!(
        "{} to {}, numbers as of {}. {} celebrations.",
        r.week_from,
        r.week_to,
        r.as_of,
        r.celebrations.len()
    );
    let decision_note = super::decisions::note(&s, tz, &nq, ag).await?;
    render(
        "weekly.html",
        with(
            base(&u, pb, "/weekly", "Weekly report"),
            json!({
                "intro": "The report both teams read before the joint meeting, exactly as it is e-mailed, and the meeting's agenda with its decisions and action items.",
                "filters": [
                    filter("week", "Week", &label, weeks.iter().map(|w| option(w, w)).collect()),
                    filter("meeting", "Meeting", match a.meeting { Meeting::Weekly => "weekly", Meeting::Marsale => "marsale" },
                        vec![option("weekly", "weekly (one week)"), option("marsale", "joint marketing-sales (two weeks)")]),
                ],
                "week": label,
                "glance": section("glance", &format!("{label} at a glance"), Some(note), Some(chart),
                    table("weekly-flow", &["stage", "this week", "last week", "4-week average", "left"],
                        &[false, true, true, true, true], rows)),
                "open_decisions": section("decisions", "Open decisions and action items", None, None,
                    table("weekly-decisions", &["kind", "text", "owner", "due", "recorded"], &[false, false, false, false, false], decisions(&ag.open_decisions))),
                "open_ids": ag.open_decisions.iter().map(|d| d.id).collect::<Vec<_>>(),
                "can_decide": allows(u.token.role, Action::Decide),
                "decision_note": decision_note,
                "back": format!("/weekly?{qs}"),
                "meeting": a.meeting.as_str(),
                "done_decisions": section("done", "Done since the last meeting", None, None,
                    table("weekly-done", &["kind", "text", "owner", "done"], &[false, false, false, false], done)),
                "report_src": format!("/weekly/report?{frame_qs}"),
                "agenda_src": format!("/weekly/agenda?{frame_qs}"),
            }),
        ),
    )
}

fn framed(html: String) -> Response {
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FRAMED_CSP),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    r
}

/// `GET /weekly/report`: the report's self-contained HTML (framed by `/weekly`).
#[tracing::instrument(skip_all)]
pub async fn report_html(
    State(s): State<AppState>,
    _u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    Query(q): Query<WeeklyQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let a = ask(&pb, &q)?;
    let b = built(&s, &cache, &pb, &a).await?;
    Ok(framed(
        render::report(&b.report, Style::Html).map_err(report_err)?,
    ))
}

/// `GET /weekly/agenda`: the meeting agenda's self-contained HTML.
#[tracing::instrument(skip_all)]
pub async fn agenda_html(
    State(s): State<AppState>,
    _u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    Query(q): Query<WeeklyQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let a = ask(&pb, &q)?;
    let b = built(&s, &cache, &pb, &a).await?;
    Ok(framed(
        render::agenda(&b.agenda, Style::Html).map_err(report_err)?,
    ))
}
