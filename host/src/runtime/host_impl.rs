//! The `exesdb:plugin/host` interface: what a plugin may ask of the host.
//! Every call is checked against the plugin's grants; a refusal is an
//! `error::denied` for the guest plus an `AccessViolation` on `security`
//! and a failed `AccessLog` on `audit`.

use super::bindings::host_api::{self, PublishOptions};
use super::bindings::wit_types::{self, Channel as WitChannel, Error as WitError, LogLevel};
use super::state::{PluginContext, PluginState};
use super::violations::Report;
use crate::bus::{validate_topic, BusError, Channel};
use crate::integration::topics;
use crate::messages::alerts::Severity;
use crate::messages::audit::AccessLog;
use crate::messages::security::AccessViolation;
use crate::messages::{Envelope, MessageError};

/// The host's channel for a WIT channel.
pub(crate) fn channel_of(c: WitChannel) -> Channel {
    match c {
        WitChannel::Events => Channel::Events,
        WitChannel::System => Channel::System,
        WitChannel::Health => Channel::Health,
        WitChannel::Metrics => Channel::Metrics,
        WitChannel::Lifecycle => Channel::Lifecycle,
        WitChannel::Alerts => Channel::Alerts,
        WitChannel::Audit => Channel::Audit,
        WitChannel::Diagnostics => Channel::Diagnostics,
        WitChannel::Security => Channel::Security,
        WitChannel::Logging => Channel::Logging,
    }
}

/// The WIT channel for a host channel.
pub(crate) fn wit_channel(c: Channel) -> WitChannel {
    match c {
        Channel::Events => WitChannel::Events,
        Channel::System => WitChannel::System,
        Channel::Health => WitChannel::Health,
        Channel::Metrics => WitChannel::Metrics,
        Channel::Lifecycle => WitChannel::Lifecycle,
        Channel::Alerts => WitChannel::Alerts,
        Channel::Audit => WitChannel::Audit,
        Channel::Diagnostics => WitChannel::Diagnostics,
        Channel::Security => WitChannel::Security,
        Channel::Logging => WitChannel::Logging,
    }
}

/// A bus error as the guest sees it.
pub(crate) fn wit_error(e: BusError) -> WitError {
    let text = e.to_string();
    match e {
        BusError::Topic(_) => WitError::InvalidTopic(text),
        BusError::Message(MessageError::TooLarge { .. }) => WitError::TooLarge(text),
        BusError::Message(_) => WitError::InvalidPayload(text),
        BusError::Backpressure { .. } => WitError::Backpressure(text),
        _ => WitError::Failed(text),
    }
}

impl PluginState {
    /// Refuses a call outside the grants; counts it and reports it
    /// aggregated (see [`super::violations`]).
    fn deny(&self, action: &str, channel: Channel, topic: &str) -> WitError {
        let plugin = self.ctx.name();
        let resource = format!("{channel}:{topic}");
        let text = format!(
            "plugin `{plugin}` has no grant to {action} on channel `{channel}` topic `{topic}`"
        );
        let now = std::time::Instant::now();
        if let Some(report) = self
            .ctx
            .violations
            .record(now, action, GRANT_EXCEEDED, &resource)
        {
            report_refusal(&self.ctx, &report);
        }
        WitError::Denied(text)
    }
}

/// The `violation_type` of a call outside the manifest's grants.
const GRANT_EXCEEDED: &str = "grant_exceeded";

/// Reports `report` (one refusal, or the count of an interval's refusals of
/// one cause): one console line, one `AccessViolation` on `security` (its
/// `metadata.count` the number of refusals) and one failed `AccessLog` on
/// `audit`.
pub(crate) fn report_refusal(ctx: &PluginContext, report: &Report) {
    let plugin = ctx.name();
    let Report {
        action,
        violation_type,
        resource,
        count,
    } = report;
    if *count == 1 {
        tracing::warn!(
            class = "failure",
            plugin,
            "🛡️ ACCESS DENIED: plugin `{plugin}` has no grant to {action} on {resource}"
        );
    } else {
        tracing::warn!(
            class = "failure",
            plugin,
            "🛡️ ACCESS DENIED ×{count}: plugin `{plugin}` was refused {count} times to {action} in the last {} s (last: {resource})",
            super::violations::REPORT_INTERVAL.as_secs()
        );
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("plugin".into(), plugin.into());
    metadata.insert("count".into(), (*count).into());
    metadata.insert("total".into(), ctx.violations.total().into());
    ctx.report(
        &topics::access_violation(plugin),
        &AccessViolation {
            user_id: plugin.to_owned(),
            violation_type: violation_type.clone(),
            resource: resource.clone(),
            action: action.clone(),
            source_ip: None,
            severity: Severity::Warning,
            metadata,
        },
    );
    let resource_id = if *count == 1 {
        resource.clone()
    } else {
        format!("{resource} (and {} more refusals)", count - 1)
    };
    ctx.report(
        &topics::audit_access_log("plugin"),
        &AccessLog {
            user_id: plugin.to_owned(),
            resource_type: "plugin".into(),
            resource_id,
            action: action.clone(),
            success: false,
            duration_ms: 0,
            source_ip: None,
            user_agent: Some(format!("wasm-plugin/{plugin}")),
        },
    );
}

impl wit_types::Host for PluginState {}

impl host_api::Host for PluginState {
    fn publish(
        &mut self,
        channel: WitChannel,
        topic: String,
        kind: String,
        payload: String,
        options: Option<PublishOptions>,
    ) -> Result<String, WitError> {
        let channel = channel_of(channel);
        validate_topic(&topic).map_err(|e| WitError::InvalidTopic(e.to_string()))?;
        if !self.ctx.manifest.may_publish(channel, &topic) {
            return Err(self.deny("publish", channel, &topic));
        }
        crate::messages::check_size(
            &kind,
            payload.len(),
            self.ctx.bus.config().max_payload_bytes,
        )
        .map_err(|e| WitError::TooLarge(e.to_string()))?;
        // The guest's own text is what other plugins receive: no re-rendering.
        let mut env = Envelope::from_json_text(channel, topic, kind, payload, self.ctx.bus.node())
            .map_err(|e| WitError::InvalidPayload(e.to_string()))?;
        if let Some(o) = options {
            env.correlation_id = o.correlation_id;
            env.causation_id = o.causation_id;
        }
        let id = env.id.to_string();
        self.ctx.send(env).map_err(wit_error)?;
        Ok(id)
    }

    fn subscribe(&mut self, channel: WitChannel, pattern: String) -> Result<(), WitError> {
        let channel = channel_of(channel);
        if !self.ctx.manifest.may_subscribe(channel) {
            return Err(self.deny("subscribe", channel, &pattern));
        }
        let Some(sub) = &self.ctx.subscriber else {
            return Err(WitError::Failed(
                "this plugin's world receives no messages".into(),
            ));
        };
        sub.subscribe(channel, &pattern)
            .map(drop)
            .map_err(wit_error)
    }

    fn unsubscribe(&mut self, channel: WitChannel, pattern: String) -> Result<bool, WitError> {
        let channel = channel_of(channel);
        let Some(sub) = &self.ctx.subscriber else {
            return Ok(false);
        };
        sub.unsubscribe(channel, &pattern).map_err(wit_error)
    }

    fn log(&mut self, level: LogLevel, message: String) {
        let plugin = self.ctx.name();
        let message = self.ctx.secrets.redact(&message);
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warning => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        self.ctx.manifest.config_json()
    }

    fn plugin_name(&mut self) -> String {
        self.ctx.name().to_owned()
    }

    fn now_ms(&mut self) -> u64 {
        crate::bus::now_ms()
    }
}

/// Contract 0.1.0's `host`: the same functions as 0.2.0's, delegated.
impl super::bindings::v0_1::host_api::Host for PluginState {
    fn publish(
        &mut self,
        channel: WitChannel,
        topic: String,
        kind: String,
        payload: String,
        options: Option<super::bindings::v0_1::host_api::PublishOptions>,
    ) -> Result<String, WitError> {
        let options = options.map(|o| PublishOptions {
            correlation_id: o.correlation_id,
            causation_id: o.causation_id,
        });
        host_api::Host::publish(self, channel, topic, kind, payload, options)
    }

    fn subscribe(&mut self, channel: WitChannel, pattern: String) -> Result<(), WitError> {
        host_api::Host::subscribe(self, channel, pattern)
    }

    fn unsubscribe(&mut self, channel: WitChannel, pattern: String) -> Result<bool, WitError> {
        host_api::Host::unsubscribe(self, channel, pattern)
    }

    fn log(&mut self, level: LogLevel, message: String) {
        host_api::Host::log(self, level, message);
    }

    fn config(&mut self) -> String {
        host_api::Host::config(self)
    }

    fn plugin_name(&mut self) -> String {
        host_api::Host::plugin_name(self)
    }

    fn now_ms(&mut self) -> u64 {
        host_api::Host::now_ms(self)
    }
}
