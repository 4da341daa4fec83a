//! The integration tests of exesdb-host, one module per area, in one test
//! binary (each test binary links wasmtime again, so one binary is one
//! link). Run one area with `cargo test -p exesdb-host --test suite
//! <module>::`, e.g. `dashboard::`.

mod common;

mod admin_cli;
mod api_channels;
mod api_metrics;
mod api_stores;
mod cli;
mod dashboard;
mod operator_faults;
mod quick_tour;
mod scaffold;
mod store_cli;

#[test]
fn one_test_binary_holding_every_file() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    exesdb_tests::suite::assert_one_binary(&tests);
}
