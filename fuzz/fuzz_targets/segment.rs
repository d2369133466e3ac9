//! Segment ingest: any JSON body through `parse_batch` and through `parse`
//! as every single call. Bad bodies are `Invalid` values, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::Timestamp;
use tandem_ingest::segment::{parse, parse_batch, Call};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let received = Timestamp::from_millis(1_764_000_000_000);
    let _ = parse_batch(&v, received);
    let _ = parse(&v, None, "", None, received);
    for call in ["identify", "track", "page", "screen", "group", "alias"] {
        if let Some(call) = Call::parse(call) {
            let _ = parse(&v, Some(call), "", None, received);
        }
    }
});
