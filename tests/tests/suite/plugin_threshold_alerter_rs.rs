//! The Rust `threshold-alerter-rs` plugin: the same
//! behaviour tests as its Python and JavaScript twins.

use crate::threshold;

const NAME: &str = "threshold-alerter-rs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_once_per_crossing_of_the_threshold() {
    threshold::alerts_once_per_crossing_of_the_threshold(NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_checked_at_init() {
    threshold::configuration_is_checked_at_init(NAME).await;
}
