//! The module map as a test: each top-level module of `src/` may name (`crate::…`) only
//! the modules below it. The table is the architecture (DESIGN.md, "Modules"); a new
//! import that points up or sideways fails here, naming the file and the line.
//!
//! The domain (`vocab`, `auction`, `alliance`, `market`) is pure and at the bottom; the
//! engine and its journal above it; the read models, then the edges (HTTP, WebSocket,
//! the alliance's hand-off); the server, which wires them, at the top.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// (module, the modules it may import). A module not listed here fails the test too, so
/// every new module takes a place in the map.
const LAYERS: &[(&str, &[&str])] = &[
    ("vocab", &[]),
    ("metrics", &[]),
    ("auction", &["vocab"]),
    ("alliance", &["vocab"]),
    ("market", &["vocab", "auction", "alliance"]),
    ("store", &["vocab", "auction", "market"]),
    (
        "engine",
        &["vocab", "auction", "market", "store", "metrics"],
    ),
    ("audit", &["vocab", "auction", "market", "store", "engine"]),
    (
        "config",
        &[
            "vocab", "auction", "alliance", "market", "store", "engine", "audit",
        ],
    ),
    (
        "directory",
        &["vocab", "auction", "market", "store", "engine"],
    ),
    (
        "views",
        &[
            "vocab",
            "auction",
            "alliance",
            "market",
            "store",
            "engine",
            "directory",
        ],
    ),
    (
        "pipeline",
        &[
            "vocab", "auction", "alliance", "market", "store", "engine", "views",
        ],
    ),
    (
        "gateway",
        &[
            "vocab",
            "auction",
            "alliance",
            "market",
            "store",
            "engine",
            "metrics",
            "config",
            "directory",
            "views",
        ],
    ),
    (
        "api",
        &[
            "vocab",
            "auction",
            "alliance",
            "market",
            "store",
            "engine",
            "audit",
            "metrics",
            "config",
            "directory",
            "views",
        ],
    ),
    ("console", &[]),
    (
        "demo",
        &["vocab", "auction", "market", "engine", "directory", "views"],
    ),
    (
        "server",
        &[
            "vocab",
            "auction",
            "alliance",
            "market",
            "store",
            "engine",
            "audit",
            "metrics",
            "config",
            "directory",
            "views",
            "pipeline",
            "gateway",
            "api",
            "console",
        ],
    ),
    // A cluster node runs market servers and a front door that shares the API's errors
    // and checks: it sits above the server.
    (
        "cluster",
        &[
            "vocab",
            "auction",
            "alliance",
            "market",
            "store",
            "engine",
            "audit",
            "metrics",
            "config",
            "directory",
            "views",
            "pipeline",
            "gateway",
            "api",
            "console",
            "server",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of a module (a file `src/m.rs`, or everything under `src/m/`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let file = src().join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level modules `line` names as `crate::m`, outside comments.
fn named(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_imports_only_the_modules_below_it() {
    let mut listed = BTreeSet::new();
    let mut wrong = Vec::new();
    for &(module, allowed) in LAYERS {
        listed.insert(module.to_string());
        for file in files_of(module) {
            let text = fs::read_to_string(&file).expect("a source file reads");
            for (n, line) in text.lines().enumerate() {
                for target in named(line) {
                    if target != module && !allowed.contains(&target.as_str()) {
                        wrong.push(format!(
                            "{}:{}: `{module}` imports `{target}`: {}",
                            file.display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the module map:\n{}",
        wrong.join("\n")
    );
    // Every top-level module has its place in the map.
    let mut present = BTreeSet::new();
    for entry in fs::read_dir(src()).expect("src reads") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a file name")
            .to_string();
        if name != "lib" && name != "main" {
            present.insert(name);
        }
    }
    let unlisted: Vec<_> = present.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "modules without a place in the map: {unlisted:?}"
    );
}

#[test]
fn the_map_points_down_only() {
    // Each module may import only modules listed before it: the table is an order, so
    // no two modules can import each other.
    for (i, &(module, allowed)) in LAYERS.iter().enumerate() {
        for target in allowed {
            let below = LAYERS[..i].iter().any(|&(m, _)| m == *target);
            assert!(
                below,
                "`{module}` may import `{target}`, which is not below it"
            );
        }
    }
}

#[test]
fn a_comment_or_a_string_naming_a_module_is_not_an_import() {
    assert_eq!(
        named("use crate::vocab::Fen; // see crate::engine"),
        ["vocab"]
    );
    assert!(named("//! the market (`crate::market`) owns it").is_empty());
    assert_eq!(
        named("let x = crate::auction::Book::new(crate::auction::Rules::default());"),
        ["auction", "auction"]
    );
}
