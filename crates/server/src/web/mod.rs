//! The dashboard at `/`: server-rendered pages for both teams.
//!
//! Templates (`crates/server/web/templates`) and assets (`web/assets`) are
//! embedded in the binary; there is no front-end build and nothing is
//! fetched from elsewhere. Page data comes from the same core and store
//! functions the CLI commands and the API use. Charts are inline SVG
//! ([`svg`]), each followed by a table of its numbers.
//!
//! Pages: overview, waterfall, SLA inbox, stalled, attribution, plan, gaps
//! and playbook in [`pages`]; the target accounts ([`targets`]), the
//! feedback board ([`feedback`]) and the weekly report with the meeting
//! agenda ([`weekly`]) each in their own module; the weekly page's forms
//! that record decisions and action items in [`decisions`].
//!
//! Sign-in takes an API token and starts a server-side session
//! ([`session`]); every form carries the session's CSRF token. What a role
//! cannot do is not offered, and asking anyway is a 403 page.

pub(crate) mod cache;
mod decisions;
mod feedback;
mod pages;
pub mod session;
pub mod svg;
mod targets;
mod weekly;

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use minijinja::Environment;
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::tokens;

use crate::auth::{allows, Action};
use crate::error::ApiError;
use crate::AppState;
use session::{cookie, set_cookie, Sessions, WebUser, COOKIE_NAME, LOGIN_COOKIE};

/// The dashboard's routes; merged into [`crate::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/waterfall", get(pages::waterfall))
        .route("/sla", get(pages::sla))
        .route("/sla/{external_id}", post(pages::sla_move))
        .route("/stalled", get(pages::stalled))
        .route("/attribution", get(pages::attribution))
        .route("/plan", get(pages::plan))
        .route("/gaps", get(pages::gaps))
        .route("/playbook", get(pages::playbook))
        .route("/feedback", get(feedback::board).post(feedback::create))
        .route("/feedback/{id}/status", post(feedback::set_status))
        .route("/feedback/{id}/comments", post(feedback::comment))
        .route("/weekly", get(weekly::page))
        .route("/weekly/report", get(weekly::report_html))
        .route("/weekly/agenda", get(weekly::agenda_html))
        .route("/weekly/decisions", post(decisions::record))
        .route("/weekly/decisions/{id}/done", post(decisions::done))
        .route("/targets", get(targets::page).post(targets::put))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(Extension(Sessions::default()))
}

static CSS: &str = include_str!("../../web/assets/app.css");
static JS: &str = include_str!("../../web/assets/app.js");

/// Every template, parsed once.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    let templates: &[(&str, &str)] = &[
        ("base.html", include_str!("../../web/templates/base.html")),
        (
            "macros.html",
            include_str!("../../web/templates/macros.html"),
        ),
        ("login.html", include_str!("../../web/templates/login.html")),
        ("error.html", include_str!("../../web/templates/error.html")),
        (
            "overview.html",
            include_str!("../../web/templates/overview.html"),
        ),
        ("sla.html", include_str!("../../web/templates/sla.html")),
        (
            "sla_row.html",
            include_str!("../../web/templates/sla_row.html"),
        ),
        (
            "sections.html",
            include_str!("../../web/templates/sections.html"),
        ),
        (
            "feedback.html",
            include_str!("../../web/templates/feedback.html"),
        ),
        (
            "weekly.html",
            include_str!("../../web/templates/weekly.html"),
        ),
        (
            "targets.html",
            include_str!("../../web/templates/targets.html"),
        ),
    ];
    for (name, src) in templates {
        // The templates are part of the binary; a broken one fails the
        // `templates_parse` test, so it never ships.
        if let Err(e) = env.add_template(name, src) {
            tracing::error!(template = name, error = %e, "template does not parse");
        }
    }
    env
});

/// An error page: status and a message for people.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub message: String,
}

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError {
            status,
            message: message.into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 429 with `Retry-After`: too many failed sign-ins from this client.
    pub fn too_many(retry_after: u64) -> Response {
        let mut r = WebError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins from your address; try again in {retry_after} s."),
        )
        .into_response();
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        r
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        let message = e.to_string();
        let status = e.into_response().status();
        WebError { status, message }
    }
}

impl From<tandem_store::StoreError> for WebError {
    fn from(e: tandem_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not for your role",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Check the request",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot show this page",
        };
        let ctx = json!({"title": title, "message": self.message, "status": self.status.as_u16()});
        let body = ENV
            .get_template("error.html")
            .and_then(|t| t.render(ctx))
            .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><p>{title}"));
        (self.status, Html(body)).into_response()
    }
}

/// Renders a template with a JSON context.
pub fn render(name: &str, ctx: Value) -> Result<Response, WebError> {
    let t = ENV
        .get_template(name)
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let body = t.render(ctx).map_err(|e| {
        tracing::error!(template = name, error = %e, "template failed");
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be drawn",
        )
    })?;
    Ok(Html(body).into_response())
}

/// Fails with a 403 page unless the user's role allows `action`.
pub fn require(u: &WebUser, action: Action, what: &str) -> Result<(), WebError> {
    if allows(u.token.role, action) {
        Ok(())
    } else {
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            format!(
                "The {} role cannot {what}. Ask an admin if you need it.",
                u.token.role
            ),
        ))
    }
}

/// The context every page shares: who is signed in, what they may do, the
/// navigation, the CSRF token for forms.
pub fn base(u: &WebUser, pb: &Playbook, active: &str, title: &str) -> Value {
    let role = u.token.role;
    let mut nav = vec![
        ("/", "Overview"),
        ("/waterfall", "Waterfall"),
        ("/sla", "SLA inbox"),
        ("/stalled", "Stalled"),
        ("/attribution", "Attribution"),
        ("/plan", "Plan"),
        ("/gaps", "Gaps"),
        ("/targets", "Targets"),
        ("/feedback", "Feedback"),
        ("/weekly", "Weekly"),
    ];
    if allows(role, Action::Administer) {
        nav.push(("/playbook", "Playbook"));
    }
    json!({
        "title": title,
        "active": active,
        "company": pb.company.name,
        "user": {"name": u.token.name, "role": role.as_str()},
        "can_move": allows(role, Action::MoveLeads),
        "csrf": u.csrf,
        "nav": nav.iter().map(|(href, label)| json!({"href": href, "label": label})).collect::<Vec<_>>(),
    })
}

/// Adds `fields` to a page context.
pub fn with(mut ctx: Value, fields: Value) -> Value {
    if let (Some(m), Value::Object(f)) = (ctx.as_object_mut(), fields) {
        m.extend(f);
    }
    ctx
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An instant in the company timezone, to the minute.
pub fn local(pb: &Playbook, t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(pb.company.timezone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Content security policy of every response (pages, API, errors): only
/// this origin, no inline script or style, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// Middleware on the whole app ([`crate::app`]): CSP with
/// `frame-ancestors 'none'`, `X-Content-Type-Options: nosniff`,
/// `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` on every
/// response, and `Cache-Control: no-store` unless the handler chose one.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // A handler may set a stricter-or-different policy of its own (the
    // framed weekly report: inline style, no script, same-origin frames).
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(X_FRAME_OPTIONS) {
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Where to go after sign-in: a local path only (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let Some(nonce) = session::random_id() else {
        return WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    let page = render(
        "login.html",
        json!({"title": "Sign in", "csrf": nonce, "next": next, "error": error}),
    );
    match page {
        Ok(mut r) => {
            *r.status_mut() = status;
            if let Ok(v) =
                HeaderValue::from_str(&set_cookie(headers, LOGIN_COOKIE, &nonce, Some(600)))
            {
                r.headers_mut().append(SET_COOKIE, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn login_form(
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    login_page(
        &headers,
        &safe_next(q.next.as_deref()),
        None,
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(s): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let nonce = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !session::same(&nonce, &f.csrf) {
        return login_page(
            &headers,
            &next,
            Some("The form expired; please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let token = f.token.trim();
    let found = match s.store.conn().await {
        Ok(mut c) => tokens::find(&mut c, token).await,
        Err(e) => Err(e),
    };
    let t = match found {
        Ok(Some(t)) => t,
        Ok(None) => {
            return login_page(
                &headers,
                &next,
                Some("That token is unknown or revoked."),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => return WebError::from(e).into_response(),
    };
    let Some(id) = sessions.start(tokens::hash(token)) else {
        return WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot start a session")
            .into_response();
    };
    tracing::info!(auth.token = %t.name, "signed in to the dashboard");
    let mut r = (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response();
    let max_age = session::TTL.as_secs();
    for c in [
        set_cookie(&headers, COOKIE_NAME, &id, Some(max_age)),
        set_cookie(&headers, LOGIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(SET_COOKIE, v);
        }
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn logout(
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    u: WebUser,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !u.csrf_ok(&f.csrf) {
        return WebError::new(StatusCode::FORBIDDEN, "The form expired; reload the page.")
            .into_response();
    }
    sessions.end(&u.session);
    let mut r = (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&headers, COOKIE_NAME, "", Some(0))) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for name in [
            "base.html",
            "macros.html",
            "login.html",
            "error.html",
            "overview.html",
            "sla.html",
            "sla_row.html",
            "sections.html",
            "feedback.html",
            "weekly.html",
            "targets.html",
        ] {
            assert!(ENV.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/waterfall?x=1")), "/waterfall?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn urlencode_keeps_paths_and_escapes_the_rest() {
        assert_eq!(urlencode("/sla?owner=a b&x"), "/sla%3Fowner%3Da%20b%26x");
    }
}
