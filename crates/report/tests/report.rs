//! The weekly report and agenda on the fixed demo company: snapshots, the
//! numbers equal what the CLI's core calls give, and the HTML carries the
//! same figures without external references.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tandem_core::metrics::scorecard::scorecard;
use tandem_core::metrics::waterfall::{waterfall, WaterfallOptions};
use tandem_core::metrics::Grouping;
use tandem_core::sla::{compliance, sales_sla};
use tandem_core::Sym;
use tandem_report::render::{self, money, Style};
use tandem_report::{Meeting, Week};
use tandem_store::query::{group_by, history};

#[tokio::test]
async fn report_and_agenda_on_the_demo() {
    let pb = common::playbook();
    let (db, inputs) = common::demo_db(&pb).await;
    let as_of = common::as_of(&pb);
    let tz = &pb.company.timezone;
    let r = tandem_report::build(&pb, &inputs, None, as_of).unwrap();
    assert_eq!(r.week, "2026-W47");
    // `gather` (store → report) gives the same as build on loaded inputs.
    let g = tandem_report::gather(
        &db.store,
        &pb,
        Some(Week::parse("2026-W47", tz).unwrap()),
        as_of,
    )
    .await
    .unwrap();
    assert_eq!(g, r);

    let md = render::report(&r, Style::Markdown).unwrap();
    insta::assert_snapshot!("report_md", md);
    let ag = tandem_report::agenda(&pb, &inputs, Meeting::Weekly, None, as_of).unwrap();
    let agenda_md = render::agenda(&ag, Style::Markdown).unwrap();
    insta::assert_snapshot!("agenda_md", agenda_md);
    // The two-week meeting covers W46 and W47.
    let two = tandem_report::agenda(&pb, &inputs, Meeting::Marsale, None, as_of).unwrap();
    assert_eq!(
        (two.period_from.as_str(), two.period_to.as_str()),
        ("2026-11-09", "2026-11-23")
    );
    assert!(two.rejected_total >= ag.rejected_total);
    // Beside the report (what the dashboard builds), the agenda is the same:
    // the weekly meeting takes the report's SLA section and goals, the
    // two-week one its goals only.
    let w47 = Week::parse("2026-W47", tz).unwrap();
    assert_eq!(
        tandem_report::agenda_beside(&pb, &inputs, Meeting::Weekly, w47, &r).unwrap(),
        ag
    );
    assert!(ag.handoffs.as_ref().is_some_and(|h| h.handoffs > 0));
    assert_eq!(
        tandem_report::agenda_beside(&pb, &inputs, Meeting::Marsale, w47, &r).unwrap(),
        two
    );
    // Decisions: one done in W47 (#2), #1 and #3 open, #4 not yet taken.
    let open: Vec<i64> = ag.open_decisions.iter().map(|d| d.id).collect();
    assert_eq!(open, [1, 3]);
    assert_eq!(
        ag.done_decisions.iter().map(|d| d.id).collect::<Vec<_>>(),
        [2]
    );
    // Feedback: the W47 success, the open obstacle (not the done one), the
    // open content request; the agenda lists open items oldest first.
    let titles = |v: &[tandem_report::FeedbackNote]| v.iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(titles(&r.successes), [1]);
    assert_eq!(titles(&r.obstacles), [2]);
    assert_eq!(r.obstacles[0].comments, 1);
    assert_eq!(titles(&r.content_requests), [3]);
    assert_eq!(titles(&ag.obstacles), [2]);
    assert_eq!(titles(&ag.requests), [3]);
    assert_eq!(titles(&ag.lead_quality_notes), [4]);
    // Content: the case study was sent twice in W47, three times in all.
    assert_eq!(r.top_assets[0].asset, "cs-fintech");
    assert_eq!(
        (r.top_assets[0].uses_week, r.top_assets[0].uses_total),
        (2, 3)
    );
    assert_eq!(
        (r.top_assets[1].uses_week, r.top_assets[1].uses_total),
        (1, 1)
    );
    db.cleanup().await.unwrap();
}

/// The report's waterfall, scorecard and SLA are exactly what the CLI's
/// commands compute (`tandem waterfall --from 2026-11-16 --to 2026-11-23`,
/// `tandem scorecard`, `tandem sla --week 2026-W47`, all `--as-of 2026-11-23`).
#[tokio::test]
async fn numbers_equal_the_cli_metrics() {
    let pb = common::playbook();
    let (db, inputs) = common::demo_db(&pb).await;
    let as_of = common::as_of(&pb);
    let tz = &pb.company.timezone;
    let r = tandem_report::build(&pb, &inputs, None, as_of).unwrap();
    let snap = &inputs.snap;
    let week = Week::parse("2026-W47", tz).unwrap();
    let last = Week::parse("2026-W46", tz).unwrap();
    // As `tandem waterfall` builds its options (funnel.rs `compute`).
    let flow = |w: tandem_core::metrics::Window| {
        let opts = WaterfallOptions::new(w, as_of);
        waterfall(&pb, &snap.transitions, &snap.deals, &opts)
            .unwrap()
            .groups[0]
            .stages
            .iter()
            .map(|s| (s.stage.clone(), s.flow))
            .collect::<Vec<_>>()
    };
    let this: Vec<(String, u64)> = r
        .waterfall
        .iter()
        .map(|s| (s.stage.clone(), s.this_week))
        .collect();
    let prev: Vec<(String, u64)> = r
        .waterfall
        .iter()
        .map(|s| (s.stage.clone(), s.last_week))
        .collect();
    assert_eq!(this, flow(week.window));
    assert_eq!(prev, flow(last.window));
    let mql = r.waterfall.iter().find(|s| s.stage == "mql").unwrap();
    assert!(mql.this_week > 0, "the demo has MQLs in W47");
    // The 4-week average is the mean of the four weeks' flows.
    let mut w = week;
    let mut sum = 0;
    for _ in 0..4 {
        w = w.previous(tz).unwrap();
        sum += flow(w.window).iter().find(|(s, _)| s == "mql").unwrap().1;
    }
    assert!((mql.avg4 - sum as f64 / 4.0).abs() < 1e-9);

    // As `tandem scorecard` (scorecard.rs).
    let segments = group_by(&pb, snap, "segment").unwrap();
    let personas = group_by(&pb, snap, "persona").unwrap();
    let goals = scorecard(
        &pb,
        &history(snap),
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )
    .unwrap();
    assert_eq!(r.goals.len(), goals.len());
    for (row, p) in r.goals.iter().zip(&goals) {
        assert_eq!(
            (row.actual, row.target, row.pace, row.celebrate),
            (p.actual, p.target, p.pace, p.celebrate)
        );
    }

    // As `tandem sla --week 2026-W47` (sla.rs).
    let sales = sales_sla(
        &pb,
        &snap.people,
        &snap.transitions,
        &snap.activities,
        as_of,
    )
    .unwrap();
    let c = compliance(
        sales
            .handoffs
            .iter()
            .filter(|h| week.window.contains(h.entered_at)),
    );
    let s = r.sla.as_ref().unwrap();
    assert_eq!(
        (s.handoffs, s.met, s.breached, s.open, s.stopped),
        (c.handoffs, c.met, c.breached, c.open, c.stopped)
    );
    assert_eq!(s.compliance_pct, c.compliance_pct);
    let breaches: i64 = s.by_owner.iter().map(|o| o.breaches.len() as i64).sum();
    assert_eq!(breaches, c.breached);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn html_is_self_contained_and_carries_the_same_numbers() {
    let pb = common::playbook();
    let (db, inputs) = common::demo_db(&pb).await;
    let r = tandem_report::build(&pb, &inputs, None, common::as_of(&pb)).unwrap();
    let md = render::report(&r, Style::Markdown).unwrap();
    let html = render::report(&r, Style::Html).unwrap();
    let lower = html.to_lowercase();
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "@import",
        "<script",
        "<link",
    ] {
        assert!(!lower.contains(bad), "HTML must not reference `{bad}`");
    }
    assert!(html.contains("<svg") && html.contains("<style>"));
    let mut key: Vec<String> = Vec::new();
    for s in &r.waterfall {
        key.push(format!("<td class=\"n\">{}</td>", s.this_week));
    }
    for x in r.top_sources.iter().chain(&r.top_campaigns) {
        key.push(money(x.revenue_won));
    }
    let s = r.sla.as_ref().unwrap();
    key.push(format!(
        "Handoffs this week: {} (met {}, breached {}",
        s.handoffs, s.met, s.breached
    ));
    key.push(format!("{} leads are past", r.stalled_total));
    for k in &key {
        assert!(html.contains(k.as_str()), "HTML lacks {k}");
        let in_md = k.replace("<td class=\"n\">", "| ").replace("</td>", " |");
        assert!(md.contains(&in_md), "Markdown lacks {in_md}");
    }
    // Every goal's actual, target and pace as Markdown shows them are in
    // the HTML's cells too.
    for g in &r.goals {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {} | {} |", g.goal, g.period)))
            .unwrap_or_else(|| panic!("no scorecard line for {}", g.goal));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for cell in &cells[3..6] {
            assert!(
                html.contains(&format!("<td class=\"n\">{cell}</td>")),
                "HTML lacks {cell} of {}",
                g.goal
            );
        }
    }
    db.cleanup().await.unwrap();
}

/// `PeopleGroups` (shared first touches, borrowed and interned keys) gives
/// every person the key a plain reading of their row gives: the stored value,
/// else the rules; the channel and campaign of their first touch by (at, id).
#[tokio::test]
async fn group_keys_equal_a_row_by_row_reading() {
    use std::collections::BTreeMap;
    use tandem_core::facts::{channel_of, classify};
    use tandem_store::query::PeopleGroups;

    let pb = common::playbook();
    let (_db, inputs) = common::demo_db(&pb).await;
    let snap = &*inputs.snap;
    let account = |p: &tandem_core::domain::Person| {
        p.account_id
            .and_then(|id| snap.accounts.iter().find(|a| a.id == id))
    };
    let mut first: BTreeMap<i64, &tandem_core::domain::Touch> = BTreeMap::new();
    let touches = snap.touches.to_vec();
    for t in &touches {
        let e = first.entry(t.person_id).or_insert(t);
        if (t.at, t.id) < (e.at, e.id) {
            *e = t;
        }
    }
    let first_touch = |id: i64| first.get(&id).copied();
    let classes: Vec<_> = snap
        .people
        .iter()
        .map(|p| classify(&pb, p, account(p)))
        .collect();
    let groups = PeopleGroups::new(&pb, snap);
    for dim in [
        "source", "segment", "persona", "channel", "campaign", "tier", "industry", "owner",
    ] {
        let mut want: BTreeMap<i64, String> = BTreeMap::new();
        for (p, (persona, segment)) in snap.people.iter().zip(classes.iter().cloned()) {
            let key = match dim {
                "source" => p.source,
                "owner" => p.owner,
                "segment" => p.segment.or(segment.map(Sym::from)),
                "persona" => p.persona.or(persona.map(Sym::from)),
                "tier" => account(p)
                    .and_then(|a| a.tier)
                    .map(|t| format!("tier {t}"))
                    .map(Sym::from),
                "industry" => account(p).and_then(|a| a.industry),
                "channel" => first_touch(p.id)
                    .and_then(|t| channel_of(&pb, t, p))
                    .map(Sym::from),
                _ => first_touch(p.id).and_then(|t| t.campaign),
            };
            if let Some(k) = key.filter(|k| !k.is_empty()) {
                want.insert(p.id, k.to_string());
            }
        }
        let got = groups.by(dim).unwrap();
        assert!(!want.is_empty(), "{dim}: the demo has keys");
        assert_eq!(got.len(), want.len(), "{dim}");
        for p in &snap.people {
            assert_eq!(got.get(p.id), want.get(&p.id).map(String::as_str), "{dim}");
        }
        assert_eq!(*got, group_by(&pb, snap, dim).unwrap(), "{dim}");
    }
    assert!(group_by(&pb, snap, "nonsense").is_err());
}
