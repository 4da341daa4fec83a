//! How the plugin set reports what happened to a plugin, beyond the
//! console lines of each operation:
//!
//! - a failure ([`Plugins::report_failure`]): one console line and an
//!   error `SystemAlert` on `alerts`, with the full error text and the
//!   plugin's name in its metadata. A plugin that could not be loaded at
//!   start-up ([`Plugins::report_not_loaded`]) and a rejected change
//!   (`reject`: a reload that failed, or files the watcher could not read,
//!   while the running version, if any, stays) are the two kinds;
//! - a lifecycle operation done (`audit`): an `AdminAction` on `audit`
//!   naming the [`Actor`] who asked.
//!
//! Both are published without waiting (`publish_typed_now`): a full bus
//! costs the report, never the operation.

use super::{Actor, Plugins};
use crate::runtime::{one_line, PluginError};

impl Plugins {
    /// Reports a rejected load or replacement: one console line and a
    /// `SystemAlert` (with the full error text in its metadata, and the
    /// plugin's name — `plugin` when the error itself names none, as for a
    /// manifest that does not parse).
    pub(crate) fn reject(&self, err: &PluginError, plugin: Option<&str>) {
        self.report_failure(
            err,
            plugin,
            "❌ PLUGIN CHANGE REJECTED",
            "Plugin change rejected",
        );
    }

    /// Reports a plugin the host could not load at start-up (bundled or from
    /// the plugins directory) the way a rejected change is reported: a `❌ PLUGIN NOT LOADED` line and a `SystemAlert`
    /// titled `Plugin failed to load`.
    pub fn report_not_loaded(&self, err: &PluginError) {
        self.report_failure(err, None, "❌ PLUGIN NOT LOADED", "Plugin failed to load");
    }

    /// Reports `err`: `line` and the error on the console, and a
    /// `SystemAlert` titled `title` (the plugin's name from the error, or
    /// else `plugin`).
    fn report_failure(&self, err: &PluginError, plugin: Option<&str>, line: &str, title: &str) {
        tracing::error!(class = "failure", "{line}: {}", one_line(&err.to_string()));
        let mut alert = crate::messages::alerts::SystemAlert::new(
            uuid::Uuid::now_v7().to_string(),
            crate::messages::alerts::Severity::Error,
            crate::messages::alerts::AlertCategory::System,
            title,
            err.to_string(),
            self.bus.node(),
        );
        alert
            .metadata
            .insert("error".into(), err.to_string().into());
        if let Some(p) = err.plugin().or(plugin) {
            alert.metadata.insert("plugin".into(), p.into());
        }
        let topic = crate::integration::topics::system_alert(alert.category);
        if let Err(e) = self.bus.publish_typed_now(&topic, &alert) {
            tracing::error!("alert `{title}` not published: {e}");
        }
    }

    /// Records an operation on `audit` as an `AdminAction` by `actor`.
    pub(super) fn audit(&self, actor: Actor<'_>, action_type: &str, plugin: &str, version: &str) {
        let mut details = serde_json::Map::new();
        details.insert("plugin".into(), plugin.into());
        details.insert("version".into(), version.into());
        details.insert("node".into(), self.bus.node().into());
        let action = crate::messages::audit::AdminAction {
            admin_user_id: actor.name().to_owned(),
            action_type: action_type.to_owned(),
            target_resource: format!("plugin:{plugin}"),
            details,
            justification: None,
            source_ip: None,
        };
        let topic = crate::integration::topics::audit_admin_action(action_type);
        if let Err(e) = self.bus.publish_typed_now(&topic, &action) {
            tracing::error!(
                class = "failure",
                "audit record of {action_type} {plugin} not published: {e}"
            );
        }
    }
}
