//! Chat alerts: a background evaluator that finds SLA breaches, goals hit
//! and stalled leads, records each once in the alert table, and posts it to
//! a Slack-compatible webhook (`{"text", "blocks"}`) with retries.
//!
//! Every alert has a delivery key naming the event (`sla_breach:response:
//! <person>:<entered ms>`, `stalled:<person>:<stage>:<entered ms>`,
//! `goal_hit:<goal>:<period start ms>`). Recording it is an insert that does
//! nothing when the key exists, and each delivery attempt is claimed by a
//! conditional update, so any number of instances on one database post each
//! alert once ([`tandem_store::alerts`]). A failed post is retried after
//! `backoff × 2^(attempt−1)` (capped at an hour) up to `max_attempts`.
//!
//! Webhooks are plain `http://` (no TLS in this build): point them at the
//! chat tool's relay or a local forwarder for `https://` endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_core::domain::Person;
use tandem_core::metrics::scorecard::scorecard;
use tandem_core::metrics::Grouping;
use tandem_core::playbook::{Playbook, Team};

use crate::SharedPlaybook;
use tandem_core::sla::{sales_sla, stalled, ClockStatus};
use tandem_core::Timestamp;
use tandem_store::alerts::{self as log, Alert, NewAlert};
use tandem_store::repo::Snapshot;
use tandem_store::{query, Store, StoreError};

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::telemetry::{registry, Registry};
use crate::warm::{Warm, WarmError};
use crate::AppState;

/// Longest wait between two attempts of one alert.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Webhook URLs per team. `Debug` hides them: a webhook URL is a credential.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    pub marketing: Option<String>,
    pub sales: Option<String>,
    /// Account managers (the playbook's third team, when it defines one).
    pub account_management: Option<String>,
    /// Shared alerts (goals owned by both teams), and any team without its own URL.
    pub all: Option<String>,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |u: &Option<String>| if u.is_some() { "set" } else { "unset" };
        f.debug_struct("Webhooks")
            .field("marketing", &set(&self.marketing))
            .field("sales", &set(&self.sales))
            .field("account_management", &set(&self.account_management))
            .field("all", &set(&self.all))
            .finish()
    }
}

impl Webhooks {
    /// Where an alert for `team` goes: its own URL, else `all`.
    pub fn url_for(&self, team: Team) -> Option<&str> {
        let own = match team {
            Team::Marketing => self.marketing.as_deref(),
            Team::Sales => self.sales.as_deref(),
            Team::AccountManagement => self.account_management.as_deref(),
            Team::Shared => None,
        };
        own.or(self.all.as_deref())
    }

    /// True when no URL is set (the evaluator then does not run).
    pub fn is_empty(&self) -> bool {
        self.marketing.is_none()
            && self.sales.is_none()
            && self.account_management.is_none()
            && self.all.is_none()
    }
}

/// How alerts are found and delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    /// Time between two evaluator runs.
    pub interval: Duration,
    /// Breaches and stalls that happened longer ago than this when first
    /// seen are not alerted (so a new install does not post its history).
    pub lookback: Duration,
    /// Attempts before an alert is given up (status `failed`).
    pub max_attempts: i64,
    /// Wait before the first retry; doubles with every failed attempt.
    pub backoff: Duration,
    /// Longest a webhook may take to answer.
    pub timeout: Duration,
    pub webhooks: Webhooks,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            interval: Duration::from_secs(60),
            lookback: Duration::from_secs(7 * 24 * 3600),
            max_attempts: 8,
            backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            webhooks: Webhooks::default(),
        }
    }
}

/// One alert event found in the stored history.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub key: String,
    /// `sla_breach`, `goal_hit` or `stalled`.
    pub kind: &'static str,
    pub team: Team,
    pub subject: String,
    pub text: String,
}

fn who(p: Option<&Person>, person_id: i64) -> String {
    let Some(p) = p else {
        return format!("person #{person_id}");
    };
    let name = [p.first_name(), p.last_name()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() {
        p.external_id().to_string()
    } else {
        name
    };
    match &p.email() {
        Some(e) => format!("{name} <{e}>"),
        None => name,
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every alert event as of `as_of`: SLA breaches and stalls that happened at
/// or after `since`, and goals hit in their current period. Pure: the same
/// history gives the same events, which is what makes the keys stable.
pub fn events(pb: &Playbook, snap: &Snapshot, as_of: Timestamp, since: Timestamp) -> Vec<Event> {
    let people: BTreeMap<i64, &Person> = snap.people.iter().map(|p| (p.id, p)).collect();
    let local = |t: Timestamp| {
        t.to_jiff()
            .to_zoned_datetime(pb.company.timezone.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let mut out = Vec::new();
    if let Ok(report) = sales_sla(pb, &snap.people, &snap.transitions, &snap.activities, as_of) {
        for h in &report.handoffs {
            let name = who(people.get(&h.person_id).copied(), h.person_id);
            let owner = h.owner.as_deref().unwrap_or("unassigned");
            let subject = h
                .external_id
                .clone()
                .unwrap_or_else(|| format!("#{}", h.person_id));
            if h.response == ClockStatus::Breached && h.deadline >= since {
                out.push(Event {
                    key: format!("sla_breach:response:{}:{}", h.person_id, h.entered_at.millis()),
                    kind: "sla_breach",
                    team: Team::Sales,
                    subject: subject.clone(),
                    text: format!(
                        ":rotating_light: SLA breach: {name} entered {} at {} and had no first response by {} ({} business hours; owner: {owner}).",
                        report.stage,
                        local(h.entered_at),
                        local(h.deadline),
                        report.first_response_hours
                    ),
                });
            }
            if h.attempts_status == ClockStatus::Breached && h.attempts_deadline >= since {
                out.push(Event {
                    key: format!("sla_breach:attempts:{}:{}", h.person_id, h.entered_at.millis()),
                    kind: "sla_breach",
                    team: Team::Sales,
                    subject,
                    text: format!(
                        ":rotating_light: SLA breach: {name} got {} of {} attempts by {} (owner: {owner}).",
                        h.attempts,
                        h.attempts_required,
                        local(h.attempts_deadline)
                    ),
                });
            }
        }
    }
    for s in stalled(pb, &snap.people, &snap.transitions, as_of) {
        let stalled_at = Timestamp::from_millis(
            s.entered_at.millis() + (s.max_days * 86_400_000.0).round() as i64,
        );
        if stalled_at < since {
            continue;
        }
        let team = pb
            .stage(&s.stage)
            .and_then(|st| st.owner)
            .unwrap_or(Team::Shared);
        let name = who(people.get(&s.person_id).copied(), s.person_id);
        out.push(Event {
            key: format!("stalled:{}:{}:{}", s.person_id, s.stage, s.entered_at.millis()),
            kind: "stalled",
            team,
            subject: s.external_id.clone().unwrap_or_else(|| format!("#{}", s.person_id)),
            text: format!(
                ":hourglass: Stalled lead: {name} has been in {} since {} ({:.1} days; the limit is {}).",
                s.stage,
                local(s.entered_at),
                s.days_in_stage,
                s.max_days
            ),
        });
    }
    let history = query::history(snap);
    let (segments, personas) = query::goal_groups(pb, snap).unwrap_or_default();
    if let Ok(lines) = scorecard(
        pb,
        &history,
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    ) {
        for (goal, p) in pb.goals.iter().zip(lines) {
            if !p.celebrate {
                continue;
            }
            out.push(Event {
                key: format!("goal_hit:{}:{}", goal.id, p.window.from.millis()),
                kind: "goal_hit",
                team: goal.owner.unwrap_or(Team::Shared),
                subject: goal.id.clone(),
                text: format!(
                    ":tada: Goal hit: {} reached {} of {} this {} (from {}). Celebrate together!",
                    goal.id,
                    p.actual.map(|a| format!("{a}")).unwrap_or_default(),
                    p.target,
                    goal.period.as_str(),
                    local(p.window.from)
                ),
            });
        }
    }
    out
}

/// The webhook body: Slack's `text` (fallback and notifications) and one
/// markdown section block.
pub fn payload(text: &str) -> String {
    json!({
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    })
    .to_string()
}

/// What one evaluator run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Alerts recorded for the first time (by this instance).
    pub recorded: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
}

/// The evaluator of one instance.
#[derive(Clone)]
pub struct Alerter {
    store: Store,
    /// Read at every run, so a playbook replaced over the API takes effect.
    playbook: SharedPlaybook,
    config: AlertConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The history, brought up to date by delta at each run rather than
    /// read whole every minute (minutes of reading on a large history).
    warm: Warm,
}

impl fmt::Debug for Alerter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerter")
            .field("config", &self.config)
            .finish()
    }
}

impl Alerter {
    pub fn new(store: Store, playbook: impl Into<SharedPlaybook>, config: AlertConfig) -> Alerter {
        let playbook = playbook.into();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Alerter {
            store,
            playbook,
            config,
            client,
            warm: Warm::default(),
        }
    }

    /// Reads the history `warm` keeps (the server's) instead of keeping a
    /// second copy.
    pub fn sharing(mut self, warm: Warm) -> Alerter {
        self.warm = warm;
        self
    }

    /// Records the alerts of every event not recorded yet (by any instance).
    pub async fn evaluate(&self, now: Timestamp) -> Result<u64, WarmError> {
        let since = Timestamp::from_millis(now.millis() - ms(self.config.lookback));
        let found = {
            let snap = self.warm.get(&self.store).await?;
            events(&self.playbook.get(), &snap, now, since)
        };
        let mut recorded = 0;
        let mut c = self.store.conn().await?;
        for e in found {
            let Some(url) = self.config.webhooks.url_for(e.team) else {
                continue;
            };
            let team = match e.team {
                Team::Shared => "all",
                t => t.as_str(),
            };
            let a = NewAlert {
                delivery_key: e.key,
                kind: e.kind.to_string(),
                team: team.to_string(),
                subject: e.subject,
                url: url.to_string(),
                payload: payload(&e.text),
            };
            if log::insert(&mut c, &a, now).await? {
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    async fn post(&self, a: &Alert) -> Result<(), String> {
        let req = hyper::Request::post(a.url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", "tandem-alerts")
            .body(Full::new(Bytes::from(a.payload.clone())))
            .map_err(|e| format!("bad webhook URL: {e}"))?;
        if !a.url.starts_with("http://") {
            return Err("only http:// webhooks are supported (no TLS in this build)".into());
        }
        let res = tokio::time::timeout(self.config.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {:?}", self.config.timeout))?
            .map_err(|e| format!("cannot reach the webhook: {e}"))?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }

    /// When the attempt after `attempts` failed ones is due.
    pub fn retry_at(&self, now: Timestamp, attempts: i64) -> Timestamp {
        let factor = 1u32 << attempts.clamp(1, 20).saturating_sub(1);
        let wait = self.config.backoff.saturating_mul(factor).min(MAX_BACKOFF);
        Timestamp::from_millis(now.millis() + ms(wait))
    }

    /// Posts every alert due at `now` that this instance manages to claim.
    pub async fn deliver(&self, now: Timestamp) -> Result<(u64, u64), StoreError> {
        let due = {
            let mut c = self.store.conn().await?;
            log::due(&mut c, now, 100).await?
        };
        let lease = Timestamp::from_millis(now.millis() + ms(self.config.timeout) * 2);
        let (mut delivered, mut failed) = (0, 0);
        for a in due {
            {
                let mut c = self.store.conn().await?;
                if !log::claim(&mut c, a.id, now, lease).await? {
                    continue;
                }
            }
            let attempts = a.attempts + 1;
            let result = self.post(&a).await;
            let mut c = self.store.conn().await?;
            match result {
                Ok(()) => {
                    log::delivered(&mut c, a.id, now).await?;
                    Registry::add(&registry().alerts_sent, 1);
                    tracing::info!(alert.key = %a.delivery_key, alert.attempts = attempts, "alert delivered");
                    delivered += 1;
                }
                Err(e) => {
                    let retry =
                        (attempts < self.config.max_attempts).then(|| self.retry_at(now, attempts));
                    log::attempt_failed(&mut c, a.id, &e, retry).await?;
                    Registry::add(&registry().alerts_failed, 1);
                    tracing::warn!(alert.key = %a.delivery_key, alert.attempts = attempts, error = %e, "alert not delivered");
                    failed += 1;
                }
            }
        }
        Ok((delivered, failed))
    }

    /// One evaluator run: record new alerts, then post what is due.
    pub async fn tick(&self, now: Timestamp) -> Result<Tick, WarmError> {
        let recorded = self.evaluate(now).await?;
        let (delivered, failed_attempts) = self.deliver(now).await?;
        Ok(Tick {
            recorded,
            delivered,
            failed_attempts,
        })
    }

    /// Runs [`Alerter::tick`] every `interval` until `shutdown` resolves. A
    /// failing run is logged and the next one tries again.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut every = tokio::time::interval(self.config.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = every.tick() => {
                    if let Err(e) = self.tick(crate::now()).await {
                        tracing::error!(error.cause = %e, "alert evaluation failed");
                    }
                }
            }
        }
    }
}

/// `before` (a cursor: the last id of the previous page) and `limit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Return alerts with an id below this one (the previous page's `next`).
    before: Option<i64>,
    /// Page size, 1..=500 (default 100).
    limit: Option<i64>,
}

/// One page of the delivery log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<Alert>,
    /// Pass as `before` for the next page; absent on the last one.
    pub next: Option<i64>,
}

/// `GET /api/v1/alerts`: the alert delivery log (any role that can read).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses(
        (status = 200, description = "Alerts with status, attempts, last error and next attempt", body = AlertPage),
        (status = 400, description = "Bad `limit`"),
        (status = 401, description = "No or unknown token"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<AlertPage>, ApiError> {
    caller.require(Action::Read)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be 1..=500, not {limit}"),
            Some("limit"),
        ));
    }
    let mut c = s.store.conn().await?;
    let alerts = log::list(&mut c, q.before, limit).await?;
    let next = (alerts.len() as i64 == limit)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    Ok(Json(AlertPage { alerts, next }))
}

/// The alert endpoints for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), components(schemas(AlertPage)))]
pub struct AlertsApi;
