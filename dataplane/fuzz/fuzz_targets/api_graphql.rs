//! The GraphQL entry: any query text and variables, as a read and as an
//! admin caller, through parsing, validation (depth, complexity, page
//! limits) and execution against a server with no appliance behind it.
//! Input: QUERY, a NUL, VARIABLES (JSON).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use patronus::api::auth::{Caller, Role};
use patronus::api::Shared;

fn state() -> &'static (tokio::runtime::Runtime, Arc<Shared>) {
    static S: OnceLock<(tokio::runtime::Runtime, Arc<Shared>)> = OnceLock::new();
    S.get_or_init(|| {
        let conf = patronus::config::api::ApiOpts::default().conf("127.0.0.1:0", std::path::Path::new("x.toml")).unwrap();
        (tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(), Shared::detached(conf))
    })
}

fuzz_target!(|data: &[u8]| {
    let (query, vars) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let query = String::from_utf8_lossy(query);
    let (rt, s) = state();
    for role in [Some(Role::Read), Some(Role::Admin)] {
        let r = rt.block_on(s.execute(&query, vars, Caller { name: "fuzz".into(), role }));
        assert!(r.is_object());
    }
});
