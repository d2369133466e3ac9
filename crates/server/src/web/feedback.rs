//! The feedback board (`/feedback`): items from both teams in one column
//! per status (open, in progress, done, declined), filtered by type and
//! team. Roles that may write feedback (admin, marketing, sales) get the
//! forms to add an item, comment and move it; a viewer sees the board only.
//! Items live in `tandem_store::feedback`, the same functions the API's
//! `/api/v1/feedback` and `tandem feedback` call.

use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_store::feedback::{self, Filter, Kind, Links, NewItem, Status, Team};

use super::pages::{filter, nonempty, option};
use super::session::WebUser;
use super::{base, local, render, require, urlencode, with, WebError};
use crate::auth::{allows, Action};
use crate::{now, AppState};

/// Most items the board shows (newest kept when there are more).
pub const BOARD_LIMIT: i64 = 500;

fn label(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct BoardQuery {
    kind: Option<String>,
    team: Option<String>,
}

fn parse<T>(
    field: &str,
    v: Option<&str>,
    p: fn(&str) -> Option<T>,
    names: String,
) -> Result<Option<T>, WebError> {
    match v {
        None => Ok(None),
        Some(s) => p(s)
            .map(Some)
            .ok_or_else(|| WebError::bad(format!("{field}: unknown `{s}`; use {names}"))),
    }
}

/// `GET /feedback`: the board.
#[tracing::instrument(skip_all)]
pub async fn board(
    State(s): State<AppState>,
    u: WebUser,
    Query(q): Query<BoardQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let pb = &*pb;
    let kind = parse("type", nonempty(&q.kind), Kind::parse, Kind::names())?;
    let team = parse("team", nonempty(&q.team), Team::parse, Team::names())?;
    let mut c = s.store.conn().await?;
    let f = Filter {
        kind,
        team,
        ..Filter::default()
    };
    let mut items = feedback::list(&mut c, &f, 0, i64::MAX).await?;
    let total = items.len();
    // Newest first on the board; keep the newest when there are many.
    items.reverse();
    items.truncate(BOARD_LIMIT as usize);
    let can = allows(u.token.role, Action::Feedback);
    let mut columns: Vec<Value> = Vec::new();
    for status in Status::ALL {
        let mut cards = Vec::new();
        for it in items.iter().filter(|i| i.status == *status) {
            let comments: Vec<Value> = feedback::comments(&mut c, it.id)
                .await?
                .iter()
                .map(|m| json!({"author": m.author, "body": m.body, "at": local(pb, m.created_at)}))
                .collect();
            let links: Vec<String> = [
                ("person", &it.links.person),
                ("account", &it.links.account),
                ("deal", &it.links.deal),
                ("campaign", &it.links.campaign),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
            .collect();
            cards.push(json!({
                "id": it.id,
                "title": it.title,
                "body": it.body,
                "kind": it.kind.as_str(),
                "kind_label": label(it.kind.as_str()),
                "team": it.team.as_str(),
                "author": it.author,
                "created": local(pb, it.created_at),
                "updated": local(pb, it.updated_at),
                "links": links,
                "comments": comments,
                "status": it.status.as_str(),
            }));
        }
        columns.push(json!({
            "status": status.as_str(),
            "label": label(status.as_str()),
            "count": cards.len(),
            "items": cards,
        }));
    }
    let kinds: Vec<Value> = std::iter::once(option("", "all types"))
        .chain(
            Kind::ALL
                .iter()
                .map(|k| option(k.as_str(), &label(k.as_str()))),
        )
        .collect();
    let teams: Vec<Value> = std::iter::once(option("", "both teams"))
        .chain(
            Team::ALL
                .iter()
                .map(|t| option(t.as_str(), &label(t.as_str()))),
        )
        .collect();
    let params: Vec<String> = [("kind", nonempty(&q.kind)), ("team", nonempty(&q.team))]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    let back = if params.is_empty() {
        "/feedback".to_string()
    } else {
        format!("/feedback?{}", params.join("&"))
    };
    let default_team = match u.token.role.as_str() {
        "sales" => "sales",
        _ => "marketing",
    };
    render(
        "feedback.html",
        with(
            base(&u, pb, "/feedback", "Feedback board"),
            json!({
                "intro": "Successes, obstacles, lead-quality notes, content requests and ideas from both teams, by status. The weekly report and the meeting agenda read the same items.",
                "filters": [
                    filter("kind", "Type", nonempty(&q.kind).unwrap_or(""), kinds.clone()),
                    filter("team", "Team", nonempty(&q.team).unwrap_or(""), teams),
                ],
                "columns": columns,
                "counts": format!("{total} items{}", if total > BOARD_LIMIT as usize { format!(", the newest {BOARD_LIMIT} shown") } else { String::new() }),
                "can_feedback": can,
                "kinds": Kind::ALL.iter().map(|k| option(k.as_str(), &label(k.as_str()))).collect::<Vec<_>>(),
                "teams": Team::ALL.iter().map(|t| option(t.as_str(), &label(t.as_str()))).collect::<Vec<_>>(),
                "statuses": Status::ALL.iter().map(|t| option(t.as_str(), &label(t.as_str()))).collect::<Vec<_>>(),
                "default_team": default_team,
                "back": back,
            }),
        ),
    )
}

/// Where a form returns to: the board with the filters it came from.
fn back_to(back: &Option<String>, anchor: Option<i64>) -> String {
    let b = back
        .as_deref()
        .filter(|b| b.starts_with("/feedback") && !b.contains("//") && !b.contains('#'))
        .unwrap_or("/feedback");
    match anchor {
        Some(id) => format!("{b}#fb-{id}"),
        None => b.to_string(),
    }
}

fn see_other(to: String) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

fn checked(u: &WebUser, csrf: &str) -> Result<(), WebError> {
    if !u.csrf_ok(csrf) {
        return Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The form expired; reload the page.",
        ));
    }
    require(u, Action::Feedback, "write feedback")
}

#[derive(Debug, Deserialize)]
pub struct NewForm {
    csrf: String,
    kind: String,
    team: String,
    title: String,
    #[serde(default)]
    body: String,
    back: Option<String>,
}

/// `POST /feedback`: adds an item (author: the signed-in token's name).
#[tracing::instrument(skip_all)]
pub async fn create(
    State(s): State<AppState>,
    u: WebUser,
    Form(f): Form<NewForm>,
) -> Result<Response, WebError> {
    checked(&u, &f.csrf)?;
    let kind = parse("type", Some(f.kind.trim()), Kind::parse, Kind::names())?
        .ok_or_else(|| WebError::bad("type: missing"))?;
    let team = parse("team", Some(f.team.trim()), Team::parse, Team::names())?
        .ok_or_else(|| WebError::bad("team: missing"))?;
    let title = f.title.trim();
    if title.is_empty() {
        return Err(WebError::bad("title: give the item a title"));
    }
    let mut c = s.store.conn().await?;
    let it = feedback::create(
        &mut c,
        &NewItem {
            kind,
            title: title.to_string(),
            body: f.body.trim().to_string(),
            author: u.token.name.clone(),
            team,
            links: Links::default(),
        },
        now(),
    )
    .await?;
    Ok(see_other(back_to(&f.back, Some(it.id))))
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    csrf: String,
    status: String,
    back: Option<String>,
}

/// `POST /feedback/{id}/status`: moves an item to another column.
#[tracing::instrument(skip_all)]
pub async fn set_status(
    State(s): State<AppState>,
    u: WebUser,
    Path(id): Path<i64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, WebError> {
    checked(&u, &f.csrf)?;
    let status = parse(
        "status",
        Some(f.status.trim()),
        Status::parse,
        Status::names(),
    )?
    .ok_or_else(|| WebError::bad("status: missing"))?;
    let mut c = s.store.conn().await?;
    feedback::set_status(&mut c, id, status, now()).await?;
    Ok(see_other(back_to(&f.back, Some(id))))
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    csrf: String,
    body: String,
    back: Option<String>,
}

/// `POST /feedback/{id}/comments`: adds a comment.
#[tracing::instrument(skip_all)]
pub async fn comment(
    State(s): State<AppState>,
    u: WebUser,
    Path(id): Path<i64>,
    Form(f): Form<CommentForm>,
) -> Result<Response, WebError> {
    checked(&u, &f.csrf)?;
    let body = f.body.trim();
    if body.is_empty() {
        return Err(WebError::bad("comment: write something"));
    }
    let mut c = s.store.conn().await?;
    feedback::add_comment(&mut c, id, &u.token.name, body, now()).await?;
    Ok(see_other(back_to(&f.back, Some(id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_returns() {
        assert_eq!(label("in_progress"), "In progress");
        assert_eq!(label("lead_quality"), "Lead quality");
        assert_eq!(
            back_to(&Some("/feedback?kind=idea&team=".into()), Some(3)),
            "/feedback?kind=idea&team=#fb-3"
        );
        assert_eq!(
            back_to(&Some("https://evil.example".into()), None),
            "/feedback"
        );
        assert_eq!(back_to(&Some("/feedback//evil".into()), None), "/feedback");
    }
}
