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

/// The first name of each path `text` writes after `prefix`: `prefix name::…`, or each of
/// the names in `prefix{a, b::c}`.
fn names_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let ident = |rest: &'a str| {
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    };
    let mut out = Vec::new();
    for (i, m) in text.match_indices(prefix) {
        let rest = &text[i + m.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.push(ident(rest));
            continue;
        };
        // the top level of the braces: `a, b::{c, d}, e` gives a, b, e
        let (mut depth, mut start) = (0, 0);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.push(ident(&group[start..j]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(ident(&group[start..j]));
                    start = j + 1;
                }
                _ => {}
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The top-level modules `text` names as `crate::<module>` or in `crate::{a, b}`.
fn imports(text: &str) -> Vec<&str> {
    names_after(text, "crate::")
}

/// The code of a file without its comments and its unit tests (a `#[cfg(test)]` module at
/// its end): a module a comment names is not imported.
fn code(text: &str) -> String {
    let text = text.find("#[cfg(test)]").map_or(text, |i| &text[..i]);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
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
        let mut deps = imports(&text);
        // `super::x` in a top-level file (or a top-level folder's mod.rs) is `crate::x`
        if rel.components().count() == 1 || rel.ends_with(format!("{top}/mod.rs")) {
            deps.extend(names_after(&text, "super::"));
        }
        for dep in deps {
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

#[test]
fn the_import_scan_sees_grouped_imports() {
    assert_eq!(
        imports("use crate::{data::layout::X, run::{plan, files}, error};"),
        ["data", "run", "error"]
    );
    assert_eq!(
        names_after("use super::{Item, writer::{a, b}};", "super::"),
        ["Item", "writer"]
    );
}

/// The modules of each folder import one another without a circle (`mod.rs`, the folder
/// itself, left out: it ties its files together).
#[test]
fn no_folder_has_a_circle_of_imports() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut folders: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for f in files {
        if f.file_name().is_some_and(|n| n != "mod.rs") && f.parent() != Some(src.as_path()) {
            folders
                .entry(f.parent().unwrap().to_path_buf())
                .or_default()
                .push(f);
        }
    }
    let mut circles = Vec::new();
    for (folder, members) in &folders {
        let stem = |p: &PathBuf| p.file_stem().unwrap().to_string_lossy().into_owned();
        let names: Vec<String> = members.iter().map(stem).collect();
        let path = folder
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('/', "::");
        let edges: Vec<Vec<usize>> = members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(m).unwrap();
                let code = code(&text);
                let mut used = names_after(&code, "super::");
                used.extend(names_after(&code, &format!("crate::{path}::")));
                let mut to: Vec<usize> = (names.iter().enumerate())
                    .filter(|(_, n)| used.contains(&n.as_str()) && **n != stem(m))
                    .map(|(i, _)| i)
                    .collect();
                to.dedup();
                to
            })
            .collect();
        // a circle: a module that reaches itself again
        for start in 0..names.len() {
            let mut seen = vec![false; names.len()];
            let mut stack = edges[start].clone();
            while let Some(n) = stack.pop() {
                if n == start {
                    circles.push(format!("{path}::{}", names[start]));
                    break;
                }
                if !std::mem::replace(&mut seen[n], true) {
                    stack.extend(&edges[n]);
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules in a circle of imports: {circles:?}"
    );
}
