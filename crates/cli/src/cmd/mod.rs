//! One module per group of commands.

pub mod accounts;
pub mod attribution;
pub mod demo;
pub mod export;
pub mod feedback;
pub mod funnel;
pub mod gaps;
pub mod import;
pub mod lifecycle;
pub mod numbers;
pub mod plan;
pub mod playbook;
pub mod quality;
pub mod scorecard;
pub mod serve;
pub mod sla;
pub mod weekly;
