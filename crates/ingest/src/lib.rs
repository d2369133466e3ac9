//! tandem-ingest: CSV imports of CRM and marketing-automation exports.
//!
//! [`csvread`] streams rows and flags unreadable ones; [`mapping`] decides
//! which column feeds which field (generic, or a preset for HubSpot,
//! Salesforce, Marketo and Olist); [`rows`] turns a row into a typed record
//! or a reject reason; [`import`] upserts records in transactional batches
//! and re-evaluates the lifecycle of every person touched; [`segment`]
//! turns Segment `identify`/`track`/`batch` messages into the same records.

pub mod csvread;
pub mod demo;
pub mod import;
pub mod mapping;
pub mod rows;
pub mod segment;
pub mod targets;

pub use import::{import_file, rejects_path, ImportError, ImportOptions, Summary};
pub use mapping::{Kind, Preset};
