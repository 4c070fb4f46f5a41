//! The top-level modules of this crate depend on each other without a cycle: read from the
//! sources (`crate::<module>` in code, not in comments or test code), as a newcomer would
//! read the imports. A cycle is reported with the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comment lines and without its `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module → the other top-level modules its code names.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |p: &Path| {
        let rel = p.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("component");
        let name = first.as_os_str().to_string_lossy();
        name.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut deps: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let name = file.file_name().expect("name").to_string_lossy();
        // Crate roots and test-only files (tests.rs, *_tests.rs, this check) are not layers.
        if ["lib", "main", "layering"].contains(&from.as_str()) || name.ends_with("tests.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let to: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if to != from && modules.contains(&to) {
                let rel = file
                    .strip_prefix(src)
                    .expect("under src")
                    .display()
                    .to_string();
                deps.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel);
            }
        }
    }
    deps
}

/// A path from `to` back to `from` (then `from → to` closes a cycle), if any.
fn path_back(
    deps: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut stack = vec![vec![to.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty").clone();
        if last == from {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in deps.get(&last).into_iter().flat_map(|m| m.keys()) {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let deps = graph(&src);
    assert!(
        deps.contains_key("api"),
        "the scan found the modules: {deps:?}"
    );
    let mut cycles = Vec::new();
    for (from, tos) in &deps {
        for (to, files) in tos {
            if let Some(back) = path_back(&deps, from, to) {
                cycles.push(format!("{from} → {} (via {files:?})", back.join(" → ")));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_check_sees_a_cycle() {
    let mut deps: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let edge =
        |deps: &mut BTreeMap<String, BTreeMap<String, BTreeSet<String>>>, a: &str, b: &str| {
            deps.entry(a.into())
                .or_default()
                .entry(b.into())
                .or_default();
        };
    edge(&mut deps, "api", "routing");
    edge(&mut deps, "routing", "raft");
    assert_eq!(path_back(&deps, "api", "routing"), None);
    edge(&mut deps, "raft", "api");
    assert_eq!(
        path_back(&deps, "api", "routing"),
        Some(vec!["routing".into(), "raft".into(), "api".into()])
    );
}
