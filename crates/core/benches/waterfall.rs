//! `cargo bench -p tandem-core --bench waterfall`: the cohort waterfall by
//! source over a synthetic history in time order (as the store reads it),
//! 300,000 leads walking the starter funnel with recycles and
//! disqualifications (about a million transitions, an eleventh of them
//! exits), the shape of the large demo at a quarter of its size. No data
//! files needed. `cohort_by_source` replays and counts, as the CLI does;
//! `replay` is the part a server keeps; `from_a_kept_replay` is what a
//! server's request then costs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{black_box, Bencher};
use tandem_core::domain::{Subject, Transition};
use tandem_core::metrics::waterfall::{waterfall, Replay, WaterfallOptions};
use tandem_core::metrics::{GroupKeys, Grouping, Window};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::time::DAY_MS;
use tandem_core::transitions::Transitions;
use tandem_core::{Sym, Timestamp};

fn main() {
    divan::main();
}

const PEOPLE: i64 = 300_000;
const SOURCES: [&str; 7] = [
    "webinar", "paid", "organic", "event", "partner", "outbound", "referral",
];

/// Knuth's MMIX linear congruential generator (high bits), so the
/// history is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Every lead's transitions, sorted by (at, seq) with `seq` in that order.
fn history() -> Vec<Transition> {
    let funnel = ["inquiry", "mql", "sal", "sql", "opportunity", "customer"];
    let mut rng = Rng(42);
    let mut out = Vec::new();
    for id in 1..=PEOPLE {
        let mut at = rng.below(730) as i64 * DAY_MS;
        let mut cycle = 1;
        let mut from: Option<&str> = None;
        // Up to two cycles: advance until the walk stops, then maybe
        // recycle and come back at MQL.
        let mut k = 0;
        loop {
            let to = funnel[k];
            out.push(step(id, from, to, at, cycle, None));
            from = Some(to);
            at += (1 + rng.below(20) as i64) * DAY_MS / 2;
            k += 1;
            if k == funnel.len() {
                break;
            }
            let roll = rng.below(100);
            if roll < 55 {
                continue;
            }
            if roll < 60 {
                out.push(step(id, from, "disqualified", at, cycle, Some("bad fit")));
                break;
            }
            if roll < 70 && cycle == 1 {
                out.push(step(id, from, "recycled", at, cycle, Some("no budget")));
                cycle += 1;
                from = Some("recycled");
                at += 30 * DAY_MS;
                k = 1;
                continue;
            }
            break;
        }
    }
    out.sort_by_key(|t| (t.at, t.subject));
    for (seq, t) in out.iter_mut().enumerate() {
        t.seq = seq as i64 + 1;
    }
    out
}

fn step(
    id: i64,
    from: Option<&str>,
    to: &str,
    at: i64,
    cycle: u32,
    reason: Option<&str>,
) -> Transition {
    Transition {
        seq: 0,
        subject: Subject::Person(id),
        from: from.map(Sym::new),
        to: Sym::new(to),
        at: Timestamp::from_millis(at),
        actor: Sym::new("system"),
        reason: reason.map(Sym::new),
        note: None,
        cycle,
        skipped: false,
    }
}

/// The history, every lead's source, the as-of instant and the window.
fn setup() -> (Playbook, Transitions, GroupKeys, Timestamp, Window) {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let ts = Transitions::from(history());
    let keys: GroupKeys = (1..=PEOPLE)
        .map(|id| (id, SOURCES[(id % 7) as usize]))
        .collect();
    let as_of = Timestamp::from_millis(760 * DAY_MS);
    let window = Window::new(Timestamp::from_millis(395 * DAY_MS), as_of).unwrap();
    (pb, ts, keys, as_of, window)
}

#[divan::bench(sample_count = 10)]
fn cohort_by_source(bencher: Bencher) {
    let (pb, ts, keys, as_of, window) = setup();
    bencher.bench(|| {
        let mut opts = WaterfallOptions::new(window, as_of);
        opts.grouping = Grouping::Map(&keys);
        let w = waterfall(&pb, black_box(&ts), &[], &opts).unwrap();
        assert_eq!(w.groups.len(), SOURCES.len());
        w
    });
}

#[divan::bench(sample_count = 10)]
fn replay(bencher: Bencher) {
    let (pb, ts, _, as_of, _) = setup();
    bencher.bench(|| Replay::new(&pb, black_box(&ts), as_of));
}

#[divan::bench(sample_count = 10)]
fn from_a_kept_replay(bencher: Bencher) {
    let (pb, ts, keys, as_of, window) = setup();
    let replay = Replay::new(&pb, &ts, as_of);
    bencher.bench(|| {
        let mut opts = WaterfallOptions::new(window, as_of);
        opts.grouping = Grouping::Map(&keys);
        let w = replay.waterfall(&[], black_box(&opts)).unwrap();
        assert_eq!(w.groups.len(), SOURCES.len());
        w
    });
}
