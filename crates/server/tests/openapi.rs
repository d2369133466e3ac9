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

/// Found by schemathesis (`.ci/schemathesis`): an upsert of an existing
/// external id answers 200, which the document did not list. Every status
/// the POST of each upsert resource really returns, first insert (201) then
/// the same body again (200, unchanged), must be documented for it.
#[tokio::test]
async fn every_upsert_status_is_documented() {
    use tandem_store::tokens::{self, Role};
    let db = TestDb::sqlite().await.unwrap();
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let mut c = db.store.conn().await.unwrap();
    let (_, secret) = tokens::create(
        &mut c,
        "admin",
        Role::Admin,
        tandem_core::Timestamp::from_millis(0),
    )
    .await
    .unwrap();
    drop(c);
    let router = app(AppState {
        store: db.store.clone(),
        playbook: Arc::new(pb).into(),
    });
    let doc = serde_json::to_value(tandem_server::openapi::openapi()).unwrap();
    let bodies = [
        (
            "accounts",
            serde_json::json!({"external_id": "a-1", "name": "Acme"}),
        ),
        (
            "campaigns",
            serde_json::json!({"external_id": "c-1", "name": "Spring"}),
        ),
    ];
    for (resource, body) in bodies {
        let path = format!("/api/v1/{resource}");
        let documented = doc["paths"][&path]["post"]["responses"]
            .as_object()
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let res = router
                .clone()
                .oneshot(
                    Request::post(&path)
                        .header("authorization", format!("Bearer {}", secret.expose()))
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap(),
                )
                .await
                .unwrap();
            seen.push(res.status());
        }
        assert_eq!(seen, [StatusCode::CREATED, StatusCode::OK], "{path}");
        for s in seen {
            assert!(
                documented.contains_key(s.as_str()),
                "{path} answers {s} but documents only {:?}",
                documented.keys().collect::<Vec<_>>()
            );
        }
    }
    for resource in ["activities", "deals", "touches"] {
        let path = format!("/api/v1/{resource}");
        let documented = doc["paths"][&path]["post"]["responses"]
            .as_object()
            .unwrap();
        assert!(
            documented.contains_key("200") && documented.contains_key("201"),
            "{path}"
        );
    }
    drop(router);
    db.cleanup().await.unwrap();
}
