//! Payloads of the `diagnostics` channel (`:ex_esdb_diagnostics`): debug
//! traces and performance analyses for troubleshooting.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::alerts::Severity;
use super::kind::message_kinds;

message_kinds! {
    DebugTrace => Diagnostics,
    PerformanceAnalysis => Diagnostics,
}

/// The kind of performance analysis performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AnalysisType {
    /// Search for the slowest stage of a pipeline.
    Bottleneck,
    /// Search for memory that grows without being released.
    MemoryLeak,
    /// Search for code paths using the most CPU.
    CpuHotspot,
    /// Analysis of disk and network I/O.
    IoAnalysis,
}

impl AnalysisType {
    /// The snake_case wire name (`"memory_leak"`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A debug trace of one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugTrace {
    /// Id correlating the spans of one traced operation.
    pub trace_id: String,
    /// The component that produced the trace.
    pub component: String,
    /// The operation traced, e.g. `"append_events"`.
    pub operation: String,
    /// Captured state: arguments, intermediate values, timings.
    #[serde(default)]
    pub trace_data: Map<String, Value>,
    /// Stack trace, when the trace was taken on an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    /// How long the operation took, in milliseconds, if it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Additional context.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The result of a performance analysis of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerformanceAnalysis {
    /// Unique id of the analysis run.
    pub analysis_id: String,
    /// The component analysed.
    pub component: String,
    /// What kind of analysis was run.
    pub analysis_type: AnalysisType,
    /// What the analysis found, one finding per entry.
    #[serde(default)]
    pub findings: Vec<String>,
    /// Suggested remedies, one per entry.
    #[serde(default)]
    pub recommendations: Vec<String>,
    /// How serious the findings are overall.
    pub severity: Severity,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_trace_round_trips() {
        let mut trace_data = Map::new();
        trace_data.insert("batch".to_owned(), json!(3));
        let msg = DebugTrace {
            trace_id: "t-1".to_owned(),
            component: "store".to_owned(),
            operation: "append_events".to_owned(),
            trace_data,
            stack_trace: None,
            duration_ms: Some(12),
            metadata: Map::new(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["duration_ms"], 12);
        assert_eq!(json["trace_data"]["batch"], 3);
        assert!(json.get("stack_trace").is_none());
        assert_eq!(serde_json::from_value::<DebugTrace>(json).unwrap(), msg);
    }

    #[test]
    fn performance_analysis_round_trips() {
        let msg = PerformanceAnalysis {
            analysis_id: "an-1".to_owned(),
            component: "projector".to_owned(),
            analysis_type: AnalysisType::MemoryLeak,
            findings: vec!["heap grows 1 MiB/min".to_owned()],
            recommendations: vec!["bound the cache".to_owned()],
            severity: Severity::Warning,
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["analysis_type"], "memory_leak");
        assert_eq!(json["severity"], "warning");
        assert_eq!(
            serde_json::from_value::<PerformanceAnalysis>(json).unwrap(),
            msg
        );
        assert_eq!(AnalysisType::CpuHotspot.to_string(), "cpu_hotspot");
    }

    #[test]
    fn unknown_fields_are_ignored_and_optional_ones_defaulted() {
        let trace = serde_json::from_value::<DebugTrace>(json!({
            "trace_id": "t", "component": "c", "operation": "o", "span": 1
        }))
        .unwrap();
        assert_eq!(trace.operation, "o");
        assert_eq!((trace.stack_trace, trace.duration_ms), (None, None));
        assert!(trace.trace_data.is_empty() && trace.metadata.is_empty());
        let err = serde_json::from_value::<DebugTrace>(json!({
            "trace_id": "t", "component": "c", "span": 1
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("missing field `operation`"),
            "{err}"
        );
    }
}
