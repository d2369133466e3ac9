//! The commented starter playbook written by `tandem init`.

/// A complete playbook with the default stages, reasons, scoring, SLA,
/// personas, segments, channels and goals.
pub const STARTER: &str = include_str!("starter.toml");
