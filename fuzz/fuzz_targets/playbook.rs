//! Playbook loader: TOML parse, checks, CEL compile; every diagnostic is
//! rendered as `file:line:column`. Any text must load or give diagnostics,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::playbook::Playbook;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Playbook::load(source);
    for d in &loaded.diagnostics {
        let _ = d.render("playbook.toml", source);
    }
    if let Some(pb) = &loaded.playbook {
        let _ = pb.funnel().count();
        let _ = pb.first_stage();
        let _ = pb.recycle_stage();
        let _ = pb.disqualify_stage();
    }
});
