//! CSV import front half: read rows (`csvread`), resolve the column mapping
//! for every preset and kind (`mapping`), convert every row (`rows`). Any
//! input must give rows, reject reasons or a `CsvError`, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tandem_core::Currency;
use tandem_ingest::csvread::CsvSource;
use tandem_ingest::mapping::{Kind, Mapping, Preset};
use tandem_ingest::rows::{convert, RowContext};

const PRESETS: [Preset; 5] = [
    Preset::Generic,
    Preset::Olist,
    Preset::Hubspot,
    Preset::Salesforce,
    Preset::Marketo,
];

/// Rows converted per input; the parser itself sees every row.
const MAX_ROWS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = CsvSource::new(data) else {
        return;
    };
    let headers = src.headers().to_vec();
    let mut rows = Vec::new();
    loop {
        match src.next_row() {
            Ok(Some(row)) => {
                if rows.len() < MAX_ROWS {
                    rows.push(row);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let Ok(currency) = Currency::parse("EUR") else {
        return;
    };
    // UTC and a zone with DST gaps and folds (local times that do not exist
    // or exist twice).
    for tz in [
        jiff::tz::TimeZone::UTC,
        jiff::tz::TimeZone::get("America/Sao_Paulo").unwrap_or(jiff::tz::TimeZone::UTC),
    ] {
        let ctx = RowContext {
            tz: &tz,
            currency,
            stages: [
                "inquiry",
                "mql",
                "sal",
                "sql",
                "opportunity",
                "customer",
                "recycled",
                "disqualified",
            ]
            .map(String::from)
            .to_vec(),
        };
        for preset in PRESETS {
            for kind in Kind::ALL {
                let Ok(mapping) = Mapping::resolve(kind, preset, &headers, &BTreeMap::new()) else {
                    continue;
                };
                for row in rows.iter().filter(|r| r.problem.is_none()) {
                    let _ = convert(&mapping, &row.fields, &ctx);
                }
            }
        }
    }
});
