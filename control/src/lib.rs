//! The `patronus` binary's library: configuration, the control thread and
//! the operator commands.

pub mod config;
pub mod run;
pub mod slowpath;
pub mod stats;
