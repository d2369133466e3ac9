//! The target accounts page (`/targets`): the ABM target list with each
//! account's tier, owners, lifecycle stage, engagement and buying-committee
//! coverage as of a date, and per tier how many accounts are fully
//! covered (chart and table). Marketing and admin, who keep the list, get
//! a form to put an account on it or change its tier; the others see the
//! list only. Numbers come from the functions `tandem accounts list`
//! calls (`tandem_core::accounts::{coverage_with, engagement}`), on the
//! dashboard's kept snapshot; the list from `tandem_store::accounts`, as
//! `/api/v1/targets` serves it.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;
use tandem_core::accounts::tiers::check_tier;
use tandem_core::accounts::{coverage_with, engagement_of, Committee};
use tandem_core::domain::{Person, Subject};
use tandem_core::fxhash::{FxHashMap, FxHashSet};
use tandem_core::scoring::EngagementIndex;
use tandem_core::transitions::TransitionRef;
use tandem_core::Timestamp;
use tandem_store::accounts::{self, NewTarget};

use super::cache::SnapshotCache;
use super::pages::{as_of, filter, grouped, nonempty, option, pct, section, table};
use super::session::WebUser;
use super::svg::{self, Series};
use super::{base, render, require, with, WebError};
use crate::auth::{allows, Action};
use crate::{now, AppState};

#[derive(Debug, Default, Deserialize)]
pub struct TargetsQuery {
    tier: Option<String>,
    as_of: Option<String>,
}

/// The account's stage at `as_of`: its latest transition not after it.
fn stage_at<'a>(ts: &[TransitionRef<'a>], as_of: Timestamp) -> Option<TransitionRef<'a>> {
    ts.iter()
        .copied()
        .filter(|t| t.at <= as_of)
        .max_by_key(|t| (t.at, t.seq))
}

/// `GET /targets`.
#[tracing::instrument(skip_all)]
pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    Query(q): Query<TargetsQuery>,
) -> Result<Response, WebError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let at = as_of(pb, q.as_of.as_deref())?;
    let tier_filter = match nonempty(&q.tier) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .ok()
                .and_then(|t| check_tier(t).ok())
                .ok_or_else(|| WebError::bad(format!("tier: `{t}` is not 1, 2 or 3")))?,
        ),
    };
    let list = {
        let mut c = s.store.conn().await?;
        accounts::targets(&mut c).await?
    };
    let snap = cache.get(&s.store).await?;
    let by_id: BTreeMap<i64, &tandem_core::domain::Account> =
        snap.accounts.iter().map(|a| (a.id, a)).collect();
    // Only the target accounts' people are grouped: the list is a few
    // hundred accounts, the history a hundred thousand people.
    let listed: FxHashSet<i64> = list.iter().map(|t| t.account_id).collect();
    let mut people: FxHashMap<i64, Vec<&Person>> = FxHashMap::default();
    for p in &snap.people {
        if let Some(a) = p.account_id.filter(|a| listed.contains(a)) {
            people.entry(a).or_default().push(p);
        }
    }
    // Only the listed accounts' people are scored: their touches alone
    // are indexed (an index of every person's was kept at 150 MB).
    let scored: Vec<i64> = people.values().flatten().map(|p| p.id).collect();
    let scores = EngagementIndex::build_for(pb, &snap.touches, &scored);
    let mut moves: BTreeMap<i64, Vec<TransitionRef>> = BTreeMap::new();
    for t in &snap.account_transitions {
        if let Subject::Account(a) = t.subject {
            if listed.contains(&a) {
                moves.entry(a).or_default().push(t);
            }
        }
    }
    let roles = pb.buying_committee.len();
    let committee = Committee::new(pb);
    // Per tier: accounts, fully covered, mean coverage share.
    let mut tiers: BTreeMap<i64, (u64, u64, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for t in list
        .iter()
        .filter(|t| tier_filter.is_none_or(|f| f == t.tier))
    {
        let Some(acc) = by_id.get(&t.account_id) else {
            continue;
        };
        let ppl: &[&Person] = people.get(&acc.id).map(Vec::as_slice).unwrap_or(&[]);
        let cov = coverage_with(&committee, acc, ppl);
        let eng = engagement_of(ppl.iter().map(|p| scores.score(p.id, at)));
        let stage = stage_at(moves.get(&acc.id).map(Vec::as_slice).unwrap_or(&[]), at);
        let e = tiers.entry(t.tier).or_default();
        e.0 += 1;
        if cov.missing.is_empty() && roles > 0 {
            e.1 += 1;
        }
        e.2 += cov.share.unwrap_or(0.0);
        rows.push(vec![
            t.external_id.clone(),
            acc.name.clone().unwrap_or_default(),
            t.tier.to_string(),
            stage
                .map(|s| s.to)
                .unwrap_or_else(|| "–".into())
                .to_string(),
            t.marketer.clone().unwrap_or_default(),
            t.seller.clone().unwrap_or_default(),
            grouped(ppl.len() as i64),
            format!("{eng:.1}"),
            pct(cov.share),
            if roles == 0 {
                "–".into()
            } else if cov.missing.is_empty() {
                "none".into()
            } else {
                cov.missing.join(", ")
            },
        ]);
    }
    let labels: Vec<String> = tiers.keys().map(|t| format!("tier {t}")).collect();
    let chart = svg::bars(
        "Target accounts per tier and how many have the whole buying committee",
        &labels,
        &[
            Series {
                name: "accounts".into(),
                values: tiers.values().map(|v| v.0 as f64).collect(),
            },
            Series {
                name: "fully covered".into(),
                values: tiers.values().map(|v| v.1 as f64).collect(),
            },
        ],
    );
    let tier_rows = tiers
        .iter()
        .map(|(t, (n, full, share))| {
            vec![
                t.to_string(),
                grouped(*n as i64),
                grouped(*full as i64),
                pct((*n > 0).then(|| share / *n as f64)),
            ]
        })
        .collect();
    let note = format!(
        "{} accounts on the list; the buying committee has {} roles in the playbook. Stage, engagement and coverage as of {}.",
        rows.len(),
        roles,
        super::local(pb, at)
    );
    render(
        "targets.html",
        with(
            base(&u, pb, "/targets", "Target accounts"),
            json!({
                "intro": "The accounts marketing and sales pursue together, by tier, with where each stands and which buying-committee roles are still missing.",
                "filters": [
                    filter("tier", "Tier", nonempty(&q.tier).unwrap_or(""), vec![
                        option("", "all tiers"), option("1", "tier 1"), option("2", "tier 2"), option("3", "tier 3"),
                    ]),
                ],
                "can_edit": allows(u.token.role, Action::EditTargets),
                "sections": [
                    section("tiers", "Coverage by tier", Some(note), Some(chart),
                        table("targets-tiers", &["tier", "accounts", "fully covered", "mean coverage"], &[false, true, true, true], tier_rows)),
                    section("targets", "Target accounts", None, None,
                        table("targets-table", &["account", "name", "tier", "stage", "marketer", "seller", "contacts", "engagement", "coverage", "missing roles"],
                            &[false, false, true, false, false, false, true, true, true, false], rows)),
                ],
            }),
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct TargetForm {
    csrf: String,
    account: String,
    tier: String,
    #[serde(default)]
    marketer: String,
    #[serde(default)]
    seller: String,
}

fn opt(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// `POST /targets`: puts an account on the list or changes its entry
/// (marketing and admin), as `PUT /api/v1/accounts/{id}/target` does.
#[tracing::instrument(skip_all)]
pub async fn put(
    State(s): State<AppState>,
    u: WebUser,
    Form(f): Form<TargetForm>,
) -> Result<Response, WebError> {
    if !u.csrf_ok(&f.csrf) {
        return Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The form expired; reload the page.",
        ));
    }
    require(&u, Action::EditTargets, "edit the target-account list")?;
    let tier = f
        .tier
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|t| check_tier(t).ok())
        .ok_or_else(|| WebError::bad(format!("tier: `{}` is not 1, 2 or 3", f.tier.trim())))?;
    let ext = f.account.trim();
    let mut tx = s.store.begin().await?;
    let account = accounts::find_account(tx.conn(), ext).await?;
    accounts::set_target(
        tx.conn(),
        account.id,
        &NewTarget {
            tier,
            marketer: opt(&f.marketer),
            seller: opt(&f.seller),
            at: now(),
            actor: &u.token.name,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/targets")]).into_response())
}
