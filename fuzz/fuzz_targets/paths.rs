//! Path-file reader (ChannelAttribution format) and, for small tables that
//! parse, every attribution model on them. Errors are values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::attribution::{attribute, markov_table, parse_path_table, Model};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = parse_path_table(text) else {
        return;
    };
    let _ = table.totals();
    if table.len() > 64 {
        return;
    }
    let paths = table.to_paths();
    for model in [
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect {
            direct: "direct".into(),
        },
        Model::Linear,
        Model::TimeDecay {
            half_life_days: 7.0,
        },
        Model::UShaped,
        Model::WShaped,
        Model::FullPath,
        Model::Markov { order: 1 },
        Model::Shapley,
    ] {
        let _ = attribute(&paths, &model);
    }
    let _ = markov_table(&table, 2);
});
