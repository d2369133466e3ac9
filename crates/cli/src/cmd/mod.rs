//! One module per group of commands.

pub mod demo;
pub mod funnel;
pub mod import;
pub mod lifecycle;
pub mod numbers;
pub mod playbook;
