//! Tests of the metrics module on small hand-built histories.
