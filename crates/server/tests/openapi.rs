//! The OpenAPI document is locked by a snapshot: an API change shows up as
//! a diff to review (`cargo insta review`), never by accident.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_server::{app, AppState};
use tandem_store::testing::TestDb;
use tower::ServiceExt;

#[test]
fn openapi_document_snapshot() {
    let doc = serde_json::to_value(tandem_server::openapi::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let router = app(AppState {
        store: db.store.clone(),
        playbook: Arc::new(pb).into(),
    });
    let res = router
        .clone()
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let built = serde_json::to_value(tandem_server::openapi::openapi()).unwrap();
    assert_eq!(served, built);
    // Every metric and resource is documented.
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/api/v1/accounts",
        "/api/v1/touches/{external_id}",
        "/api/v1/people/{external_id}/recycle",
        "/api/v1/feedback/{id}/comments",
        "/api/v1/metrics/attribution",
        "/api/v1/playbook",
        "/api/v1/targets",
        "/api/v1/accounts/{external_id}/target",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    let target = &paths["/api/v1/accounts/{external_id}/target"];
    for m in ["get", "put", "delete"] {
        assert!(target.get(m).is_some(), "{m} of the target route");
    }
    drop(router);
    db.cleanup().await.unwrap();
}
