//! `cargo bench -p tandem-core`: the attribution models on the shared
//! ChannelAttribution example file (`../shared/data/attribution/paths.csv`
//! beside the repository; 10,000 paths, 12 channels). Prints a notice and
//! runs nothing when the file is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use divan::{black_box, Bencher};
use tandem_core::attribution::{
    first_touch, full_path, last_touch, linear, markov_table, parse_path_table, shapley,
    time_decay, u_shaped, w_shaped, Path, PathTable,
};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/attribution/paths.csv"
);

static TEXT: LazyLock<String> = LazyLock::new(|| std::fs::read_to_string(FILE).unwrap());
static TABLE: LazyLock<PathTable> = LazyLock::new(|| parse_path_table(&TEXT).unwrap());
/// The paths with made-up ages (one day per step back from the end) and
/// milestones (lead at the middle touch, opportunity at the last but one),
/// so time decay and the W-shaped / full-path models have what they need.
static PATHS: LazyLock<Vec<Path>> = LazyLock::new(|| {
    let mut paths = TABLE.to_paths();
    for p in &mut paths {
        let n = p.steps.len();
        p.ages_days = Some((0..n).map(|i| (n - 1 - i) as f64).collect());
        p.lead_touch = Some(n / 2);
        p.opportunity_touch = Some(n.saturating_sub(2));
    }
    paths
});

fn main() {
    if !std::path::Path::new(FILE).exists() {
        println!("notice: {FILE} not found; no attribution benchmarks run");
        return;
    }
    divan::main();
}

#[divan::bench]
fn parse(b: Bencher) {
    b.bench(|| parse_path_table(black_box(&TEXT)).unwrap());
}

#[divan::bench(args = [1, 3], sample_count = 20)]
fn markov(b: Bencher, order: usize) {
    let table = &*TABLE;
    b.bench(|| markov_table(black_box(table), order).unwrap());
}

#[divan::bench(sample_count = 20)]
fn shapley_values(b: Bencher) {
    let paths = &*PATHS;
    b.bench(|| shapley(black_box(paths)).unwrap());
}

#[divan::bench(args = ["first", "last", "linear", "time-decay", "u", "w", "full-path"], sample_count = 20)]
fn rules(b: Bencher, model: &str) {
    let paths = &*PATHS;
    b.bench(|| match model {
        "first" => first_touch(black_box(paths)),
        "last" => last_touch(black_box(paths)),
        "linear" => linear(black_box(paths)),
        "time-decay" => time_decay(black_box(paths), 7.0),
        "u" => u_shaped(black_box(paths)),
        "w" => w_shaped(black_box(paths)),
        _ => full_path(black_box(paths)),
    });
}
