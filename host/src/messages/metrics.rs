//! Payloads of the `metrics` channel (`:ex_esdb_metrics`): performance
//! measurements, throughput, latency and resource usage.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::kind::message_kinds;

message_kinds! {
    PerformanceMetric => Metrics,
    ThroughputMetric => Metrics,
    LatencyMetric => Metrics,
    ResourceUsage => Metrics,
}

/// Which statistic of a latency distribution a [`LatencyMetric`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Percentile {
    /// Median (50th percentile).
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Largest observed value.
    Max,
    /// Smallest observed value.
    Min,
    /// Arithmetic mean.
    Avg,
}

impl Percentile {
    /// The snake_case wire name (`"p99"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A single named measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceMetric {
    /// Name of the metric, e.g. `"append_batch_size"`.
    pub metric_name: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Unit of `value`, e.g. `"ms"`, `"bytes"`, `"events"`.
    pub unit: String,
    /// The component that produced the measurement.
    pub component: String,
    /// Extra dimensions for grouping (store, stream, …).
    #[serde(default)]
    pub tags: Map<String, Value>,
}

/// How many operations completed over a time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputMetric {
    /// The operation counted, e.g. `"append"`.
    pub operation: String,
    /// Operations completed in the window.
    pub count: u64,
    /// Length of the window, in milliseconds.
    pub duration_ms: u64,
    /// `count` per second over the window.
    pub rate_per_sec: f64,
}

/// A latency statistic for one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyMetric {
    /// The operation measured, e.g. `"read_stream"`.
    pub operation: String,
    /// The latency statistic, in milliseconds.
    pub latency_ms: f64,
    /// Which statistic `latency_ms` is.
    pub percentile: Percentile,
    /// Number of samples the statistic was computed from.
    pub sample_count: u64,
}

/// Resources held by one component at the time of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// The component (subsystem, store or plugin) being reported on.
    pub component: String,
    /// CPU use as a percentage of one core (may exceed 100 on several cores).
    pub cpu_percent: f64,
    /// Resident memory, in bytes.
    pub memory_bytes: u64,
    /// Disk space used, in bytes.
    pub disk_bytes: u64,
    /// Open file descriptors, sockets and similar handles.
    pub open_handles: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn performance_metric_round_trips() {
        let mut tags = Map::new();
        tags.insert("store".to_owned(), json!("reg_gh"));
        let msg = PerformanceMetric {
            metric_name: "append_batch_size".to_owned(),
            value: 12.5,
            unit: "events".to_owned(),
            component: "store".to_owned(),
            tags,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["value"], 12.5);
        assert_eq!(json["tags"]["store"], "reg_gh");
        assert_eq!(
            serde_json::from_value::<PerformanceMetric>(json).unwrap(),
            msg
        );
    }

    #[test]
    fn throughput_metric_round_trips() {
        let msg = ThroughputMetric {
            operation: "append".to_owned(),
            count: 500,
            duration_ms: 1000,
            rate_per_sec: 500.0,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["count"], 500);
        assert_eq!(json["rate_per_sec"], 500.0);
        assert_eq!(
            serde_json::from_value::<ThroughputMetric>(json).unwrap(),
            msg
        );
    }

    #[test]
    fn latency_metric_round_trips() {
        let msg = LatencyMetric {
            operation: "read_stream".to_owned(),
            latency_ms: 3.25,
            percentile: Percentile::P99,
            sample_count: 1000,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["percentile"], "p99");
        assert_eq!(serde_json::from_value::<LatencyMetric>(json).unwrap(), msg);
        assert_eq!(Percentile::Avg.to_string(), "avg");
    }

    #[test]
    fn resource_usage_round_trips_and_ignores_unknown_fields() {
        let msg = ResourceUsage {
            component: "plugin:audit".to_owned(),
            cpu_percent: 12.0,
            memory_bytes: 1 << 20,
            disk_bytes: 0,
            open_handles: 7,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["memory_bytes"], 1_048_576);
        assert_eq!(serde_json::from_value::<ResourceUsage>(json).unwrap(), msg);

        let latency = serde_json::from_value::<LatencyMetric>(json!({
            "operation": "x", "latency_ms": 1.0, "percentile": "p50",
            "sample_count": 1, "p999": 2.0
        }))
        .unwrap();
        assert_eq!(latency.percentile, Percentile::P50);
        assert_eq!(latency.sample_count, 1);
        assert!(serde_json::from_value::<LatencyMetric>(json!({
            "operation": "x", "latency_ms": 1.0, "percentile": "p999", "sample_count": 1
        }))
        .is_err());
    }
}
