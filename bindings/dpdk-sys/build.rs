//! Finds DPDK through pkg-config, compiles the C shim, generates the bindings
//! and tells rustc how to link DPDK (shared by default, static with the
//! `static` feature).

use bindgen::callbacks::IntKind;
use std::collections::HashSet;
use std::env;
use std::path::PathBuf;
use std::process::{self, Command};

/// Oldest DPDK whose API and ABI these bindings were written against.
const MIN_DPDK: &str = "22.11";

const INSTALL_HINT: &str = "install with `apt-get install libdpdk-dev dpdk-dev pkg-config clang libclang-dev`";

fn main() {
    // Check every prerequisite before printing any cargo directive, so a
    // missing one fails with a single message and no wall of stdout.
    let dpdk = probe_dpdk();
    check_libclang();
    // The pkg-config crate keeps only -I/-D; DPDK's cflags also carry
    // `-include rte_config.h` and `-march=...`, which both the C compiler and
    // clang (bindgen) need to see the same struct layouts and inline bodies.
    let cflags = pkg_config_output(&["--cflags", "libdpdk"]);

    for path in ["build.rs", "wrapper.h", "src/shim.c", "src/shim.h"] {
        println!("cargo:rerun-if-changed={path}");
    }
    for var in ["PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR", "LIBCLANG_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let mut cc = cc::Build::new();
    cc.file("src/shim.c").warnings(true);
    for flag in &cflags {
        cc.flag(flag);
    }
    // Printed before DPDK's libraries so the linker sees the shim's
    // references first.
    cc.compile("dpdk_shim");

    if env::var_os("CARGO_FEATURE_STATIC").is_some() {
        link_static();
    } else {
        for dir in &dpdk.link_paths {
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
        for lib in &dpdk.libs {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    // Lets dependents (`links = "dpdk"`) find the headers as DEP_DPDK_INCLUDE.
    if let Some(dir) = dpdk.include_paths.first() {
        println!("cargo:include={}", dir.display());
    }

    generate_bindings(&cflags);
}

/// Finds libdpdk.pc. Prints nothing: the link flags are printed by `main`,
/// after the shim, and static linking needs flags the crate cannot express.
fn probe_dpdk() -> pkg_config::Library {
    pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .cargo_metadata(false)
        .env_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|err| {
            // pkg-config's own first stderr line says what was wrong
            // (package missing, or too old); the rest is noise.
            let cause = match &err {
                pkg_config::Error::Failure { output, .. } | pkg_config::Error::ProbeFailure { output, .. } => {
                    String::from_utf8_lossy(&output.stderr).into_owned()
                }
                other => other.to_string(),
            };
            let cause = cause.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            fail(&format!(
                "DPDK {MIN_DPDK} development files not found through pkg-config \
                 (libdpdk.pc); {INSTALL_HINT}\n  pkg-config: {cause}"
            ))
        })
}

/// bindgen loads libclang at run time and panics with a long message if it
/// is missing; check first so the user gets one line with the fix.
fn check_libclang() {
    if let Err(err) = clang_sys::load() {
        fail(&format!(
            "libclang (needed by bindgen) not found; {INSTALL_HINT}, or set \
             LIBCLANG_PATH to the directory holding libclang.so\n  clang-sys: {err}"
        ));
    }
}

/// Prints `msg` as the only error of the build and stops it.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1);
}

/// Runs the same pkg-config binary the pkg-config crate uses.
fn pkg_config_output(args: &[&str]) -> Vec<String> {
    let bin = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run `{bin}`: {e}; {INSTALL_HINT}")));
    if !out.status.success() {
        fail(&format!("`{bin} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// Translates `pkg-config --static --libs libdpdk` into cargo directives.
///
/// DPDK drivers and buses register themselves from constructors that
/// nothing else references, so libdpdk.pc wraps its archives in
/// --whole-archive. A build script cannot place raw linker arguments
/// between the `-l` flags of a dependent's link, so that bracket becomes the
/// `+whole-archive` modifier on each archive inside it.
/// `-bundle` keeps the (large) archives out of this crate's rlib; they are
/// passed to the final link instead.
fn link_static() {
    let mut whole_archive = false;
    // libdpdk.pc lists every DPDK library twice: as an archive inside the
    // --whole-archive bracket and again as `-lrte_*` afterwards. rustc
    // rejects one name with two link kinds, and the second copy adds
    // nothing, so each name is linked once, the first way it appears.
    let mut seen = HashSet::new();
    for arg in pkg_config_output(&["--static", "--libs", "libdpdk"]) {
        if let Some(dir) = arg.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if arg == "-Wl,--whole-archive" {
            whole_archive = true;
        } else if arg == "-Wl,--no-whole-archive" {
            whole_archive = false;
        } else if let Some(file) = arg.strip_prefix("-l:") {
            // `-l:librte_foo.a` names the archive file exactly.
            let name = file
                .strip_prefix("lib")
                .and_then(|f| f.strip_suffix(".a"))
                .unwrap_or_else(|| fail(&format!("unexpected library in libdpdk.pc: {arg}")));
            if seen.insert(name.to_owned()) {
                let modifiers = if whole_archive { "+whole-archive,-bundle" } else { "-bundle" };
                println!("cargo:rustc-link-lib=static:{modifiers}={name}");
            }
        } else if let Some(name) = arg.strip_prefix("-l") {
            // System dependencies (numa, pcap, ibverbs, systemd, ...) stay shared.
            if seen.insert(name.to_owned()) {
                println!("cargo:rustc-link-lib={name}");
            }
        }
        // Other flags (-pthread, -Wl,--as-needed, -Wl,--export-dynamic) are
        // what rustc already passes or not needed by a Rust binary.
    }
}

fn generate_bindings(cflags: &[String]) {
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .parse_callbacks(Box::new(ConstNaming))
        // Config structs such as rte_eth_conf are meant to be zero-filled
        // and then have a few fields set.
        .derive_default(true)
        // C enums become plain integer constants with their C names
        // (RTE_ETH_MQ_RX_RSS, RTE_FLOW_ITEM_TYPE_ETH, ...): a Rust enum
        // would be undefined behaviour for values a newer DPDK adds.
        .prepend_enum_name(false)
        // rte_flow items embed these two packed structs, which contain
        // aligned members; Rust rejects that mix, so keep them as
        // correctly sized byte blobs.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .layout_tests(true)
        .generate_comments(true);

    for f in [
        "rte_eal_.*",
        "rte_eth_.*",
        "rte_pktmbuf_.*",
        "rte_mbuf_.*",
        "rte_mempool_.*",
        "rte_ring_.*",
        "rte_lcore_.*",
        "rte_flow_.*",
        "rte_socket_id",
        "rte_thread_register",
        "rte_thread_unregister",
        "rte_exit",
        "rte_strerror",
        "rte_get_tsc_hz",
        "rte_zmalloc_socket",
        "rte_free",
        "rte_log_set_global_level",
        "rte_log_set_level_pattern",
        "shim_.*",
    ] {
        builder = builder.allowlist_function(f);
    }
    for t in ["rte_eth_.*", "rte_mbuf", "rte_mempool", "rte_ring", "rte_flow_.*", "rte_ether_.*", "rte_lcore_.*"] {
        builder = builder.allowlist_type(t);
    }
    for v in [
        "RTE_ETH_.*",
        "RTE_MBUF_.*",
        "RTE_PKTMBUF_.*",
        "RTE_FLOW_.*",
        "RTE_ETHER_.*",
        "RTE_MEMPOOL_.*",
        "RTE_RING_.*",
        "RTE_MAX_ETHPORTS",
        "RTE_MAX_LCORE",
        "RTE_LOG_.*",
        "RING_F_.*",
        "MEMPOOL_F_.*",
        "SOCKET_ID_ANY",
        "LCORE_ID_ANY",
        "E_RTE_.*",
        "SHIM_CONST_.*",
    ] {
        builder = builder.allowlist_var(v);
    }

    let bindings = builder.generate().unwrap_or_else(|e| fail(&format!("bindgen failed on wrapper.h: {e}")));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).unwrap_or_else(|e| fail(&format!("cannot write bindings.rs: {e}")));
}

/// Names and types of generated constants: wrapper.h's `SHIM_CONST_<NAME>`
/// become plain `<NAME>`, and some macros get the type they are used with.
#[derive(Debug)]
struct ConstNaming;

impl bindgen::callbacks::ParseCallbacks for ConstNaming {
    fn item_name(&self, name: &str) -> Option<String> {
        name.strip_prefix("SHIM_CONST_").map(str::to_owned)
    }

    /// bindgen types a macro by its value (u32 if it fits); use the type of
    /// the field the constant is compared with instead, to spare casts.
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        if name.starts_with("RTE_MBUF_F_") {
            Some(IntKind::U64) // rte_mbuf.ol_flags
        } else if matches!(name, "RTE_MBUF_DEFAULT_BUF_SIZE" | "RTE_MBUF_DEFAULT_DATAROOM" | "RTE_PKTMBUF_HEADROOM") {
            Some(IntKind::U16) // data_room_size of rte_pktmbuf_pool_create, data_off
        } else {
            None
        }
    }
}
