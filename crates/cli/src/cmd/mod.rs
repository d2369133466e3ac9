//! One module per group of commands.

pub mod demo;
pub mod import;
pub mod lifecycle;
pub mod playbook;
