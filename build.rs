//! Passes what nginx-sys learned about the nginx we build against on to the
//! compiler as `cfg`s, so code can adapt to that nginx:
//!
//! * `ngx_feature = "http_ssl"`, `"http_v2"`, … — the configure-time features;
//! * `ngx_os = "linux"`, …;
//! * `nginx1_NN_N` — set when the nginx version is at least that release;
//! * `ngx_version_number` env — the numeric version, for messages.
//!
//! nginx-sys publishes these as `DEP_NGINX_*` variables to direct dependents
//! only, which is why `nginx-sys` is a direct dependency in Cargo.toml.
//!
//! It also compiles `src/nginx/bitfields.c` against that nginx's headers
//! (`DEP_NGINX_INCLUDE`): the C compiler, not bindgen, lays out bit-fields
//! (see src/nginx/bitfield.rs for why).

use std::env;

/// Releases whose API or behaviour differences the module cares about.
const VERSION_CHECKS: &[(u64, &str)] = &[
    (1_021_001, "nginx1_21_1"),
    (1_023_000, "nginx1_23_0"),
    (1_025_001, "nginx1_25_1"),
    (1_027_000, "nginx1_27_0"),
    (1_029_007, "nginx1_29_7"),
    (1_030_000, "nginx1_30_0"),
    (1_031_000, "nginx1_31_0"),
];

fn main() {
    for var in [
        "DEP_NGINX_FEATURES",
        "DEP_NGINX_FEATURES_CHECK",
        "DEP_NGINX_OS",
        "DEP_NGINX_OS_CHECK",
        "DEP_NGINX_VERSION_NUMBER",
        "DEP_NGINX_VERSION",
        "DEP_NGINX_BUILD_DIR",
        "DEP_NGINX_INCLUDE",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let features_check = env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or_else(|_| "any()".into());
    println!("cargo::rustc-check-cfg=cfg(ngx_feature, values({features_check}))");
    if let Ok(features) = env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }

    let os_check = env::var("DEP_NGINX_OS_CHECK").unwrap_or_else(|_| "any()".into());
    println!("cargo::rustc-check-cfg=cfg(ngx_os, values({os_check}))");
    if let Ok(os) = env::var("DEP_NGINX_OS") {
        println!("cargo::rustc-cfg=ngx_os=\"{os}\"");
    }

    for (_, name) in VERSION_CHECKS {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }
    let version: u64 = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    for (min, name) in VERSION_CHECKS {
        if version >= *min {
            println!("cargo::rustc-cfg={name}");
        }
    }
    let version_text = env::var("DEP_NGINX_VERSION").unwrap_or_else(|_| "unknown".into());
    println!("cargo::rustc-env=AUTHGATE_NGINX_VERSION={version_text}");
    println!("cargo::rustc-env=AUTHGATE_NGINX_VERSION_NUMBER={version}");

    compile_bitfield_accessors();
}

/// Builds the C bit-field accessors with the include path nginx-sys found
/// (the configured tree's `objs/` holds ngx_auto_config.h).
fn compile_bitfield_accessors() {
    const SOURCE: &str = "src/nginx/bitfields.c";
    println!("cargo::rerun-if-changed={SOURCE}");
    let include = env::var_os("DEP_NGINX_INCLUDE")
        .expect("nginx-sys did not publish DEP_NGINX_INCLUDE (nginx include directories)");
    let mut build = cc::Build::new();
    for dir in env::split_paths(&include) {
        build.include(dir);
    }
    // nginx's own headers are not warning-clean under every -W flag cc adds.
    build
        .warnings(false)
        .file(SOURCE)
        .compile("authgate_bitfields");
}
