//! bgrun: a daemon and CLI that run background jobs, capture their output, know when they are
//! ready, restart them when they crash, and stop them cleanly. See ARCHITECTURE in the README.

pub mod cli;
pub mod client;
pub mod clock;
pub mod daemon;
pub mod dashboard;
pub mod error;
pub mod git;
pub mod graph;
pub mod home;
pub mod job;
pub mod logs;
pub mod plan;
pub mod programs;
pub mod project;
pub mod protocol;
pub mod reconcile;
pub mod render;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod store;
pub mod supervisor;
