//! The real `tandem` binary, driven as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .args(args)
        .output()
        .expect("run tandem")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_then_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(dir.path(), &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tandem(dir.path(), &["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
    // init refuses to overwrite.
    let out = tandem(dir.path(), &["init"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"));
}

#[test]
fn broken_cel_on_line_12_fails_check_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let src = "[company]\nname = \"X\"\ncurrency = \"USD\"\ntimezone = \"UTC\"\n\n[[stage]]\nid = \"inquiry\"\n\n[[stage]]\nid = \"mql\"\nmax_days = 14\nentry = \"score.fit >= 40 && score.engagement >= \"\n";
    std::fs::write(dir.path().join("broken.toml"), src).unwrap();
    let out = tandem(dir.path(), &["check", "broken.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("broken.toml:12:"), "{stdout}");
    assert!(
        stdout.contains(": error: invalid CEL expression"),
        "{stdout}"
    );
}

#[test]
fn errors_are_one_human_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(dir.path(), &["accept", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: cannot read playbook tandem.toml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    tandem(dir.path(), &["init"]);
    let out = tandem(dir.path(), &["history", "nobody"]);
    assert_eq!(text(&out.stderr), "error: person `nobody` not found\n");
}
