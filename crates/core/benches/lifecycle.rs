//! `cargo bench -p tandem-core --bench lifecycle`: re-evaluating one lead's
//! automatic stage entry (`lifecycle::advance`) as Segment ingest does after
//! every call, for a lead with n webinar touches that never qualifies
//! (fit 10 in the starter playbook), so every instant since it entered
//! inquiry is evaluated again; and `advance_after` as the ingest committer
//! runs it for a lead it holds, whose only new instant is the last touch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{black_box, Bencher};
use tandem_core::domain::{Person, PersonTexts, Touch};
use tandem_core::facts::Facts;
use tandem_core::lifecycle::{advance, advance_after, State};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;

fn main() {
    divan::main();
}

#[divan::bench(args = [30, 100, 200])]
fn advance_a_lead_that_stays(bencher: Bencher, n: usize) {
    bench_lead(bencher, n, false);
}

#[divan::bench(args = [30, 100, 200])]
fn advance_after_its_last_touch(bencher: Bencher, n: usize) {
    bench_lead(bencher, n, true);
}

/// A lead with `n` webinars a minute apart, advanced up to the last: all
/// its instants, or (`after`) only the last one's.
fn bench_lead(bencher: Bencher, n: usize, after: bool) {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let person = Person {
        id: 1,
        texts: PersonTexts::new("lead", None, None, None),
        created_at: Timestamp::from_millis(0),
        ..Person::default()
    };
    let touches: Vec<Touch> = (0..n)
        .map(|i| Touch {
            id: i as i64,
            person_id: 1,
            at: Timestamp::from_millis(60_000 * (i as i64 + 1)),
            kind: "webinar".into(),
            ..Touch::default()
        })
        .collect();
    let state = State {
        stage: Some("inquiry".into()),
        cycle: 1,
        entered_at: Some(Timestamp::from_millis(0)),
        cycle_started_at: Some(Timestamp::from_millis(0)),
    };
    let until = Timestamp::from_millis(60_000 * (n as i64 + 1));
    bencher.bench(|| {
        let facts = Facts {
            person: &person,
            account: None,
            touches: &touches,
            activities: &[],
            deals: &[],
        };
        let moves = if after {
            advance_after(&pb, &state, &facts, black_box(until), until)
        } else {
            advance(&pb, &state, &facts, black_box(until))
        };
        assert!(moves.is_empty());
        moves
    });
}
