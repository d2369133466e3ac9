//! Recording the joint meeting's decisions and action items from the weekly
//! page (`/weekly`): `POST /weekly/decisions` records one and
//! `POST /weekly/decisions/{id}/done` marks one done, with the store
//! functions `tandem decision add` and `tandem decision done` call
//! ([`tandem_store::weekly::add_decision`], [`complete_decision`]).
//!
//! The forms work like the feedback board's: each carries the session's
//! CSRF token; only roles allowed [`Action::Decide`] (admin, marketing,
//! sales) are offered them, and a POST from any other role is a 403 page;
//! bad input is a 400 page naming the field; success redirects (303) back
//! to the weekly page the form came from, with `recorded=ID` or `done=ID`
//! in the query so the page can say what happened ([`note`]).

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_core::Timestamp;
use tandem_report::{Agenda, Meeting, Week};
use tandem_store::weekly::{self, complete_decision, Decision, NewDecision};
use tandem_store::StoreError;

use super::session::WebUser;
use super::{require, urlencode, WebError};
use crate::auth::Action;
use crate::{now, AppState};

/// Longest decision text accepted (characters).
pub const TEXT_MAX: usize = 1000;
/// Longest owner accepted (characters).
pub const OWNER_MAX: usize = 200;

/// The form's fields. Every field defaults to empty, so a missing one is a
/// 400 (or, for the CSRF token, a 403) page naming it rather than the
/// extractor's bare rejection.
#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    csrf: String,
    /// `decision` or `action`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    owner: String,
    /// A date (`YYYY-MM-DD`, company timezone), or empty.
    #[serde(default)]
    due: String,
    /// The meeting whose agenda the form was on: `weekly` (default) or `marsale`.
    #[serde(default)]
    meeting: String,
    back: Option<String>,
}

impl NewForm {
    /// What to record, or a 400 naming the field that is wrong.
    fn parse(&self, tz: &TimeZone) -> Result<NewDecision, WebError> {
        let action = match self.kind.trim() {
            "decision" => false,
            "action" => true,
            "" => return Err(WebError::bad("kind: choose decision or action")),
            k => {
                return Err(WebError::bad(format!(
                    "kind: unknown `{k}`; use decision or action"
                )))
            }
        };
        let text = self.text.trim();
        if text.is_empty() {
            return Err(WebError::bad(
                "text: write what was decided or what is to be done",
            ));
        }
        if text.chars().count() > TEXT_MAX {
            return Err(WebError::bad(format!(
                "text: at most {TEXT_MAX} characters"
            )));
        }
        let owner = self.owner.trim();
        if owner.chars().count() > OWNER_MAX {
            return Err(WebError::bad(format!(
                "owner: at most {OWNER_MAX} characters"
            )));
        }
        let due = self.due.trim();
        let due_at = if due.is_empty() {
            None
        } else {
            Some(Timestamp::parse_in(due, tz).map_err(|_| {
                WebError::bad(format!(
                    "due: `{due}` is not a date such as 2026-12-04; leave it empty for no due date"
                ))
            })?)
        };
        let meeting = match self.meeting.trim() {
            "" => Meeting::Weekly,
            // "meeting: unknown meeting `…`; use weekly or marsale"
            m => Meeting::parse(m).map_err(|e| WebError::bad(e.to_string()))?,
        };
        Ok(NewDecision {
            text: text.to_string(),
            owner: (!owner.is_empty()).then(|| owner.to_string()),
            due_at,
            action,
            meeting: meeting.as_str().to_string(),
        })
    }
}

/// The CSRF token first (403 "the form expired"), then the role (403 page
/// naming it), as the feedback board checks.
fn checked(u: &WebUser, csrf: &str) -> Result<(), WebError> {
    if !u.csrf_ok(csrf) {
        return Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The form expired; reload the page.",
        ));
    }
    require(u, Action::Decide, "record decisions or action items")
}

/// Where a form returns to: the weekly page it came from (a local
/// `/weekly` URL of plain visible ASCII only; anything else is `/weekly`).
fn back_to(back: &Option<String>) -> &str {
    back.as_deref()
        .filter(|b| *b == "/weekly" || b.starts_with("/weekly?"))
        .filter(|b| b.bytes().all(|c| c.is_ascii_graphic()))
        .filter(|b| !b.contains("//") && !b.contains('#') && !b.contains('\\'))
        .unwrap_or("/weekly")
}

/// `back` with `key=id` added to its query and `#anchor`.
fn returning(back: &Option<String>, key: &str, id: i64, anchor: &str) -> String {
    let b = back_to(back);
    let sep = if b.contains('?') { '&' } else { '?' };
    format!("{b}{sep}{key}={id}#{anchor}")
}

fn see_other(to: String) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

/// `POST /weekly/decisions`: records a decision or action item taken now
/// (one insert), then back to the weekly page at its row.
#[tracing::instrument(skip_all)]
pub async fn record(
    State(s): State<AppState>,
    u: WebUser,
    Form(f): Form<NewForm>,
) -> Result<Response, WebError> {
    checked(&u, &f.csrf)?;
    let new = f.parse(&s.playbook().company.timezone)?;
    let mut c = s.store.conn().await?;
    let d = weekly::add_decision(&mut c, &new, now()).await?;
    tracing::info!(decision.id = d.id, decision.action = d.action, auth.token = %u.token.name, "recorded a decision");
    Ok(see_other(returning(
        &f.back,
        "recorded",
        d.id,
        &format!("decision-{}", d.id),
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneForm {
    #[serde(default)]
    csrf: String,
    back: Option<String>,
}

/// `POST /weekly/decisions/{id}/done`: marks one done now (one already done
/// keeps its first completion time), then back to the weekly page.
#[tracing::instrument(skip_all)]
pub async fn done(
    State(s): State<AppState>,
    u: WebUser,
    Path(id): Path<i64>,
    Form(f): Form<DoneForm>,
) -> Result<Response, WebError> {
    checked(&u, &f.csrf)?;
    let mut c = s.store.conn().await?;
    let d = complete_decision(&mut c, id, now()).await?;
    tracing::info!(decision.id = d.id, auth.token = %u.token.name, "marked a decision done");
    Ok(see_other(returning(
        &f.back,
        "done",
        d.id,
        "decisions-section",
    )))
}

/// What the weekly page was redirected with after a form (`recorded=ID`
/// or `done=ID`).
#[derive(Debug, Default, Deserialize)]
pub struct NoteQuery {
    recorded: Option<String>,
    done: Option<String>,
}

fn what(d: &Decision) -> &'static str {
    if d.action {
        "action item"
    } else {
        "decision"
    }
}

/// The note the weekly page shows after a form posted: what was recorded
/// or marked done and, when the agenda shown does not list it, where it
/// will be listed. `None` without such a query (or for an unknown id).
pub async fn note(
    s: &AppState,
    tz: &TimeZone,
    q: &NoteQuery,
    ag: &Agenda,
) -> Result<Option<Value>, WebError> {
    let id = |v: &Option<String>| v.as_deref().and_then(|v| v.trim().parse::<i64>().ok());
    let (recorded, done) = (id(&q.recorded), id(&q.done));
    let Some(n) = recorded.or(done) else {
        return Ok(None);
    };
    let mut c = s.store.conn().await?;
    let d = match weekly::decision(&mut c, n).await {
        Ok(d) => d,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let listed = |rows: &[tandem_report::agenda::DecisionRow]| rows.iter().any(|r| r.id == d.id);
    if recorded == Some(n) {
        let mut text = format!("Recorded {} #{}: {}.", what(&d), d.id, d.text);
        if !listed(&ag.open_decisions) && d.done_at.is_none() {
            text.push_str(&format!(
                " It is not listed below: this agenda is as of {}.",
                ag.as_of
            ));
        }
        return Ok(Some(json!({"text": text})));
    }
    let Some(done_at) = d.done_at else {
        return Ok(None);
    };
    let mut text = format!("Marked {} #{} done: {}.", what(&d), d.id, d.text);
    if listed(&ag.done_decisions) {
        text.push_str(" It is listed under “Done since the last meeting”.");
        return Ok(Some(json!({"text": text})));
    }
    // Done after the weeks this agenda covers: the agenda covering the
    // week it was done in lists it.
    let week = Week::containing(done_at, tz)
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .label();
    text.push_str(&format!(
        " The agenda covering {week} lists it under “Done since the last meeting”."
    ));
    Ok(Some(json!({
        "text": text,
        "link": format!("/weekly?week={}&meeting={}", urlencode(&week), ag.meeting.as_str()),
        "link_label": format!("See {week}"),
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form(kind: &str, text: &str, due: &str) -> NewForm {
        NewForm {
            kind: kind.into(),
            text: text.into(),
            due: due.into(),
            ..NewForm::default()
        }
    }

    fn err(f: &NewForm) -> String {
        f.parse(&TimeZone::UTC).unwrap_err().message
    }

    #[test]
    fn forms_parse_into_one_decision_or_name_the_bad_field() {
        let d = NewForm {
            owner: "  ann ".into(),
            meeting: "marsale".into(),
            ..form("action", "  Call the webinar leads ", "2026-12-04")
        }
        .parse(&TimeZone::UTC)
        .unwrap();
        assert_eq!(
            d,
            NewDecision {
                text: "Call the webinar leads".into(),
                owner: Some("ann".into()),
                due_at: Some(Timestamp::parse("2026-12-04T00:00:00Z").unwrap()),
                action: true,
                meeting: "marsale".into(),
            }
        );
        let d = form("decision", "Raise the MQL bar", "")
            .parse(&TimeZone::UTC)
            .unwrap();
        assert_eq!((d.action, d.owner, d.due_at), (false, None, None));
        assert_eq!(d.meeting, "weekly");

        assert!(err(&form("decision", "   ", "")).starts_with("text:"));
        assert!(err(&form("memo", "x", "")).starts_with("kind: unknown `memo`"));
        assert!(err(&form("", "x", "")).starts_with("kind:"));
        assert!(err(&form("action", "x", "next friday")).starts_with("due: `next friday`"));
        assert!(err(&form("action", &"x".repeat(TEXT_MAX + 1), "")).starts_with("text:"));
        let long_owner = NewForm {
            owner: "o".repeat(OWNER_MAX + 1),
            ..form("action", "x", "")
        };
        assert!(err(&long_owner).starts_with("owner:"));
        let bad_meeting = NewForm {
            meeting: "standup".into(),
            ..form("action", "x", "")
        };
        assert!(err(&bad_meeting).starts_with("meeting:"));
    }

    #[test]
    fn forms_return_to_the_weekly_page_only() {
        let back = |s: &str| Some(s.to_string());
        assert_eq!(
            returning(
                &back("/weekly?week=2026-W47&meeting=weekly"),
                "done",
                3,
                "decisions-section"
            ),
            "/weekly?week=2026-W47&meeting=weekly&done=3#decisions-section"
        );
        assert_eq!(
            returning(&None, "recorded", 4, "decision-4"),
            "/weekly?recorded=4#decision-4"
        );
        for evil in [
            "https://evil.example/weekly",
            "//evil.example",
            "/weekly//evil",
            "/weekly/report?week=2026-W47",
            "/weeklyx",
            "/weekly?a=b\r\nSet-Cookie: x=y",
            "/weekly?a=b#top",
        ] {
            assert_eq!(back_to(&back(evil)), "/weekly", "{evil}");
        }
    }

    #[test]
    fn only_both_teams_and_admin_decide() {
        use tandem_store::tokens::Role;
        let may: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| crate::auth::allows(*r, Action::Decide))
            .collect();
        assert_eq!(may, [Role::Admin, Role::Marketing, Role::Sales]);
    }
}
