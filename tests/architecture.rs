//! The layering of the crate: every library module imports only modules before it in the
//! data flow (or the foundations below them all), so the tree reads one way and has no cycle.

use std::path::{Path, PathBuf};

/// The top-level modules, lowest first.
const ORDER: [&str; 15] = [
    "types",
    "error",
    "rng",
    "choice",
    "device",
    "metrics",
    "ops",
    "data",
    "model",
    "fusion",
    "methods",
    "config",
    "run",
    "baselines",
    "grid",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `text` names as `crate::<module>`.
fn imports(text: &str) -> Vec<&str> {
    text.match_indices("crate::")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn every_module_imports_only_those_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.trim_end_matches(".rs");
        let Some(own) = rank(top) else {
            continue; // lib.rs, main.rs and the command line sit above everything
        };
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for dep in imports(&text) {
            if rank(dep).is_some_and(|r| r > own) {
                wrong.push(format!("{} imports crate::{dep}", rel.display()));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} files found under {}",
        src.display()
    );
    assert!(
        wrong.is_empty(),
        "imports against the flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_scan_sees_a_module_path() {
    assert_eq!(
        imports("use crate::run::plan::Plan;\nlet x = crate::data::batch::Batch::new();"),
        ["run", "data"]
    );
}
