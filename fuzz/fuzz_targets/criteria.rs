//! CEL criteria: compile an expression in every scope and, when it compiles,
//! evaluate it against a lead with every variable bound. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::playbook::{Criterion, Scope, Var, Vars};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let person = serde_json::json!({
        "id": "p-1", "email": "ana@example.com", "title": "VP Marketing",
        "persona": "economic_buyer", "segment": "mid_market", "source": "webinar",
        "created_at": 1_700_000_000_000i64,
        "custom": {"employees": 250, "score": 7.5, "trial": true, "plan": "pro"}
    });
    let account = serde_json::json!({
        "id": "a-1", "name": "Acme", "domain": "acme.example", "industry": "saas",
        "employees": 800, "country": "PT", "custom": {"arr": 120000}
    });
    let mut vars = Vars::new();
    vars.set(Var::Person, &person)
        .set(Var::Account, &account)
        .set(
            Var::Score,
            &serde_json::json!({"fit": 42, "engagement": 17, "total": 59}),
        )
        .set(
            Var::Touch,
            &serde_json::json!({"kind": "page_view", "source": "google", "medium": "cpc",
                                "campaign": "q3", "url": "https://acme.example/pricing"}),
        )
        .set(
            Var::Deal,
            &serde_json::json!({"count": 1, "open": 1, "amount": 5_000_00}),
        )
        .set(
            Var::Activity,
            &serde_json::json!({"count": 2, "meetings": 1}),
        );
    for scope in [
        Scope::StageEntry,
        Scope::Profile,
        Scope::Channel,
        Scope::Account,
    ] {
        let (criterion, problems) = Criterion::compile(source, scope);
        for p in &problems {
            let _ = p.offset.min(source.len());
        }
        if let Some(c) = criterion {
            let _ = c.matches(&vars);
        }
    }
});
