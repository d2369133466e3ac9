//! One module per group of commands.

pub mod lifecycle;
pub mod playbook;
