// Hyperscan (Debian libhyperscan-dev): the DPI payload-pattern matcher.
fn main() {
    println!("cargo:rustc-link-lib=hs");
}
