//! The target-account list over HTTP: everyone reads, marketing and admin
//! write, bad tiers are 422, unknown accounts 404; on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tandem_core::domain::Account;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::{app, AppState};
use tandem_store::repo;
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    token: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, v)
}

#[tokio::test]
async fn target_list_over_http_on_every_backend() {
    for db in TestDb::all().await.unwrap() {
        let mut tok: HashMap<Role, String> = HashMap::new();
        {
            let mut tx = db.store.begin().await.unwrap();
            for role in Role::ALL {
                let (_, s) =
                    tokens::create(tx.conn(), role.as_str(), role, Timestamp::from_millis(0))
                        .await
                        .unwrap();
                tok.insert(role, s.expose().to_string());
            }
            repo::upsert_account(
                tx.conn(),
                &Account {
                    external_id: "acme".into(),
                    ..Account::default()
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        let state = AppState {
            store: db.store.clone(),
            playbook: Arc::new(Playbook::load(STARTER).playbook.unwrap()).into(),
        };
        let router = app(state.clone());
        let uri = "/api/v1/accounts/acme/target";
        let body = r#"{"tier": 1, "marketer": "maya", "seller": "ben"}"#;

        // Sales and viewers may read but not write.
        for role in [Role::Sales, Role::Viewer] {
            let (s, v) = call(&router, Method::PUT, uri, &tok[&role], Some(body)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role:?}: {v}");
        }
        let (s, _) = call(&router, Method::GET, uri, &tok[&Role::Viewer], None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let (s, v) = call(
            &router,
            Method::PUT,
            uri,
            &tok[&Role::Marketing],
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(
            (v["tier"].as_i64(), v["added_by"].as_str()),
            (Some(1), Some("marketing"))
        );
        let (s, v) = call(
            &router,
            Method::PUT,
            uri,
            &tok[&Role::Admin],
            Some(r#"{"tier": 2, "seller": "carla"}"#),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (
                v["tier"].as_i64(),
                v["seller"].as_str(),
                v["marketer"].as_str()
            ),
            (Some(2), Some("carla"), None)
        );

        let (s, v) = call(
            &router,
            Method::GET,
            "/api/v1/targets",
            &tok[&Role::Sales],
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["targets"].as_array().unwrap().len(), 1);
        assert_eq!(v["targets"][0]["external_id"], "acme");

        let (s, v) = call(
            &router,
            Method::PUT,
            uri,
            &tok[&Role::Admin],
            Some(r#"{"tier": 4}"#),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["field"], "tier", "{v}");
        let (s, _) = call(
            &router,
            Method::PUT,
            "/api/v1/accounts/nope/target",
            &tok[&Role::Admin],
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let (s, _) = call(&router, Method::DELETE, uri, &tok[&Role::Marketing], None).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call(&router, Method::DELETE, uri, &tok[&Role::Marketing], None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        drop(router);
        drop(state);
        db.cleanup().await.unwrap();
    }
}
