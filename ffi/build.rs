//! Finds Debian's DPDK and Hyperscan with pkg-config, compiles the fast-path
//! shim and runs bindgen over an allowlist for each. Nothing here is
//! generated for functions the data path does not call.

use std::env;
use std::path::PathBuf;

/// Minimum DPDK release the bindings are written against (Debian 12 ships 22.11).
const MIN_DPDK: &str = "22.11";

/// Functions bound directly (they are exported symbols in DPDK's libraries).
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_eal_mp_wait_lcore",
    "rte_eal_process_type",
    "rte_lcore_count",
    "rte_lcore_to_socket_id",
    "rte_socket_id",
    "rte_get_main_lcore",
    "rte_get_tsc_hz",
    "rte_strerror",
    "rte_log_set_global_level",
    "rte_pktmbuf_pool_create",
    "rte_pktmbuf_free_bulk",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_macaddr_get",
    "rte_eth_promiscuous_enable",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_link_get_nowait",
    "rte_dev_probe",
    "rte_lpm_create",
    "rte_lpm_add",
    "rte_lpm_free",
    "rte_lpm6_create",
    "rte_lpm6_add",
    "rte_lpm6_free",
    "rte_lpm6_lookup",
    "rte_lpm6_lookup_bulk_func",
    "rte_hash_create",
    "rte_hash_free",
    "rte_hash_add_key_data",
    "rte_hash_lookup_data",
    "rte_hash_lookup_bulk_data",
    "shim_.*",
];

/// Types and constants the safe layer needs beyond what the functions pull in.
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_stats",
    "rte_lpm_config",
    "rte_lpm6_config",
    "rte_hash_parameters",
];
const VARS: &[&str] = &[
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_ETH_MQ_.*",
    "RTE_LOG_.*",
    "SOCKET_ID_ANY",
];

fn main() {
    let lib = pkg_config::Config::new().atleast_version(MIN_DPDK).probe("libdpdk").unwrap_or_else(|e| {
        panic!(
            "DPDK >= {MIN_DPDK} not found with `pkg-config libdpdk` ({e}).\n\
                 Install it with: apt-get install libdpdk-dev pkg-config  (or run scripts/setup.sh)"
        )
    });

    // pkg-config's cflags carry `-include rte_config.h` and `-march=...`,
    // which both the shim and bindgen need to see the same struct layouts.
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let cflags: Vec<String> = match cflags {
        Some(s) if !s.is_empty() => s.split_whitespace().map(str::to_owned).collect(),
        _ => std::process::Command::new("pkg-config")
            .args(["--cflags", "libdpdk"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let cflags: Vec<String> = cflags.into_iter().filter(|f| !f.starts_with("-I")).collect();

    let mut shim = cc::Build::new();
    shim.file("shim.c").include(".").opt_level(3).warnings(true);
    for inc in &lib.include_paths {
        shim.include(inc);
    }
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("patronus_dpdk_shim");
    // intel-ipsec-mb (Debian libipsec-mb-dev): the tunnel's AEAD.
    println!("cargo:rustc-link-lib=IPSec_MB");

    let mut b = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg("-I.")
        .clang_args(lib.include_paths.iter().map(|p| format!("-I{}", p.display())))
        .clang_args(cflags.iter().cloned())
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for t in TYPES {
        b = b.allowlist_type(t);
    }
    for v in VARS {
        b = b.allowlist_var(v);
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    b.generate().expect("bindgen failed on DPDK headers").write_to_file(out.join("bindings.rs")).expect("writing bindings.rs");
    hyperscan(&out);
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=wrapper.h");
}

/// Hyperscan (Debian `libhyperscan-dev`), the DPI payload-pattern matcher:
/// block-mode compile, scratch and scan.
const HS_FUNCTIONS: &[&str] =
    &["hs_compile_multi", "hs_free_compile_error", "hs_alloc_scratch", "hs_scan", "hs_free_database", "hs_free_scratch"];
const HS_VARS: &[&str] = &["HS_SUCCESS", "HS_SCAN_TERMINATED", "HS_MODE_BLOCK"];

fn hyperscan(out: &std::path::Path) {
    let lib = pkg_config::Config::new().probe("libhs").unwrap_or_else(|e| {
        panic!(
            "Hyperscan not found with `pkg-config libhs` ({e}).\n\
                 Install it with: apt-get install libhyperscan-dev  (or run scripts/setup.sh)"
        )
    });
    let mut b = bindgen::Builder::default()
        .header("hs_wrapper.h")
        .clang_args(lib.include_paths.iter().map(|p| format!("-I{}", p.display())))
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in HS_FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for v in HS_VARS {
        b = b.allowlist_var(v);
    }
    b.generate().expect("bindgen failed on Hyperscan's headers").write_to_file(out.join("hs_bindings.rs")).expect("writing hs_bindings.rs");
    println!("cargo:rerun-if-changed=hs_wrapper.h");
}
