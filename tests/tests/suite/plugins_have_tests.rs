//! Every plugin in `plugins/` (Rust crates, `python/`, `js/`) has a test module of its own,
//! `tests/tests/suite/plugin_<name>.rs`, declared in the suite's `main.rs`: a new plugin
//! without one fails the run.

use std::path::Path;

#[test]
fn every_plugin_crate_has_a_test_file() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite");
    let declared = exesdb_tests::suite::modules(&suite);
    let missing: Vec<String> = exesdb_tests::guests::all()
        .map(|(name, _, _)| format!("plugin_{}", name.replace('-', "_")))
        .filter(|module| {
            !suite.join(format!("{module}.rs")).is_file() || !declared.contains(module)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "plugins without a test module (a file in {} declared in its main.rs): {missing:?}",
        suite.display()
    );
    assert!(
        exesdb_tests::guests::all().count() >= 4,
        "the example and test plugins were found"
    );
    assert!(exesdb_host::artifacts::BUNDLED
        .iter()
        .all(|b| !b.name.starts_with("test-")));
}
