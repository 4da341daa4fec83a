//! The Python `threshold-alerter` plugin (componentize-py), loaded as a real
//! component: alerts when store throughput crosses its threshold.

use crate::threshold;

const NAME: &str = "threshold-alerter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_once_per_crossing_of_the_threshold() {
    threshold::alerts_once_per_crossing_of_the_threshold(NAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_checked_at_init() {
    threshold::configuration_is_checked_at_init(NAME).await;
}
