//! The `patronus` binary's library: configuration, the control thread and
//! the operator commands.

pub mod acceptor;
pub mod api;
pub mod capture;
pub mod classify;
pub mod config;
pub mod ctl;
pub mod envcheck;
pub mod events;
pub mod histogram;
pub mod log;
pub mod paths;
pub mod reload;
pub mod replay;
pub mod run;
pub mod show;
pub mod slowpath;
pub mod snapshots;
pub mod stats;
pub mod telemetry;
pub mod tunnel;

#[cfg(test)]
mod drivers_tests;
/// The two-port config the tests share (one file for both the unit and the
/// end-to-end tests).
#[cfg(test)]
#[path = "../../tests/common/fixture.rs"]
mod fixture;
