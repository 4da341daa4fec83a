//! The layering check: the crate's modules form layers, lowest first, and a
//! module may name (through `crate::…` or `$crate::…`) only modules of a
//! lower layer. Modules of one layer do not name each other. A new top-level
//! module fails [`every_module_has_a_layer`] until it is placed in [`ORDER`].
//!
//! No arrow points up any more: [`KNOWN`], the list of upward arrows still
//! allowed, is empty, so the check fails on every upward arrow (and on a
//! [`KNOWN`] entry that no longer occurs, so the list can only shrink). A
//! lower layer that needs something from a higher one defines a trait that
//! the higher one implements and `host` wires (as `health::StoreTrackers`,
//! `health::ComponentReport` and `metrics::StoreCollectors`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const ORDER: &[&[&str]] = &[
    &["messages", "artifacts"],
    &["bus"],
    &["integration"],
    &["store"],
    &["logging"],
    &["health"],
    &["metrics"],
    &["runtime"],
    &["emitter"],
    &["reload"],
    &["api"],
    &["config"],
    &["host"],
    &["cli"],
];

/// Upward arrows still allowed, as `(file under src/, module it names)`:
/// none.
const KNOWN: &[(&str, &str)] = &[];

/// The layer of a top-level module, or `None` when it has none.
fn layer(module: &str) -> Option<usize> {
    ORDER.iter().position(|group| group.contains(&module))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `src` with comments, string literals and char literals replaced by spaces
/// (newlines kept), so that only code remains.
fn blank(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = s.clone();
    let wipe = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let at = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, p)| s.get(i + k) == Some(&p))
    };
    let mut i = 0;
    while i < s.len() {
        let prev_ident = i > 0 && is_ident(s[i - 1]);
        if at(i, "//") {
            let end = s[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(s.len(), |n| i + n);
            wipe(&mut out, i, end);
            i = end;
        } else if at(i, "/*") {
            let (mut j, mut depth) = (i + 2, 1);
            while j < s.len() && depth > 0 {
                if at(j, "/*") {
                    depth += 1;
                    j += 2;
                } else if at(j, "*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if s[i] == 'r'
            && (!prev_ident
                || (i >= 1 && matches!(s[i - 1], 'b' | 'c') && (i < 2 || !is_ident(s[i - 2]))))
            && {
                let hashes = s[i + 1..].iter().take_while(|&&c| c == '#').count();
                s.get(i + 1 + hashes) == Some(&'"')
            }
        {
            // A raw string: r"…", r#"…"#, br#"…"#, cr"…".
            let hashes = s[i + 1..].iter().take_while(|&&c| c == '#').count();
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let mut j = i + 2 + hashes;
            while j < s.len() && !at(j, &close) {
                j += 1;
            }
            let end = (j + close.chars().count()).min(s.len());
            wipe(&mut out, i, end);
            i = end;
        } else if s[i] == '"' {
            // A string, byte string or C string (the prefix letter is code).
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(s.len());
            wipe(&mut out, i, end);
            i = end;
        } else if s[i] == '\'' {
            // A char or byte char literal; a lifetime or label is code.
            let end = if s.get(i + 1) == Some(&'\\') {
                let mut j = i + 3;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                Some(j + 1)
            } else if s.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    wipe(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// The top-level modules named by the `crate::…` and `$crate::…` paths of
/// blanked `code`, including each item of a `crate::{a, b::C}` group.
fn targets(code: &str) -> BTreeSet<String> {
    let s: Vec<char> = code.chars().collect();
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let ident_at = |i: usize| -> String { s[i..].iter().take_while(|&&c| is_ident(c)).collect() };
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < s.len() {
        let starts = ident_at(i) == "crate" && (i == 0 || !is_ident(s[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = skip_ws(i + "crate".len());
        i += "crate".len();
        if !(s.get(j) == Some(&':') && s.get(j + 1) == Some(&':')) {
            continue;
        }
        j = skip_ws(j + 2);
        if s.get(j) == Some(&'{') {
            // A group: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            while j < s.len() {
                match s[j] {
                    '{' => {
                        depth += 1;
                        j += 1;
                        item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' => {
                        item_start = depth == 1;
                        j += 1;
                    }
                    c if c.is_whitespace() => j += 1,
                    _ => {
                        let name = ident_at(j);
                        if item_start && !name.is_empty() && name != "self" {
                            found.insert(name.clone());
                        }
                        item_start = false;
                        j += name.chars().count().max(1);
                    }
                }
            }
        } else {
            let name = ident_at(j);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The `pub mod` declarations at the top level of lib.rs (blanked).
fn declared_modules(lib: &str) -> Vec<String> {
    let mut depth = 0i32;
    let mut names = Vec::new();
    for line in lib.lines() {
        if depth == 0 {
            if let Some(rest) = line.trim_start().strip_prefix("pub mod ") {
                let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
                names.push(name);
            }
        }
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
    }
    names
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under src/ with its module, but lib.rs, main.rs and this
/// file, as `(path relative to src/, module)`.
fn module_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = src_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    let mut files: Vec<(String, String)> = paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).unwrap().to_owned();
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            if ["lib.rs", "main.rs", "layers.rs"].contains(&rel_text.as_str()) {
                return None;
            }
            let first = rel.components().next()?.as_os_str().to_string_lossy();
            let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
            Some((rel_text, module))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_module_has_a_layer() {
    let lib = blank(&std::fs::read_to_string(src_dir().join("lib.rs")).unwrap());
    let declared = declared_modules(&lib);
    assert!(declared.iter().any(|m| m == "artifacts"), "{declared:?}");
    let unplaced: Vec<_> = declared.iter().filter(|m| layer(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer: {unplaced:?}; place each in layers::ORDER"
    );
    for (file, module) in module_files() {
        assert!(
            declared.contains(&module),
            "{file} belongs to `{module}`, not a `pub mod` of lib.rs"
        );
    }
}

#[test]
fn no_module_names_a_module_above_it() {
    let mut upward = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, module) in module_files() {
        let text = std::fs::read_to_string(src_dir().join(&file)).unwrap();
        let from = layer(&module).expect("placed by every_module_has_a_layer");
        for target in targets(&blank(&text)) {
            if target == module {
                continue;
            }
            match layer(&target) {
                None => problems.push(format!("{file} names `crate::{target}`, not in ORDER")),
                Some(to) if to >= from => {
                    upward.insert((file.clone(), target));
                }
                Some(_) => {}
            }
        }
    }
    for (file, target) in &upward {
        if !KNOWN.contains(&(file.as_str(), target.as_str())) {
            problems.push(format!(
                "{file} (`{}`) names `{target}`, which is not below it",
                file.split('/').next().unwrap().trim_end_matches(".rs")
            ));
        }
    }
    for (file, target) in KNOWN {
        if !upward.contains(&(file.to_string(), target.to_string())) {
            problems.push(format!(
                "KNOWN lists {file} → {target}, which no longer occurs: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_parser_sees_only_code() {
    let src = r####"
use crate::bus::Bus; // crate::health in a comment
/* crate::runtime /* nested crate::api */ still crate::cli */
use crate::{messages::Envelope, store::{Start, Selector},
    self, integration};
let a = "crate::host \" crate::cli";
let b = r#"crate::reload "# ; let c = br##"crate::api"##;
let d = b"crate::config"; let e = '"'; let f = '\''; let g = b'\\';
fn h<'a>(x: &'a str) -> &'a str { x } // 'a is a lifetime
let i = $crate::metrics::X; let j = mycrate::emitter::Y; pub(crate) fn k() {}
let l = crate :: logging::Z; let m = r#type; let n = crate::
    health::W;
"####;
    let code = blank(src);
    assert_eq!(code.lines().count(), src.lines().count(), "newlines kept");
    assert!(code.contains("fn h<'a>(x: &'a str)"), "{code}");
    let found: Vec<_> = targets(&code).into_iter().collect();
    assert_eq!(
        found,
        [
            "bus",
            "health",
            "integration",
            "logging",
            "messages",
            "metrics",
            "store"
        ]
    );
    assert_eq!(
        declared_modules(&blank(
            "pub mod a;\nmod b;\npub mod c {\n    pub mod d;\n}\n#[cfg(test)]\nmod e;\n"
        )),
        ["a", "c"]
    );
}
