//! The WIT contract has one home, the top-level `wit/` (the host's bindings
//! read it); `sdk/wit/` is the copy the published SDK carries. These tests
//! keep the copy identical and the SDK versioned with `warren`, whose
//! `warren new` writes `warren-sdk = "<its own version>"`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

const RESYNC: &str = "the top-level wit/ is the source: resync the SDK's copy with \
                      `rm -r sdk/wit && cp -r wit sdk/wit` from the repository root";

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("reading {}: {e}; {RESYNC}", folder.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(relative, bytes);
            }
        }
    }
    out
}

#[test]
fn the_sdk_carries_an_identical_copy_of_the_wit_contract() {
    let root = Path::new(ROOT);
    let contract = files(&root.join("wit"));
    let copy = files(&root.join("sdk/wit"));
    assert!(
        contract
            .keys()
            .any(|p| p.extension().is_some_and(|e| e == "wit")),
        "no .wit file in wit/"
    );
    for (path, bytes) in &contract {
        match copy.get(path) {
            None => panic!("sdk/wit/{} is missing; {RESYNC}", path.display()),
            Some(copied) => assert!(
                copied == bytes,
                "sdk/wit/{0} differs from wit/{0}; {RESYNC}",
                path.display()
            ),
        }
    }
    if let Some(path) = copy.keys().find(|p| !contract.contains_key(*p)) {
        panic!(
            "sdk/wit/{} has no counterpart in wit/; {RESYNC}",
            path.display()
        );
    }
}

#[test]
fn the_sdk_is_versioned_with_warren() {
    let read = |path: &str| -> toml::Value {
        let text = std::fs::read_to_string(Path::new(ROOT).join(path)).expect(path);
        toml::from_str(&text).expect(path)
    };
    let sdk = read("sdk/Cargo.toml");
    let inherited = sdk
        .get("package")
        .and_then(|p| p.get("version"))
        .and_then(|v| v.get("workspace"))
        .and_then(toml::Value::as_bool);
    assert_eq!(
        inherited,
        Some(true),
        "sdk/Cargo.toml must use `version.workspace = true`: `warren new` writes \
         warren's own version as the warren-sdk requirement"
    );
    let workspace = read("Cargo.toml");
    let version = workspace
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(toml::Value::as_str);
    assert_eq!(version, Some(env!("CARGO_PKG_VERSION")));
}
