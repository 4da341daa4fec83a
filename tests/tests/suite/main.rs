//! The black-box integration tests of exesdb-host, one module per area, in
//! one test binary (each test binary links wasmtime again, so one binary is
//! one link). Run one area with `cargo test -p exesdb-tests --test suite
//! <module>::`, e.g. `plugin_test_guest::`.
//!
//! Every plugin in `plugins/` has a module `plugin_<name>` here
//! ([`plugins_have_tests`] checks it). The tests share one process: a test
//! that needs process-wide state of its own (the global `tracing`
//! subscriber, an environment variable) runs itself again in a child process
//! with [`common::ran_alone`].

mod common;
mod threshold;

mod bus;
mod console_lines;
mod emitter;
mod health_breaker;
mod integration_helpers;
mod log_summary;
mod manifest_docs;
mod monitoring;
mod outbound;
mod outbound_tls;
mod plugin_alert_escalator;
mod plugin_alert_notifier;
mod plugin_alert_webhook_js;
mod plugin_health_console;
mod plugin_json_log_formatter;
mod plugin_logfmt_formatter;
mod plugin_stream_projection;
mod plugin_test_contract_0_1;
mod plugin_test_guest;
mod plugin_text_log_formatter;
mod plugin_threshold_alerter;
mod plugin_threshold_alerter_js;
mod plugin_threshold_alerter_rs;
mod plugin_webhook_delivery;
mod plugins_have_tests;
mod reload;
mod runtime_output;
mod state_secrets;
mod store;

#[test]
fn one_test_binary_holding_every_file() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    exesdb_tests::suite::assert_one_binary(&tests);
}
