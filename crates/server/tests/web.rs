//! The dashboard from the outside, in-process: sign-in and sessions, CSRF,
//! role rules, security headers, every page rendering, and lead moves from
//! the SLA inbox landing in the lead's history. SQLite always, PostgreSQL
//! when `TANDEM_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use tandem_core::domain::PersonTexts;
use tandem_core::domain::{Person, Subject};
use tandem_core::lifecycle::ManualMove;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::{app, AppState};
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tandem_store::{lifecycle, repo};
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z plus `h` hours.
fn t(h: i64) -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000 + h * 3_600_000)
}

struct Web {
    db: TestDb,
    router: Router,
    tokens: HashMap<Role, String>,
}

struct Res {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

/// Six people, all MQLs owned by `ann` (lead-0..lead-5).
async fn setup(db: TestDb) -> Web {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    let mut tok = HashMap::new();
    for role in Role::ALL {
        let (_, s) = tokens::create(tx.conn(), role.as_str(), role, t(0))
            .await
            .unwrap();
        tok.insert(role, s.expose().to_string());
    }
    for i in 0..6 {
        let p = Person {
            texts: PersonTexts::new(
                &format!("lead-{i}"),
                Some(&*format!("lead{i}@example.com")),
                None,
                None,
            ),
            owner: Some("ann".into()),
            source: Some(if i % 2 == 0 { "paid_search" } else { "events" }.into()),
            created_at: t(i),
            ..Person::default()
        };
        let (id, _) = repo::upsert_person(tx.conn(), &p).await.unwrap();
        let mv = ManualMove {
            to: "mql",
            at: t(10 + i),
            actor: "seed",
            reason: None,
            note: None,
        };
        lifecycle::move_person(tx.conn(), &pb, id, &mv)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let state = AppState {
        store: db.store.clone(),
        playbook: Arc::new(pb).into(),
    };
    Web {
        router: app(state),
        db,
        tokens: tok,
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[at..at + 64].to_string()
}

fn cookie_of(res: &Res, name: &str) -> Option<String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

impl Web {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        cookie: &str,
        form: Option<&str>,
        fetch: bool,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(uri);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        if fetch {
            req = req.header("x-requested-with", "fetch");
        }
        let body = match form {
            Some(f) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Body::from(f.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Res {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, cookie: &str) -> Res {
        self.send(Method::GET, uri, cookie, None, false).await
    }

    /// Signs in with a role's token; returns the session cookie pair.
    async fn sign_in(&self, role: Role) -> String {
        let form = self.get("/login", "").await;
        let nonce = cookie_of(&form, "tandem_login").unwrap();
        let pair = nonce.split(';').next().unwrap().to_string();
        let body = format!(
            "token={}&csrf={}&next=%2F",
            self.tokens[&role],
            csrf_of(&form.body)
        );
        let res = self
            .send(Method::POST, "/login", &pair, Some(&body), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let c = cookie_of(&res, "tandem_session").unwrap();
        c.split(';').next().unwrap().to_string()
    }

    async fn history(&self, ext: &str) -> Vec<tandem_core::domain::Transition> {
        let mut c = self.db.store.conn().await.unwrap();
        let p = repo::person_by_external(&mut c, ext)
            .await
            .unwrap()
            .unwrap();
        repo::transitions_of(&mut c, Subject::Person(p.id))
            .await
            .unwrap()
    }

    /// The body rows of table `id` on the page at `uri` (which must render).
    async fn table_rows(&self, uri: &str, cookie: &str, id: &str) -> Vec<Vec<String>> {
        let page = self.get(uri, cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        rows_of(table_html(&page.body, id))
    }

    /// Stores (or updates, by external id) a touch of `lead` on `channel`
    /// at hour `h`.
    async fn store_touch(&self, ext: &str, lead: &str, h: i64, channel: &str) {
        let mut c = self.db.store.conn().await.unwrap();
        let p = repo::person_by_external(&mut c, lead)
            .await
            .unwrap()
            .unwrap();
        let touch = tandem_core::domain::Touch {
            external_id: Some(ext.into()),
            person_id: p.id,
            at: t(h),
            kind: "web_visit".into(),
            channel: Some(channel.into()),
            ..Default::default()
        };
        repo::upsert_touch(&mut c, &touch).await.unwrap();
    }

    async fn cleanup(self) {
        drop(self.router);
        self.db.cleanup().await.unwrap();
    }
}

async fn each(f: impl AsyncFn(&Web)) {
    for db in TestDb::all().await.unwrap() {
        let w = setup(db).await;
        f(&w).await;
        w.cleanup().await;
    }
}

#[tokio::test]
async fn sign_in_sets_a_strict_httponly_session_and_pages_need_it() {
    each(async |w: &Web| {
        let res = w.get("/", "").await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.headers["location"], "/login?next=/");

        let form = w.get("/login", "").await;
        assert_eq!(form.status, StatusCode::OK);
        let csp = form.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(form.headers["x-content-type-options"], "nosniff");

        // Wrong CSRF nonce: refused before the token is even looked at.
        let nonce = cookie_of(&form, "tandem_login").unwrap();
        let pair = nonce.split(';').next().unwrap();
        let token = &w.tokens[&Role::Viewer];
        let bad = w
            .send(
                Method::POST,
                "/login",
                pair,
                Some(&format!("token={token}&csrf=nope")),
                false,
            )
            .await;
        assert_eq!(bad.status, StatusCode::FORBIDDEN);
        // Unknown token.
        let body = format!("token=tdm_wrong&csrf={}", csrf_of(&form.body));
        let unknown = w
            .send(Method::POST, "/login", pair, Some(&body), false)
            .await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert!(unknown.body.contains("unknown or revoked"));
        // The right one.
        let body = format!(
            "token={token}&csrf={}&next=%2Fwaterfall",
            csrf_of(&form.body)
        );
        let ok = w
            .send(Method::POST, "/login", pair, Some(&body), false)
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        assert_eq!(ok.headers["location"], "/waterfall");
        let c = cookie_of(&ok, "tandem_session").unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        let session = c.split(';').next().unwrap();
        let page = w.get("/", session).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("viewer"));

        // Logging out needs the CSRF token and ends the session.
        let out = w
            .send(Method::POST, "/logout", session, Some("csrf=wrong"), false)
            .await;
        assert_eq!(out.status, StatusCode::FORBIDDEN);
        let body = format!("csrf={}", csrf_of(&page.body));
        let out = w
            .send(Method::POST, "/logout", session, Some(&body), false)
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert_eq!(w.get("/", session).await.status, StatusCode::SEE_OTHER);
    })
    .await;
}

#[tokio::test]
async fn every_page_renders_and_roles_see_only_what_they_may_do() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        let sales = w.sign_in(Role::Sales).await;
        let admin = w.sign_in(Role::Admin).await;
        for (path, expect) in [
            ("/", "Overview"),
            ("/waterfall", "Funnel"),
            ("/waterfall?source=events&period=all", "source events"),
            ("/sla", "lead-0"),
            ("/stalled", "Stalled by stage"),
            ("/attribution", "Conversions by model"),
            ("/plan?revenue=100000", "Plan"),
            ("/gaps?by=source", "MQL mix vs won mix"),
            ("/targets", "Coverage by tier"),
            ("/feedback", "Feedback board"),
            ("/weekly", "at a glance"),
        ] {
            let res = w.get(path, &viewer).await;
            assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
            assert!(res.body.contains(expect), "{path} lacks {expect}");
            assert!(res.headers.contains_key("content-security-policy"));
            assert!(!res.body.contains("style="), "{path} has inline style");
        }
        // Six MQLs waiting; the viewer is offered no moves, sales is.
        let inbox = w.get("/sla", &viewer).await;
        assert!(inbox.body.contains("6 waiting"), "{}", inbox.body);
        assert!(!inbox.body.contains(r#"value="accept""#));
        assert!(!inbox.body.contains(">Playbook</a>"));
        let inbox = w.get("/sla", &sales).await;
        assert_eq!(inbox.body.matches(r#"value="accept""#).count(), 6);
        // Only admin has a playbook page; others get a friendly 403.
        let res = w.get("/playbook", &sales).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert!(res.body.contains("The sales role cannot see the playbook"));
        let res = w.get("/playbook", &admin).await;
        assert_eq!(res.status, StatusCode::OK);
        assert!(
            res.body.contains("not_icp") && res.body.contains(">Playbook</a>"),
            "{}",
            res.body
        );
        // Bad filters are a 400 page naming the parameter.
        let res = w.get("/waterfall?from=yesterday", &viewer).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("from:"), "{}", res.body);
    })
    .await;
}

#[tokio::test]
async fn inbox_moves_check_csrf_and_role_and_land_in_history() {
    each(async |w: &Web| {
        let sales = w.sign_in(Role::Sales).await;
        let viewer = w.sign_in(Role::Viewer).await;
        let csrf = csrf_of(&w.get("/sla", &sales).await.body);
        let before = w.history("lead-1").await.len();

        // Wrong CSRF token or a role that cannot move: nothing is appended.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-1",
                &sales,
                Some("csrf=x&action=accept"),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        let vcsrf = csrf_of(&w.get("/sla", &viewer).await.body);
        let res = w
            .send(
                Method::POST,
                "/sla/lead-1",
                &viewer,
                Some(&format!("csrf={vcsrf}&action=accept")),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(w.history("lead-1").await.len(), before);

        // Accept in place: the answer is the lead's new card.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-1",
                &sales,
                Some(&format!("csrf={csrf}&action=accept")),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert!(
            res.body.starts_with("<article") && res.body.contains("now in sal"),
            "{}",
            res.body
        );
        let h = w.history("lead-1").await;
        let last = h.last().unwrap();
        assert_eq!((last.to.as_str(), last.actor.as_str()), ("sal", "sales"));

        // Reject needs a reason; with one (and a note) it disqualifies.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-2",
                &sales,
                Some(&format!("csrf={csrf}&action=reject&reason=")),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("Choose a reason"));
        // A reason that does not apply to disqualifying is refused by the rules.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-2",
                &sales,
                Some(&format!("csrf={csrf}&action=reject&reason=no_response")),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.body.contains("does not apply"), "{}", res.body);
        // Without script: a full-page post and a redirect back.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-2",
                &sales,
                Some(&format!(
                    "csrf={csrf}&action=reject&reason=not_icp&note=student+project&owner=ann"
                )),
                false,
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers["location"],
            "/sla?moved=lead-2&to=disqualified&owner=ann"
        );
        let last = w.history("lead-2").await.pop().unwrap();
        assert_eq!(last.to, "disqualified");
        assert_eq!(last.reason.as_deref(), Some("not_icp"));
        assert_eq!(last.note.as_deref(), Some("student project"));

        // Recycle goes to the recycle off-ramp; the inbox now has 3 waiting.
        let res = w
            .send(
                Method::POST,
                "/sla/lead-3",
                &sales,
                Some(&format!("csrf={csrf}&action=recycle&reason=no_response")),
                true,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(w.history("lead-3").await.pop().unwrap().to, "recycled");
        let inbox = w.get("/sla", &sales).await;
        assert!(inbox.body.contains("3 waiting"), "{}", inbox.body);
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions() {
    each(async |w: &Web| {
        let session = w.sign_in(Role::Marketing).await;
        assert_eq!(w.get("/", &session).await.status, StatusCode::OK);
        let mut c = w.db.store.conn().await.unwrap();
        tokens::revoke(&mut c, "marketing", t(100)).await.unwrap();
        drop(c);
        let res = w.get("/", &session).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
    })
    .await;
}

#[tokio::test]
async fn assets_are_embedded() {
    each(async |w: &Web| {
        let css = w.get("/assets/app.css", "").await;
        assert_eq!(css.status, StatusCode::OK);
        assert!(css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css"));
        assert!(css.body.contains("prefers-color-scheme: dark"));
        let js = w.get("/assets/app.js", "").await;
        assert!(js.body.contains("X-Requested-With"));
    })
    .await;
}

#[tokio::test]
async fn the_store_stamp_changes_on_every_insert_and_move() {
    each(async |w: &Web| {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let mut c = w.db.store.conn().await.unwrap();
        let s0 = tandem_store::stamp::stamp(&mut c).await.unwrap();
        // Six people and six transitions from the setup.
        assert_eq!(s0.0[1], 6);
        assert!(s0.0[6] >= 6);
        assert_eq!(tandem_store::stamp::stamp(&mut c).await.unwrap(), s0);
        let p = repo::person_by_external(&mut c, "lead-4")
            .await
            .unwrap()
            .unwrap();
        let mv = ManualMove {
            to: "sal",
            at: t(50),
            actor: "test",
            reason: None,
            note: None,
        };
        lifecycle::move_person(&mut c, &pb, p.id, &mv)
            .await
            .unwrap();
        let s1 = tandem_store::stamp::stamp(&mut c).await.unwrap();
        assert_eq!(s1.0[6], s0.0[6] + 1);
        let (_, _) = repo::upsert_person(
            &mut c,
            &Person {
                texts: PersonTexts::new("lead-new", None, None, None),
                created_at: t(60),
                ..Person::default()
            },
        )
        .await
        .unwrap();
        let s2 = tandem_store::stamp::stamp(&mut c).await.unwrap();
        assert_eq!(s2.0[1], 7);
        drop(c);
    })
    .await;
}

/// A GET of the API with a role's bearer token, as JSON.
async fn api_get(w: &Web, uri: &str, role: Role) -> serde_json::Value {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {}", w.tokens[&role]))
        .body(Body::empty())
        .unwrap();
    let res = w.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The HTML of the board column with this status.
fn column<'a>(html: &'a str, status: &str) -> &'a str {
    let start = html
        .find(&format!(r#"id="col-{status}""#))
        .unwrap_or_else(|| panic!("no column {status}"));
    let rest = &html[start..];
    let end = rest[1..]
        .find("<section class=\"column\"")
        .map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[tokio::test]
async fn feedback_board_adds_comments_and_moves_items_for_the_roles_that_may() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        let sales = w.sign_in(Role::Sales).await;
        // The viewer sees the board but is offered no form.
        let board = w.get("/feedback", &viewer).await;
        assert_eq!(board.status, StatusCode::OK, "{}", board.body);
        for col in ["open", "in_progress", "done", "declined"] {
            assert!(board.body.contains(&format!(r#"id="col-{col}""#)));
        }
        assert!(!board.body.contains(r#"action="/feedback""#));
        let csrf_viewer = csrf_of(&board.body);
        let add = "kind=obstacle&team=sales&title=Leads+from+the+webinar+have+no+phone&body=Half+of+them&back=%2Ffeedback";
        let res = w
            .send(
                Method::POST,
                "/feedback",
                &viewer,
                Some(&format!("csrf={csrf_viewer}&{add}")),
                false,
            )
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);

        // Sales adds one: a wrong CSRF token is refused, the right one lands it.
        let board = w.get("/feedback", &sales).await;
        assert!(board.body.contains(r#"action="/feedback""#));
        let csrf = csrf_of(&board.body);
        let res = w
            .send(Method::POST, "/feedback", &sales, Some(&format!("csrf=nope&{add}")), false)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        let res = w
            .send(Method::POST, "/feedback", &sales, Some(&format!("csrf={csrf}&{add}")), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let to = res.headers["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/feedback#fb-"), "{to}");
        let id: i64 = to["/feedback#fb-".len()..].parse().unwrap();
        let board = w.get("/feedback", &viewer).await;
        assert!(column(&board.body, "open").contains("Leads from the webinar have no phone"));
        // The API sees the same item, authored by the signed-in token.
        let api = api_get(w, &format!("/api/v1/feedback/{id}"), Role::Viewer).await;
        assert_eq!(api["title"], "Leads from the webinar have no phone", "{api}");
        assert_eq!(api["kind"], "obstacle");
        assert_eq!(api["author"], "sales");
        assert_eq!(api["status"], "open");

        // Comment and move to in progress.
        let res = w
            .send(
                Method::POST,
                &format!("/feedback/{id}/comments"),
                &sales,
                Some(&format!("csrf={csrf}&body=Marketing+is+adding+a+phone+field")),
                false,
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let res = w
            .send(
                Method::POST,
                &format!("/feedback/{id}/status"),
                &sales,
                Some(&format!("csrf={csrf}&status=in_progress&back=%2Ffeedback%3Fteam%3Dsales")),
                false,
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(res.headers["location"], format!("/feedback?team=sales#fb-{id}"));
        let board = w.get("/feedback?team=sales", &viewer).await;
        let col = column(&board.body, "in_progress");
        assert!(col.contains("Leads from the webinar") && col.contains("Marketing is adding a phone field"));
        assert!(!column(&board.body, "open").contains("Leads from the webinar"));
        let api = api_get(w, &format!("/api/v1/feedback/{id}"), Role::Viewer).await;
        assert_eq!(api["status"], "in_progress", "{api}");
        // Filters: the item is a sales obstacle, not a marketing idea.
        let board = w.get("/feedback?team=marketing", &viewer).await;
        assert!(!board.body.contains("Leads from the webinar"));
        let board = w.get("/feedback?kind=idea", &viewer).await;
        assert!(!board.body.contains("Leads from the webinar"));
        let res = w.get("/feedback?kind=rumour", &viewer).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("type: unknown"), "{}", res.body);
        // Unknown item: 404 page.
        let res = w
            .send(Method::POST, "/feedback/999999/status", &sales, Some(&format!("csrf={csrf}&status=done")), false)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn weekly_page_shows_the_week_and_frames_the_e_mail_report() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        // The six MQLs entered on 2026-01-01 (Thursday of ISO week 2026-W01).
        let page = w
            .get("/weekly?week=2026-W01&as_of=2026-01-10", &viewer)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!page.body.contains("style="));
        let flow = &page.body[page.body.find(r#"id="weekly-flow""#).unwrap()..];
        let row = &flow[flow.find("Marketing qualified lead").unwrap()..];
        let cells: Vec<&str> = row
            .split("<td class=\"num\">")
            .skip(1)
            .take(2)
            .map(|c| &c[..c.find('<').unwrap()])
            .collect();
        assert_eq!(cells, ["6", "0"], "this week, last week");
        // The frames ask for the instant the page used (2026-01-10 00:00
        // in the company's timezone, as UTC), so they show the report it
        // built.
        let src = r#"report?week=2026-W01&amp;meeting=weekly&amp;as_of="#;
        let at = &page.body[page.body.find(src).expect("the report frame") + src.len()..];
        let at = &at[..at.find('"').unwrap()];
        assert!(at.starts_with("2026-01-") && at.ends_with('Z'), "{at}");
        // The framed report: the e-mail's HTML with its own narrow CSP.
        let rep = w
            .get(&format!("/weekly/report?week=2026-W01&as_of={at}"), &viewer)
            .await;
        assert_eq!(rep.status, StatusCode::OK);
        let csp = rep.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("style-src 'unsafe-inline'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'self'"));
        assert_eq!(rep.headers["x-frame-options"], "SAMEORIGIN");
        assert!(!rep.body.contains("<script"));
        assert!(rep.body.contains("2026-W01"));
        let ag = w
            .get("/weekly/agenda?week=2026-W01&as_of=2026-01-10", &viewer)
            .await;
        assert_eq!(ag.status, StatusCode::OK);
        // A week that is not one: 400 naming it.
        let res = w.get("/weekly?week=2026-W99", &viewer).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("week"), "{}", res.body);
        // Signed out: no report.
        assert_eq!(
            w.get("/weekly/report", "").await.status,
            StatusCode::SEE_OTHER
        );
    })
    .await;
}

#[tokio::test]
async fn target_accounts_page_lists_tiers_and_only_marketing_edits() {
    each(async |w: &Web| {
        {
            let mut c = w.db.store.conn().await.unwrap();
            let acme = tandem_core::domain::Account {
                external_id: "acme".into(),
                name: Some("Acme Corp".into()),
                ..tandem_core::domain::Account::default()
            };
            repo::upsert_account(&mut c, &acme).await.unwrap();
        }
        let sales = w.sign_in(Role::Sales).await;
        let marketing = w.sign_in(Role::Marketing).await;
        let page = w.get("/targets", &sales).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!page.body.contains(r#"action="/targets""#));
        let csrf = csrf_of(&page.body);
        let form = format!("csrf={csrf}&account=acme&tier=1&marketer=maya&seller=ann");
        let res = w
            .send(Method::POST, "/targets", &sales, Some(&form), false)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);

        let page = w.get("/targets", &marketing).await;
        assert!(page.body.contains(r#"action="/targets""#));
        let csrf = csrf_of(&page.body);
        let bad = format!("csrf={csrf}&account=acme&tier=7");
        let res = w
            .send(Method::POST, "/targets", &marketing, Some(&bad), false)
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("tier"));
        let form = format!("csrf={csrf}&account=acme&tier=1&marketer=maya&seller=ann");
        let res = w
            .send(Method::POST, "/targets", &marketing, Some(&form), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let page = w.get("/targets", &sales).await;
        let table = &page.body[page.body.find(r#"id="targets-table""#).unwrap()..];
        for cell in ["acme", "Acme Corp", "maya", "ann"] {
            assert!(table.contains(&format!(">{cell}<")), "{cell}: {table}");
        }
        let tiers = &page.body[page.body.find(r#"id="targets-tiers""#).unwrap()..];
        assert!(
            tiers.contains("<td>1</td><td class=\"num\">1</td>"),
            "{tiers}"
        );
        // The API agrees.
        let api = api_get(w, "/api/v1/targets", Role::Viewer).await;
        assert_eq!(api["targets"][0]["external_id"], "acme");
        assert_eq!(api["targets"][0]["tier"], 1);
        // Filtered to tier 2: nobody.
        let page = w.get("/targets?tier=2", &sales).await;
        assert!(!page.body.contains(">Acme Corp<"));
        assert_eq!(
            w.get("/targets?tier=9", &sales).await.status,
            StatusCode::BAD_REQUEST
        );
    })
    .await;
}

/// The Plan page runs the plan of `tandem plan` and the API
/// (`tandem_store::numbers::plan`): with no won deal yet both say why.
#[tokio::test]
async fn plan_page_says_what_the_api_says() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        let page = w.get("/plan?revenue=100000", &viewer).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let req = Request::builder()
            .uri("/api/v1/metrics/plan?revenue=100000")
            .header(
                "authorization",
                format!("Bearer {}", w.tokens[&Role::Viewer]),
            )
            .body(Body::empty())
            .unwrap();
        let res = w.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let why = v["error"]["message"].as_str().unwrap();
        assert!(why.contains("pass --"), "{why}");
        let html_why = why.replace('`', "&#96;").replace('\'', "&#x27;");
        assert!(
            page.body.contains(&format!("No plan: {why}"))
                || page.body.contains(&format!("No plan: {html_why}")),
            "{why}: {}",
            page.body
        );
    })
    .await;
}

/// The HTML of the table with this id (to its `</table>`).
fn table_html<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!(r#"<table id="{id}""#))
        .unwrap_or_else(|| panic!("no table {id}: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</table>").unwrap()]
}

async fn decisions_of(w: &Web) -> Vec<tandem_store::weekly::Decision> {
    let mut c = w.db.store.conn().await.unwrap();
    tandem_store::weekly::decisions(&mut c).await.unwrap()
}

/// The weekly page records decisions and action items with the store's
/// `add_decision` and marks them done with `complete_decision`, for the
/// roles that may decide (admin, marketing, sales) and behind the CSRF
/// token; a viewer is offered neither and refused both.
#[tokio::test]
async fn weekly_page_records_decisions_and_marks_them_done_for_the_roles_that_may() {
    each(async |w: &Web| {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let tz = &pb.company.timezone;
        let viewer = w.sign_in(Role::Viewer).await;
        let sales = w.sign_in(Role::Sales).await;
        let marketing = w.sign_in(Role::Marketing).await;
        let add = "kind=action&text=Call+every+webinar+lead+within+a+day&owner=sam&due=2026-12-04&meeting=weekly&back=%2Fweekly";

        // A viewer reads the page but is offered no form, and a POST is refused.
        let page = w.get("/weekly", &viewer).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Open decisions and action items"));
        assert!(!page.body.contains(r#"action="/weekly/decisions""#));
        assert!(!page.body.contains("Record a decision"));
        let vcsrf = csrf_of(&page.body);
        let res = w
            .send(Method::POST, "/weekly/decisions", &viewer, Some(&format!("csrf={vcsrf}&{add}")), false)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert!(
            res.body.contains("The viewer role cannot record decisions or action items"),
            "{}",
            res.body
        );
        assert_eq!(decisions_of(w).await, []);

        // Sales gets the form; a wrong or missing CSRF token is refused.
        let page = w.get("/weekly", &sales).await;
        assert!(page.body.contains(r#"<form method="post" action="/weekly/decisions" class="stack" id="decision-new">"#));
        assert!(page.body.contains("Record a decision / action item"));
        let csrf = csrf_of(&page.body);
        for body in [format!("csrf=nope&{add}"), add.to_string()] {
            let res = w
                .send(Method::POST, "/weekly/decisions", &sales, Some(&body), false)
                .await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{body}");
            assert!(res.body.contains("The form expired"), "{}", res.body);
        }
        // Empty text and a bad due date are 400 pages naming the field.
        let res = w
            .send(Method::POST, "/weekly/decisions", &sales, Some(&format!("csrf={csrf}&kind=decision&text=++&owner=&due=")), false)
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(
            res.body.contains("text: write what was decided or what is to be done"),
            "{}",
            res.body
        );
        let res = w
            .send(Method::POST, "/weekly/decisions", &sales, Some(&format!("csrf={csrf}&kind=action&text=Call&due=31.12.2026")), false)
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.body.contains("due: `31.12.2026` is not a date such as 2026-12-04"), "{}", res.body);
        assert_eq!(decisions_of(w).await, [], "nothing half-written");

        // Recorded: one row in the store, back to the page at its row.
        let res = w
            .send(Method::POST, "/weekly/decisions", &sales, Some(&format!("csrf={csrf}&{add}")), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let all = decisions_of(w).await;
        assert_eq!(all.len(), 1);
        let d = &all[0];
        assert_eq!(d.text, "Call every webinar lead within a day");
        assert_eq!(d.owner.as_deref(), Some("sam"));
        assert!(d.action);
        assert_eq!(d.meeting, "weekly");
        assert_eq!(d.due_at, Some(Timestamp::parse_in("2026-12-04", tz).unwrap()));
        assert_eq!(d.done_at, None);
        let id = d.id;
        assert_eq!(
            res.headers["location"],
            format!("/weekly?recorded={id}#decision-{id}").as_str()
        );
        let page = w.get(&format!("/weekly?recorded={id}"), &sales).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains(&format!("Recorded action item #{id}: Call every webinar lead within a day.")),
            "{}",
            page.body
        );
        let open = table_html(&page.body, "weekly-decisions");
        let row = &open[open.find(&format!(r#"<tr id="decision-{id}""#)).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        for cell in ["action", "Call every webinar lead within a day", "sam", "2026-12-04"] {
            assert!(row.contains(&format!("<td>{cell}")), "{cell}: {row}");
        }
        assert!(row.contains(&format!(r#"action="/weekly/decisions/{id}/done""#)), "{row}");
        assert!(row.contains("Mark done"));
        // The viewer sees the row, without the button.
        let page = w.get("/weekly", &viewer).await;
        let open = table_html(&page.body, "weekly-decisions");
        assert!(open.contains("Call every webinar lead within a day"));
        assert!(!open.contains("Mark done"));

        // Marking done: refused for the viewer and without the token.
        let done = format!("/weekly/decisions/{id}/done");
        let back = "back=%2Fweekly%3Fmeeting%3Dweekly";
        let res = w
            .send(Method::POST, &done, &viewer, Some(&format!("csrf={vcsrf}&{back}")), false)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        let res = w
            .send(Method::POST, &done, &sales, Some(&format!("csrf=nope&{back}")), false)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN);
        assert_eq!(decisions_of(w).await[0].done_at, None);
        // Sales marks it done; back to the page it came from.
        let res = w
            .send(Method::POST, &done, &sales, Some(&format!("csrf={csrf}&{back}")), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        assert_eq!(
            res.headers["location"],
            format!("/weekly?meeting=weekly&done={id}#decisions-section").as_str()
        );
        let done_at = decisions_of(w).await[0].done_at.expect("done");
        // It left the open list; the agenda covering the week it was done
        // in lists it as done, and the page says so with a link there.
        let week = tandem_report::Week::containing(done_at, tz).unwrap().label();
        let page = w.get(&format!("/weekly?meeting=weekly&done={id}"), &sales).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!table_html(&page.body, "weekly-decisions").contains("Call every webinar lead"));
        assert!(
            page.body.contains(&format!("Marked action item #{id} done: Call every webinar lead within a day.")),
            "{}",
            page.body
        );
        // (minijinja escapes `/` in attributes as `&#x2f;`)
        assert!(
            page.body.contains(&format!(
                r#"href="&#x2f;weekly?week={week}&amp;meeting=weekly">See {week}</a>"#
            )),
            "{}",
            page.body
        );
        let page = w.get(&format!("/weekly?week={week}"), &viewer).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!table_html(&page.body, "weekly-decisions").contains("Call every webinar lead"));
        let done_rows = table_html(&page.body, "weekly-done");
        for cell in ["action", "Call every webinar lead within a day", "sam"] {
            assert!(done_rows.contains(&format!("<td>{cell}</td>")), "{cell}: {done_rows}");
        }
        // Marking it done again keeps the first time; an unknown one is a 404.
        let res = w
            .send(Method::POST, &done, &sales, Some(&format!("csrf={csrf}")), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        assert_eq!(decisions_of(w).await[0].done_at, Some(done_at));
        let res = w
            .send(Method::POST, "/weekly/decisions/999999/done", &sales, Some(&format!("csrf={csrf}")), false)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);

        // Marketing records a decision too (no owner, no due date).
        let mcsrf = csrf_of(&w.get("/weekly", &marketing).await.body);
        let res = w
            .send(Method::POST, "/weekly/decisions", &marketing, Some(&format!("csrf={mcsrf}&kind=decision&text=MQL+needs+a+business+e-mail&meeting=marsale")), false)
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
        let all = decisions_of(w).await;
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[1].text.as_str(), all[1].action, all[1].owner.as_deref(), all[1].due_at, all[1].meeting.as_str()),
            ("MQL needs a business e-mail", false, None, None, "marsale")
        );
        let page = w.get("/weekly?meeting=marsale", &viewer).await;
        assert!(table_html(&page.body, "weekly-decisions").contains("<td>MQL needs a business e-mail</td>"));
    })
    .await;
}

/// The cells of each body row of a table ([`table_html`]), tags stripped.
fn rows_of(table: &str) -> Vec<Vec<String>> {
    table
        .split("<tr>")
        .skip(1)
        .filter(|r| r.contains("<td") && !r.contains("class=\"empty\""))
        .map(|r| {
            r.split("<td")
                .skip(1)
                .map(|c| {
                    let c = &c[c.find('>').unwrap() + 1..];
                    c[..c.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .collect()
}

/// The attribution page keeps the touches as journey steps between
/// requests: it extends them when touches are appended and builds them
/// again when one is updated in place, and after each change credits what
/// the history says. Conversion is the MQL entry (lead-i at hour 10 + i):
/// lead-0 touched by search (h1) then email (h5) gives search and email
/// half a conversion each by the linear model, search all of it by first
/// touch; lead-1's events touch (h2) gives events one conversion.
#[tokio::test]
async fn attribution_page_follows_appended_and_updated_touches() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        // Columns: channel, first_touch, last_touch, linear, ...
        let credits = async || {
            w.table_rows(
                "/attribution?conversion=mql",
                &viewer,
                "attribution-conversions",
            )
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[3].clone()))
            .collect::<Vec<_>>()
        };
        let row = |ch: &str, first: &str, linear: &str| {
            (ch.to_string(), first.to_string(), linear.to_string())
        };
        assert!(credits().await.is_empty());

        w.store_touch("t1", "lead-0", 1, "search").await;
        w.store_touch("t2", "lead-0", 5, "email").await;
        assert_eq!(
            credits().await,
            [row("email", "0.00", "0.50"), row("search", "1.00", "0.50")]
        );
        w.store_touch("t3", "lead-1", 2, "events").await;
        assert_eq!(
            credits().await,
            [
                row("email", "0.00", "0.50"),
                row("events", "1.00", "1.00"),
                row("search", "1.00", "0.50")
            ]
        );
        // An update in place (recorded in row_changes): built again.
        w.store_touch("t2", "lead-0", 5, "social").await;
        assert_eq!(
            credits().await,
            [
                row("events", "1.00", "1.00"),
                row("search", "1.00", "0.50"),
                row("social", "0.00", "0.50")
            ]
        );
    })
    .await;
}

/// The gaps page groups by the people's first-touch channel from keys kept
/// between requests: a touch stored after a request regroups its person
/// (the kept keys grow with the history), and an update in place of that
/// touch regroups it again. Six MQLs in the quarter: lead-0 moves from the
/// (none) group to its touch's channel.
#[tokio::test]
async fn gaps_page_follows_new_and_updated_touches() {
    each(async |w: &Web| {
        let viewer = w.sign_in(Role::Viewer).await;
        let mqls = async || {
            w.table_rows("/gaps?by=channel&period=all", &viewer, "gaps-table")
                .await
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect::<Vec<_>>()
        };
        let row = |g: &str, n: &str| (g.to_string(), n.to_string());
        assert_eq!(mqls().await, [row("(none)", "6")]);
        w.store_touch("t1", "lead-0", 1, "search").await;
        assert_eq!(mqls().await, [row("(none)", "5"), row("search", "1")]);
        w.store_touch("t1", "lead-0", 1, "events").await;
        assert_eq!(mqls().await, [row("(none)", "5"), row("events", "1")]);
    })
    .await;
}
