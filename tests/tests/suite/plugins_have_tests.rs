//! Every plugin in `plugins/` (Rust crates, `python/`, `js/`) has a test file of its own,
//! `tests/tests/plugin_<name>.rs`: a new plugin without one fails the run.

#[test]
fn every_plugin_crate_has_a_test_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let missing: Vec<String> = exesdb_tests::guests::all()
        .map(|(name, _, _)| format!("plugin_{}.rs", name.replace('-', "_")))
        .filter(|file| !dir.join(file).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "plugins without a test file in {}: {missing:?}",
        dir.display()
    );
    assert!(
        exesdb_tests::guests::all().count() >= 4,
        "the example and test plugins were found"
    );
    assert!(exesdb_host::artifacts::BUNDLED
        .iter()
        .all(|b| !b.name.starts_with("test-")));
}
