//! Goals from the playbook with their actual to date and pacing (the
//! scorecard's goal lines).

use axum::extract::State;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::metrics::scorecard::{scorecard, Pacing};
use tandem_core::metrics::Grouping;
use tandem_core::playbook::Goal;
use tandem_core::Timestamp;
use tandem_store::query;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::openapi::ErrorEnvelope;
use crate::warm::Warm;
use crate::{now, AppState};

/// `as_of` (default now).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GoalsQuery {
    as_of: Option<String>,
}

/// One goal and how it paces.
#[derive(Debug, Serialize)]
pub struct GoalView {
    goal: Goal,
    pacing: Pacing,
}

/// Every goal, in playbook order.
#[derive(Debug, Serialize)]
pub struct Goals {
    as_of: Timestamp,
    goals: Vec<GoalView>,
}

/// `GET /api/v1/goals`.
#[utoipa::path(
    get,
    path = "/api/v1/goals",
    tag = "goals",
    security(("bearer" = [])),
    params(GoalsQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<GoalsQuery>,
) -> Result<Json<Goals>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now())
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some(e.field())))?;
    let snap = warm.get(&s.store).await?;
    let (segments, personas) =
        query::goal_groups(&pb, &snap).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let lines = scorecard(
        &pb,
        &query::history(&snap),
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )
    .map_err(|e| ApiError::unprocessable("metric_failed", e.to_string(), None))?;
    Ok(Json(Goals {
        as_of,
        goals: pb
            .goals
            .iter()
            .cloned()
            .zip(lines)
            .map(|(goal, pacing)| GoalView { goal, pacing })
            .collect(),
    }))
}
