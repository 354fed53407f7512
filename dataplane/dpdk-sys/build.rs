//! Generates the DPDK bindings at build time against the system DPDK found by pkg-config.
//!
//! bindgen's `wrap_static_fns` turns DPDK's static-inline fast-path API (rx/tx burst, mbuf
//! alloc/free, rdtsc, lcore id, ...) into real C functions named `<fn>__extern`, compiled here
//! with `cc` using the same flags as DPDK itself. No hand-maintained library list or shim.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let header = manifest_dir.join("wrapper.h");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // The compile flags DPDK was built for: include paths, `-include rte_config.h`, `-march=...`.
    let cflags = pkg_config_cflags();

    // The static-inline wrappers reference DPDK symbols: compile them first so the static
    // archive precedes the (as-needed) shared DPDK libraries on the link line.
    let static_fns = out_dir.join("static_fns");
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(cflags.iter())
        .allowlist_function("rte_.*|rampart_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*|rte_.*|RING_F_.*")
        .derive_default(true)
        .no_debug("rte_gtp_psc_generic_hdr")
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_fns)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {}: {e}", header.display()));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(static_fns.with_extension("c"))
        .include(&manifest_dir)
        .opt_level(3)
        .warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("rampart_dpdk_static_fns");

    // Link against the system DPDK (shared). PMDs are plugins: librte_eal loads every driver in
    // its driver directory at start-up, so net_null/af_packet/memif/pcap/ring need no extra flags.
    pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!("DPDK development files not found (apt-get install libdpdk-dev pkg-config): {e}")
        });
}

/// `pkg-config --cflags libdpdk`, split into arguments (`-include rte_config.h` stays two args).
fn pkg_config_cflags() -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config (apt-get install pkg-config): {e}"));
    if !out.status.success() {
        panic!(
            "pkg-config --cflags libdpdk failed (apt-get install libdpdk-dev): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
