//! The guest's source language, read from the `producers` custom sections
//! (WebAssembly tool conventions: fields `language`, `processed-by`, `sdk`)
//! of a component and of the core modules and components nested in it.
//!
//! What the toolchains leave there (the components built in this repository):
//!
//! - **Rust** (`cargo` for `wasm32-wasip2`): the guest's core module says
//!   `language: Rust, C11` (C11 from wasi-libc); the component and the WASI
//!   adapter modules around it only `processed-by: wit-component`.
//! - **Python** (componentize-py 0.25): no `language` of its own — the only
//!   language listed is the WASI adapter's `Rust`, the interpreter
//!   (`libpython3.*.so`) carries no producers section — and the component
//!   says `processed-by: wit-component, component-init-transform`
//!   (componentize-py's pre-initialiser, the `component-init` crate).
//! - **JavaScript** (ComponentizeJS 0.23, StarlingMonkey): the component
//!   says `language: JavaScript` and `processed-by: ComponentizeJS`; the
//!   engine's module inside says `language: C11, Rust, C_plus_plus_14`.
//!
//! So a toolchain that embeds an interpreter or engine is recognised by its
//! name in `processed-by` or `sdk` first (anywhere), and only then is the
//! language taken from the `language` fields, the outermost section first.

use wasmparser::{Chunk, KnownCustom, Parser, Payload, ProducersSectionReader};

/// What is reported when no producers section names a language.
pub(crate) const UNKNOWN: &str = "unknown";

/// Toolchains that run the guest on an interpreter or engine written in
/// another language, by a (lowercased) name they leave in `processed-by` or
/// `sdk`, and the guest language they stand for.
const RUNTIMES: &[(&str, &str)] = &[
    ("componentize-py", "python"),
    // componentize-py's pre-initialiser: the only trace componentize-py
    // 0.25 leaves in the producers sections.
    ("component-init-transform", "python"),
    ("componentizejs", "javascript"),
    ("componentize-js", "javascript"),
    ("starlingmonkey", "javascript"),
];

/// One `producers` section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Section {
    /// 0 for the outermost component (or module), 1 for a module or
    /// component inside it, and so on.
    depth: usize,
    /// The `language` entries, in order.
    languages: Vec<String>,
    /// The `processed-by` and `sdk` entries.
    tools: Vec<String>,
}

/// The guest's source language: `rust`, `python`, `javascript`, another
/// producer's language name lowercased (`c11`, `go`, …), or [`UNKNOWN`].
/// Bytes that do not parse give what their readable part says.
pub(crate) fn language(wasm: &[u8]) -> String {
    decide(&sections(wasm))
}

/// Every `producers` section of `wasm` and of the modules and components
/// nested in it, in the order they appear. Code sections are skipped, not
/// parsed; parsing stops at the first error.
fn sections(wasm: &[u8]) -> Vec<Section> {
    let mut found = Vec::new();
    let mut outer: Vec<Parser> = Vec::new();
    let mut parser = Parser::new(0);
    let mut data = wasm;
    while let Ok(Chunk::Parsed { payload, consumed }) = parser.parse(data, true) {
        data = &data[consumed..];
        match payload {
            Payload::ModuleSection { parser: inner, .. }
            | Payload::ComponentSection { parser: inner, .. } => {
                outer.push(std::mem::replace(&mut parser, inner));
            }
            Payload::CodeSectionStart { size, .. } => {
                let Some(rest) = usize::try_from(size).ok().and_then(|n| data.get(n..)) else {
                    break;
                };
                parser.skip_section();
                data = rest;
            }
            Payload::CustomSection(custom) => {
                if let KnownCustom::Producers(reader) = custom.as_known() {
                    found.push(section(outer.len(), reader));
                }
            }
            Payload::End(_) => match outer.pop() {
                Some(p) => parser = p,
                None => break,
            },
            _ => {}
        }
    }
    found
}

/// The entries of one producers section (as far as they parse).
fn section(depth: usize, reader: ProducersSectionReader<'_>) -> Section {
    let mut s = Section {
        depth,
        ..Section::default()
    };
    for field in reader.into_iter().map_while(Result::ok) {
        let names = field
            .values
            .into_iter()
            .map_while(Result::ok)
            .map(|v| v.name.to_owned());
        match field.name {
            "language" => s.languages.extend(names),
            _ => s.tools.extend(names),
        }
    }
    s
}

/// Whether `language` is C or C++ (`C`, `C11`, `C_plus_plus_14`, …), which
/// wasi-libc and language runtimes add beside the guest's own language.
fn is_c_family(language: &str) -> bool {
    let l = language.to_ascii_lowercase();
    let Some(rest) = l.strip_prefix('c') else {
        return false;
    };
    rest.is_empty()
        || rest.starts_with("++")
        || rest.starts_with("_plus_plus")
        || rest.chars().all(|c| c.is_ascii_digit())
}

/// The language the sections stand for (see the module docs).
fn decide(sections: &[Section]) -> String {
    let runtime = sections.iter().flat_map(|s| &s.tools).find_map(|tool| {
        let tool = tool.to_ascii_lowercase();
        RUNTIMES
            .iter()
            .find(|(name, _)| tool == *name)
            .map(|(_, language)| *language)
    });
    if let Some(language) = runtime {
        return language.to_owned();
    }
    let mut by_depth: Vec<&Section> = sections
        .iter()
        .filter(|s| !s.languages.is_empty())
        .collect();
    // Stable: sections of one depth keep their order.
    by_depth.sort_by_key(|s| s.depth);
    by_depth
        .first()
        .and_then(|s| {
            s.languages
                .iter()
                .find(|l| !is_c_family(l))
                .or(s.languages.first())
        })
        .map_or_else(|| UNKNOWN.to_owned(), |l| l.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn string(s: &str, out: &mut Vec<u8>) {
        leb(s.len(), out);
        out.extend_from_slice(s.as_bytes());
    }

    /// A section with its id and size.
    fn sec(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb(body.len(), &mut out);
        out.extend_from_slice(body);
        out
    }

    /// A `producers` custom section with `(field, [names])`.
    fn producers(fields: &[(&str, &[&str])]) -> Vec<u8> {
        let mut body = Vec::new();
        string("producers", &mut body);
        leb(fields.len(), &mut body);
        for (field, names) in fields {
            string(field, &mut body);
            leb(names.len(), &mut body);
            for name in *names {
                string(name, &mut body);
                string("1.0", &mut body);
            }
        }
        sec(0, &body)
    }

    fn module(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        sections.iter().for_each(|s| out.extend_from_slice(s));
        out
    }

    fn component(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        sections.iter().for_each(|s| out.extend_from_slice(s));
        out
    }

    /// A module (or component) nested in a component.
    fn nested_module(m: &[u8]) -> Vec<u8> {
        sec(1, m)
    }

    fn nested_component(c: &[u8]) -> Vec<u8> {
        sec(4, c)
    }

    /// A minimal code section: one function with no locals, `end`.
    fn code_section() -> Vec<Vec<u8>> {
        vec![
            sec(1, &[1, 0x60, 0, 0]), // type: () -> ()
            sec(3, &[1, 0]),          // function 0 of type 0
            sec(10, &[1, 2, 0, 0x0b]),
        ]
    }

    #[test]
    fn a_rust_module_inside_the_component_names_rust() {
        let wasm = component(&[
            nested_module(&module(&[producers(&[
                ("language", &["Rust", "C11"]),
                ("processed-by", &["rustc", "clang", "wit-component"]),
            ])])),
            nested_module(&module(&[producers(&[(
                "processed-by",
                &["wit-component"],
            )])])),
            producers(&[("processed-by", &["wit-component"])]),
        ]);
        assert_eq!(language(&wasm), "rust");
    }

    #[test]
    fn c_beside_another_language_is_the_c_runtime() {
        let wasm = module(&[producers(&[("language", &["C11", "Rust"])])]);
        assert_eq!(language(&wasm), "rust");
        let c = module(&[producers(&[("language", &["C11"])])]);
        assert_eq!(language(&c), "c11");
        let cpp = module(&[producers(&[("language", &["C_plus_plus_14", "C11"])])]);
        assert_eq!(language(&cpp), "c_plus_plus_14");
    }

    #[test]
    fn componentize_py_is_python_despite_the_rust_adapter() {
        // As componentize-py 0.25 builds it: the WASI adapter is the only
        // module with a language.
        let wasm = component(&[
            nested_module(&module(&[producers(&[(
                "processed-by",
                &["wit-component"],
            )])])),
            nested_module(&module(&[producers(&[
                ("language", &["Rust"]),
                ("processed-by", &["rustc"]),
            ])])),
            producers(&[(
                "processed-by",
                &["wit-component", "component-init-transform"],
            )]),
        ]);
        assert_eq!(language(&wasm), "python");
        let named = component(&[producers(&[("sdk", &["componentize-py"])])]);
        assert_eq!(language(&named), "python");
    }

    #[test]
    fn componentize_js_is_javascript_despite_the_engine_languages() {
        let engine = nested_module(&module(&[producers(&[(
            "language",
            &["C11", "Rust", "C_plus_plus_14"],
        )])]));
        let wasm = component(&[
            engine.clone(),
            producers(&[
                ("processed-by", &["wit-component", "ComponentizeJS"]),
                ("language", &["JavaScript"]),
            ]),
        ]);
        assert_eq!(language(&wasm), "javascript");
        let starling = component(&[engine, producers(&[("processed-by", &["StarlingMonkey"])])]);
        assert_eq!(language(&starling), "javascript");
    }

    #[test]
    fn the_outermost_language_wins_and_other_languages_are_lowercased() {
        let wasm = component(&[
            nested_component(&component(&[nested_module(&module(&[producers(&[(
                "language",
                &["Rust"],
            )])]))])),
            producers(&[("language", &["Go"])]),
        ]);
        assert_eq!(language(&wasm), "go");
    }

    #[test]
    fn code_sections_are_skipped_and_sections_after_them_read() {
        let mut sections = code_section();
        sections.push(producers(&[("language", &["Zig"])]));
        let wasm = component(&[nested_module(&module(&sections))]);
        assert_eq!(language(&wasm), "zig");
    }

    #[test]
    fn no_language_or_no_wasm_is_unknown() {
        let tools_only = component(&[producers(&[("processed-by", &["wit-component"])])]);
        assert_eq!(language(&tools_only), UNKNOWN);
        assert_eq!(language(&component(&[])), UNKNOWN);
        assert_eq!(language(b"not wasm"), UNKNOWN);
        assert_eq!(language(&[]), UNKNOWN);
        // A truncated file: what was read before the cut still counts.
        let mut cut = component(&[producers(&[("language", &["Rust"])])]);
        cut.extend_from_slice(&[1, 0x7f]);
        assert_eq!(language(&cut), "rust");
    }

    /// The real components: the bundled Rust plugins (host/build.rs) and the
    /// Python and JavaScript test plugins (tests/build.rs).
    #[test]
    fn the_built_plugins_report_their_source_language() {
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for (name, path, manifest) in exesdb_tests::guests::all() {
            let expected = if manifest.contains("/plugins/python/") {
                "python"
            } else if manifest.contains("/plugins/js/") {
                "javascript"
            } else {
                "rust"
            };
            let wasm = std::fs::read(path).unwrap();
            assert_eq!(language(&wasm), expected, "{name} ({path})");
            *seen.entry(expected).or_default() += 1;
        }
        assert_eq!(seen["rust"], crate::artifacts::ALL.len());
        assert!(seen["python"] > 0 && seen["javascript"] > 0, "{seen:?}");
    }
}
