//! The versions of the plugin contract (`exesdb:plugin`) this host loads,
//! and which one a component was built against.
//!
//! A component's contract is the version of the world interface it
//! exports (`exesdb:plugin/handler@0.2.0`, …). The host links both
//! versions' `host` interfaces, so a 0.1.0 component loads and runs
//! unchanged; the 0.2.0 additions (`wasi:config` secrets, `wasi:keyvalue`
//! state, `wasi:http` in the world) are imports a 0.1.0 component does not
//! have. Support policy: wit/README.md.

use serde::Serialize;

use super::manifest::World;

/// A contract version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Contract {
    /// `exesdb:plugin@0.1.0` (`wit/v0.1.0/`).
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `exesdb:plugin@0.2.0` (`wit/`), the current one.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl Contract {
    /// The version new plugins are built against.
    pub const CURRENT: Contract = Contract::V0_2;

    /// Every version this host loads, newest first.
    pub const SUPPORTED: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The package version, `0.2.0`.
    pub const fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// The interface a component of `world` built against this version exports.
    pub fn export(self, world: World) -> String {
        format!("exesdb:plugin/{}@{}", world.interface(), self.version())
    }

    /// The version a component of `world` was built against, from the names
    /// it exports; `None` when it exports `world`'s interface in no
    /// supported version.
    pub fn of<'a>(
        world: World,
        exports: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<Contract> {
        Contract::SUPPORTED
            .into_iter()
            .find(|c| exports.clone().any(|e| e == c.export(world)))
    }

    /// The world and version of a component, from its exports.
    pub fn detect<'a>(exports: impl Iterator<Item = &'a str> + Clone) -> Option<(World, Contract)> {
        World::ALL
            .into_iter()
            .find_map(|w| Contract::of(w, exports.clone()).map(|c| (w, c)))
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_interface_names_the_version() {
        let v1 = ["exesdb:plugin/handler@0.1.0"];
        assert_eq!(
            Contract::of(World::Subscriber, v1.iter().copied()),
            Some(Contract::V0_1)
        );
        let v2 = ["wasi:cli/run@0.2.0", "exesdb:plugin/escalator@0.2.0"];
        assert_eq!(
            Contract::detect(v2.iter().copied()),
            Some((World::AlertEscalator, Contract::V0_2))
        );
        let other = ["exesdb:plugin/handler@9.0.0"];
        assert_eq!(Contract::detect(other.iter().copied()), None);
    }
}
