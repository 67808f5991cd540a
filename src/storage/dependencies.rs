//! Keeps the modules of `storage` depending on each other one way only: a test
//! reads their sources, draws the graph of `crate::storage::<module>` paths
//! (test code left out) and fails on any cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module of `storage` -> the top-level modules its code names.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("storage sources readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(root).expect("under the root");
            let module = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .map(|name| name.trim_end_matches(".rs").to_string())
                .expect("a module name");
            if module == "mod" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source readable");
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            sources.entry(module).or_default().push_str(code);
        }
    }
    const PREFIX: &str = "crate::storage::";
    sources
        .iter()
        .map(|(module, code)| {
            let named = code
                .match_indices(PREFIX)
                .filter_map(|(at, _)| {
                    let rest = &code[at + PREFIX.len()..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let name = &rest[..end];
                    (name != module && sources.contains_key(name)).then(|| name.to_string())
                })
                .collect();
            (module.clone(), named)
        })
        .collect()
}

/// A cycle through `from`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut path = vec![from.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().expect("the path starts at `from`").clone();
        for next in &graph[&last] {
            if next == from {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, from, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, from, &mut path, &mut seen).then_some(path)
}

#[test]
fn storage_modules_depend_on_each_other_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage");
    let graph = graph(&root);
    assert!(graph.contains_key("segment") && graph["log"].contains("segment"));
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            panic!("import cycle in src/storage: {}", cycle.join(" -> "));
        }
    }
}
