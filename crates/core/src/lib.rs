//! tandem-core: the pure heart of tandem.
//!
//! Domain types, the playbook model with its CEL criteria, the lifecycle
//! engine, scoring and (in later modules) metrics and attribution. This crate
//! does no I/O and no async: every function is a pure function of its inputs,
//! so analytics give identical output for identical history and `as_of`.

pub mod accounts;
pub mod activities;
pub mod attribution;
pub mod columns;
pub mod domain;
pub mod facts;
pub mod fxhash;
mod idmap;
pub mod lifecycle;
pub mod metrics;
pub mod money;
mod niche;
pub mod playbook;
pub mod quality;
pub mod scoring;
pub mod sla;
pub mod sym;
pub mod time;
pub mod timeline;
pub mod touches;
pub mod transitions;

pub use money::{Currency, Minor, Money, MAX_MINOR};
pub use sym::Sym;
pub use time::Timestamp;
