use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn embedded_default_has_the_spec_keys() {
    let c = Config::default();
    assert!(c.health_monitoring.enabled);
    assert_eq!(c.health_monitoring.check_interval, 5000);
    assert_eq!(c.health_monitoring.unhealthy_threshold, 3);
    assert!(c.health_monitoring.circuit_breaker_enabled);
    assert_eq!(c.console.format, ConsoleFormat::Pretty);
    assert_eq!(c.bus.max_payload_bytes, 1 << 20);
}

#[test]
fn printed_config_parses_back_to_the_same() {
    let c = Config::default();
    assert_eq!(Config::from_toml_str(&c.to_toml(), "printed").unwrap(), c);
}

#[test]
fn file_overrides_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, "[health_monitoring]\ncheck_interval = 250\n").unwrap();
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.health_monitoring.check_interval, 250);
    assert_eq!(c.health_monitoring.unhealthy_threshold, 3);
}

#[test]
fn environment_overrides_the_file() {
    let c = Config::load_with_env(
        None,
        env(&[
            ("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "7"),
            ("EXESDB_CONSOLE__FORMAT", "json"),
            ("EXESDB_NODE__NAME", "node-a"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.health_monitoring.unhealthy_threshold, 7);
    assert_eq!(c.console.format, ConsoleFormat::Json);
    assert_eq!(c.node.name, "node-a");
}

#[test]
fn unknown_key_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[health_monitoring]\ncheck_intervall = 5\n").unwrap();
    let err = Config::load_with_env(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("check_intervall"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn bad_value_names_the_key() {
    let err = Config::load_with_env(
        None,
        env(&[("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "soon")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("health_monitoring.check_interval"), "{err}");
    assert!(err.contains("environment"), "{err}");
    let err = Config::load_with_env(
        None,
        env(&[("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "0")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("health_monitoring.unhealthy_threshold") && err.contains("at least 1"),
        "{err}"
    );
    let err = Config::load_with_env(None, env(&[("EXESDB_CONSOLE__FORMAT", "fancy")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("console.format") && err.contains("fancy"),
        "{err}"
    );
}

#[test]
fn malformed_env_names_and_files_are_errors() {
    let err = Config::load_with_env(None, env(&[("EXESDB_VERBOSE", "1")])).unwrap_err();
    assert!(
        matches!(err, ConfigError::BadEnvName { ref var } if var == "EXESDB_VERBOSE"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[bus\n").unwrap();
    let err = Config::load_with_env(Some(&path), env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    let err = Config::load_with_env(Some(&dir.path().join("missing.toml")), env(&[])).unwrap_err();
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

#[test]
fn each_section_default_is_the_embedded_default() {
    let c = Config::default();
    assert_eq!(c.node, NodeConfig::default());
    assert_eq!(c.bus, BusSection::default());
    assert_eq!(c.console, ConsoleConfig::default());
    assert_eq!(c.health_monitoring, HealthMonitoring::default());
    assert_eq!(c.plugins, PluginsConfig::default());
    assert_eq!(c.metrics, MetricsConfig::default());
    assert_eq!(c.stores, StoresConfig::default());
    assert_eq!(c.stores.default, DEFAULT_STORE);
    assert_eq!(c.api, ApiConfig::default());
    // The one documented exception: `RuntimeConfig::default` has no
    // compilation cache, so a runtime built in code writes nothing to the
    // working directory; the host's file default caches.
    assert_eq!(c.runtime.cache_dir, ".exesdb/cache");
    assert_eq!(
        c.runtime,
        RuntimeConfig {
            cache_dir: ".exesdb/cache".into(),
            ..RuntimeConfig::default()
        }
    );
    assert_eq!(
        c.bus_config(),
        crate::bus::BusConfig::default(),
        "the bus's own default agrees too"
    );
}

#[test]
fn the_origin_names_the_environment_once_however_many_variables() {
    let err = Config::load_with_env(
        None,
        env(&[
            ("EXESDB_METRICS__ENABLED", "true"),
            ("EXESDB_PLUGINS__WATCH", "false"),
            ("EXESDB_HEALTH_MONITORING__CHECK_INTERVAL", "soon"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err.matches("environment").count(), 1, "{err}");
    assert!(err.contains("embedded default + environment"), "{err}");
}

#[test]
fn the_origin_names_the_layer_that_set_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(
        &path,
        "[health_monitoring]\ncheck_interval = 250\n[metrics]\ninterval_ms = 5\n",
    )
    .unwrap();
    // The file's bad value: the file is named as the setter, not a variable.
    let err = Config::load_with_env(Some(&path), env(&[("EXESDB_NODE__NAME", "node-a")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("metrics.interval_ms"), "{err}");
    assert!(
        err.contains(&format!("set by file {}", path.display())),
        "{err}"
    );
    assert!(!err.contains("EXESDB_NODE__NAME"), "{err}");

    // A variable's bad value in a section the file also sets: the variable.
    std::fs::write(&path, "[health_monitoring]\ncheck_interval = 250\n").unwrap();
    let err = Config::load_with_env(
        Some(&path),
        env(&[
            ("EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD", "0"),
            ("EXESDB_NODE__NAME", "node-a"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("health_monitoring.unhealthy_threshold"),
        "{err}"
    );
    assert!(
        err.contains("set by EXESDB_HEALTH_MONITORING__UNHEALTHY_THRESHOLD"),
        "{err}"
    );
    assert!(
        err.contains("file ") && err.contains("+ environment"),
        "{err}"
    );
    assert!(!err.contains("EXESDB_NODE__NAME"), "{err}");

    // An unknown key from a variable, and a key nobody overrode.
    let err = Config::load_with_env(None, env(&[("EXESDB_HEALTH_MONITORING__BOGUS", "1")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("set by EXESDB_HEALTH_MONITORING__BOGUS"),
        "{err}"
    );
    let err = Config::load_with_env(
        None,
        env(&[("EXESDB_HEALTH_MONITORING__COOLDOWN_MS", "999999999")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("health_monitoring.max_cooldown_ms")
            && err.contains("set by embedded default"),
        "{err}"
    );
    // No override at all: only the layer.
    let err = Config::from_toml_str("[bus]\n", "printed")
        .unwrap_err()
        .to_string();
    assert!(err.contains("(printed)"), "{err}");
}
