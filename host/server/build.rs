//! Builds the guest workspaces (first-party plugins and test guests) for
//! `wasm32-wasip2`, so every `cargo build` and `cargo test` runs real
//! components built from source.
//!
//! Each inner cargo gets its own target dir (sharing the outer one would
//! deadlock on its lock) and none of the outer build's flags (they are meant
//! for the host, not for wasm).

// A build script reports failure by panicking.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Guest workspaces: (folder relative to the repository root, env var that
/// receives the folder holding its built `.wasm` files).
const WORKSPACES: &[(&str, &str)] = &[
    ("plugins", "WARREN_BUILTIN_PLUGINS_DIR"),
    ("tests/guests", "WARREN_TEST_GUESTS_DIR"),
];

/// Variables of the outer build that must not reach the inner one.
const STRIPPED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/server sits two folders below the repository root")
        .to_path_buf();
    let guests_target = root.join("target").join("guests");

    ensure_wasm_target();
    for watched in ["sdk/src", "sdk/Cargo.toml", "sdk/wit", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    for (folder, env_var) in WORKSPACES {
        let workspace = root.join(folder);
        watch_workspace(&workspace);
        // One target dir per workspace, so each folder of `.wasm` files holds
        // only that workspace's components.
        let target_dir = guests_target.join(folder.replace('/', "-"));
        build_workspace(&workspace, &target_dir);
        let wasm_dir = target_dir.join(TARGET).join("release");
        println!("cargo:rustc-env={env_var}={}", wasm_dir.display());
    }
}

/// A fresh machine has the toolchain from `rust-toolchain.toml` but rustup
/// does not add its targets to an already installed toolchain.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |sysroot: &Path| {
        sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    };
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    let added = rustup.status().is_ok_and(|s| s.success());
    if !added {
        panic!("the {TARGET} target is missing; install it with `rustup target add {TARGET}`");
    }
}

fn watch_workspace(workspace: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    let Ok(entries) = std::fs::read_dir(workspace) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.join("Cargo.toml").is_file() {
            println!(
                "cargo:rerun-if-changed={}",
                path.join("Cargo.toml").display()
            );
            println!("cargo:rerun-if-changed={}", path.join("src").display());
            if path.join("wit").is_dir() {
                println!("cargo:rerun-if-changed={}", path.join("wit").display());
            }
        }
    }
}

fn build_workspace(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    for var in STRIPPED_ENV {
        command.env_remove(var);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !output.status.success() {
        panic!(
            "building the guests in {} failed:\n{}",
            workspace.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
