// Hyperscan (Debian libhyperscan-dev) for `patronus-perf pattern-bench`.
fn main() {
    println!("cargo:rustc-link-lib=hs");
}
