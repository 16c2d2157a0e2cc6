use std::time::Duration;

use waldur_plugin_abi::wire::AccountingType;

use super::*;

const FILE: &str = "/etc/waldur/waldur-site-agent-config.yaml";
const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const UUID: &str = "d629d5e45567425da9cdbdc1af67b32c";

/// Joins lines, so that a test's line numbers are the 1-based indexes in `lines`.
fn doc(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

/// A valid one-offering document; `extra` lines are appended inside the offering.
fn offering_doc(extra: &[&str]) -> String {
    let mut lines = vec![
        "offerings:",                                                     // 1
        "  - name: test",                                                 // 2
        "    waldur_api_url: http://127.0.0.1:8000/api",                  // 3
        "    waldur_api_token: 0123456789abcdef0123456789abcdef01234567", // 4
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",     // 5
        "    backend_type: SLURM",                                        // 6
    ];
    lines.extend_from_slice(extra);
    doc(&lines)
}

fn ok(text: &str) -> Loaded {
    match parse(text, FILE) {
        Ok(loaded) => loaded,
        Err(err) => panic!("unexpected error: {err}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, FILE) {
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.config),
        Err(err) => {
            let line = err.to_string();
            assert!(!line.contains('\n'), "not one line: {line}");
            assert!(
                line.starts_with(&format!("{FILE}: ")),
                "no file name: {line}"
            );
            err
        }
    }
}

#[test]
fn reference_example_loads_with_defaults() {
    // waldur-agent-plugins.md §2.15, with the template's empty token and UUID filled in.
    let text = doc(&[
        "timezone: \"UTC\"",
        "reporting_periods: 2",
        "offerings:",
        "  - name: \"Example SLURM Offering\"",
        "    waldur_api_url: \"http://localhost:8081/api/\"",
        "    waldur_api_token: \"secret-token-value\"",
        "    waldur_offering_uuid: \"d629d5e45567425da9cdbdc1af67b32c\"",
        "    username_management_backend: \"base\"",
        "    order_processing_backend: \"slurm\"",
        "    membership_sync_backend: \"slurm\"",
        "    reporting_backend: \"slurm\"",
        "    backend_type: \"slurm\"",
        "    backend_settings:",
        "      default_account: \"root\"          # DefaultAccount= for associations",
        "      # default_account_policy: common  # common | individual | none",
        "      customer_prefix: \"hpc_\"",
        "      project_prefix: \"hpc_\"",
        "      allocation_prefix: \"hpc_\"",
        "      qos_downscaled: \"limited\"",
        "      qos_paused: \"paused\"",
        "      qos_default: \"normal\"",
        "      enable_user_homedir_account_creation: true",
        "      default_homedir_umask: \"0077\"",
        "    backend_components:",
        "      cpu:  {limit: 10, measured_unit: \"k-Hours\",  unit_factor: 60000, accounting_type: \"usage\", label: \"CPU\"}",
        "      mem:  {limit: 10, measured_unit: \"gb-Hours\", unit_factor: 61440, accounting_type: \"usage\", label: \"RAM\"}",
    ]);
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = &loaded.config;

    // Globals: given and defaulted.
    assert_eq!(config.timezone.iana_name(), Some("UTC"));
    assert_eq!(config.reporting_periods, 2);
    assert_eq!(config.sentry_dsn, None);
    assert_eq!(config.elastic_apm_server_url, None);
    assert_eq!(config.global_proxy, None);
    assert_eq!(config.log_level, LogLevel::Info);
    assert!(config.expose_backend_error_details);
    assert_eq!(config.log_shipping, LogShipping::default());
    assert!(!config.log_shipping.enabled);
    assert_eq!(config.log_shipping.ship_interval_seconds, 60);
    assert_eq!(config.log_shipping.buffer_size_mb, 1);
    assert_eq!(config.log_shipping.log_level, LogLevel::Warning);
    assert!(config.plugin_dirs.is_empty());
    assert!(!config.allow_insecure_plugin_permissions);
    assert_eq!(config.plugin_probe_timeout_seconds, 20);
    assert_eq!(
        config.heartbeat_interval,
        std::time::Duration::from_secs(60)
    );

    assert_eq!(config.offerings.len(), 1);
    let o = &config.offerings[0];
    assert_eq!(o.name, "Example SLURM Offering");
    assert_eq!(o.waldur_api_url, "http://localhost:8081/api/");
    assert_eq!(o.auth, WaldurAuth::Token(Secret::new("secret-token-value")));
    assert_eq!(o.waldur_offering_uuid, UUID);
    assert_eq!(o.backend_type, "slurm");
    assert_eq!(o.order_processing_backend, "slurm");
    assert_eq!(o.membership_sync_backend, "slurm");
    assert_eq!(o.reporting_backend, "slurm");
    assert_eq!(o.username_management_backend, "base");
    assert!(!o.stomp_enabled);
    assert_eq!(o.stomp_membership_sync_enabled, None);
    assert!(!o.stomp_membership_sync());
    assert_eq!(
        (&o.stomp_ws_host, o.stomp_ws_port, &o.stomp_ws_path),
        (&None, None, &None)
    );
    assert!(o.websocket_use_tls);
    assert!(!o.resource_import_enabled);
    assert!(!o.username_reconciliation_enabled);
    assert!(o.verify_ssl);

    assert_eq!(o.backend_settings.len(), 9);
    assert_eq!(o.backend_settings["default_account"], "root");
    assert_eq!(o.backend_settings["default_homedir_umask"], "0077");
    assert_eq!(
        o.backend_settings["enable_user_homedir_account_creation"],
        true
    );

    let cpu = &o.backend_components["cpu"];
    assert_eq!(cpu.measured_unit, "k-Hours");
    assert_eq!(cpu.accounting_type, AccountingType::Usage);
    assert_eq!(cpu.label, "CPU");
    assert_eq!(cpu.unit_factor, Some(60000.0));
    assert_eq!(cpu.limit, Some(10.0));
    assert_eq!(cpu.unit_factor_reporting, None);
    assert!(cpu.extra.is_empty());
    assert_eq!(o.backend_components["mem"].unit_factor(), 61440.0);

    assert_eq!(
        o.plugin_entries(),
        vec![
            ("backend_type", "slurm"),
            ("order_processing_backend", "slurm"),
            ("membership_sync_backend", "slurm"),
            ("reporting_backend", "slurm"),
            ("username_management_backend", "base"),
        ]
    );
}

#[test]
fn minimal_feasibility_config_loads() {
    // real-components.md §A.4.
    let text = doc(&[
        "sentry_dsn: \"\"",
        "timezone: \"UTC\"",
        "offerings:",
        "  - name: \"Feasibility SLURM Offering\"",
        "    waldur_api_url: \"http://127.0.0.1:18080/api/\"",
        "    waldur_api_token: \"0123456789abcdef0123456789abcdef01234567\"",
        "    waldur_offering_uuid: \"d629d5e45567425da9cdbdc1af67b32c\"",
        "    username_management_backend: \"base\"",
        "    order_processing_backend: \"slurm\"",
        "    membership_sync_backend: \"slurm\"",
        "    reporting_backend: \"slurm\"",
        "    resource_import_enabled: false",
        "    stomp_enabled: true",
        "    stomp_ws_host: \"127.0.0.1\"",
        "    stomp_ws_port: 15674",
        "    stomp_ws_path: \"/ws\"",
        "    websocket_use_tls: false",
        "    backend_type: \"slurm\"",
        "    backend_settings:",
        "      default_account: \"root\"",
        "      # slurm_bin_path: \"/usr/bin\"   # default! see pitfalls",
        "      enable_user_homedir_account_creation: false",
        "    backend_components:",
        "      cpu: {limit: 10, measured_unit: \"k-Hours\", unit_factor: 60000, accounting_type: \"usage\", label: \"CPU\"}",
    ]);
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let o = &loaded.config.offerings[0];
    assert!(o.stomp_enabled);
    assert!(o.stomp_membership_sync());
    assert!(!o.websocket_use_tls);
    assert_eq!(o.stomp_ws_port, Some(15674));
    assert_eq!(o.stomp_ws_url(), "ws://127.0.0.1:15674/ws");
    assert_eq!(o.auth.token().map(Secret::expose), Some(TOKEN));
}

#[test]
fn example_files_load() {
    for (name, text) in [
        (
            "agent.yaml",
            include_str!("../../../examples/config/agent.yaml"),
        ),
        (
            "minimal.yaml",
            include_str!("../../../examples/config/minimal.yaml"),
        ),
    ] {
        let loaded = parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        assert_eq!(loaded.config.offerings.len(), 1, "{name}");
        assert_eq!(
            loaded.config.offerings[0].backend_components.len(),
            2,
            "{name}"
        );
    }
}

#[test]
fn offering_defaults_and_normalisation() {
    let loaded = ok(&offering_doc(&[]));
    let o = &loaded.config.offerings[0];
    // `/` appended, backend_type lower-cased.
    assert_eq!(o.waldur_api_url, "http://127.0.0.1:8000/api/");
    assert_eq!(o.backend_type, "slurm");
    assert_eq!(o.username_management_backend, "base");
    assert_eq!(o.order_processing_backend, "");
    assert!(o.backend_settings.is_empty());
    assert!(o.backend_components.is_empty());
    assert!(o.verify_ssl && o.websocket_use_tls);
    assert_eq!(o.stomp_ws_url(), "wss://127.0.0.1:443/rmqws-stomp");
    assert_eq!(
        o.plugin_entries(),
        vec![
            ("backend_type", "slurm"),
            ("username_management_backend", "base")
        ]
    );
}

#[test]
fn empty_values_mean_defaults() {
    let loaded = ok(&offering_doc(&[
        "    verify_ssl:",
        "    backend_settings:",
        "    backend_components: ~",
        "    username_management_backend:",
        "    stomp_ws_host: \"\"",
    ]));
    let o = &loaded.config.offerings[0];
    assert!(o.verify_ssl);
    assert!(o.backend_settings.is_empty());
    assert_eq!(o.username_management_backend, "base");
    assert_eq!(o.stomp_ws_host, None);
}

#[test]
fn reference_lax_scalars_are_accepted() {
    let mut text = doc(&[
        "reporting_periods: \"3\"",
        "expose_backend_error_details: no",
        "log_level: debug",
        "log_shipping: {enabled: \"yes\", ship_interval_seconds: 30.0, log_level: error}",
        "plugin_probe_timeout_seconds: \"45\"",
        "heartbeat_interval_seconds: \"7\"",
    ]);
    text.push_str(&offering_doc(&[
        "    verify_ssl: \"False\"",
        "    stomp_enabled: on",
        "    websocket_use_tls: 0",
        "    stomp_ws_port: \"8443\"",
        "    backend_components:",
        "      gpu: {measured_unit: h, accounting_type: limit, label: GPU, unit_factor: \"2.5\", max_value: \"4\", is_boolean: \"true\"}",
    ]));
    let config = ok(&text).config;
    assert_eq!(config.reporting_periods, 3);
    assert!(!config.expose_backend_error_details);
    assert_eq!(config.log_level, LogLevel::Debug);
    assert!(config.log_shipping.enabled);
    assert_eq!(config.log_shipping.ship_interval_seconds, 30);
    assert_eq!(config.log_shipping.log_level, LogLevel::Error);
    assert_eq!(config.plugin_probe_timeout_seconds, 45);
    assert_eq!(config.heartbeat_interval, std::time::Duration::from_secs(7));
    let o = &config.offerings[0];
    assert!(!o.verify_ssl);
    assert!(o.stomp_enabled);
    assert!(!o.websocket_use_tls);
    assert_eq!(o.stomp_ws_port, Some(8443));
    let gpu = &o.backend_components["gpu"];
    assert_eq!(gpu.accounting_type, AccountingType::Limit);
    assert_eq!(gpu.unit_factor, Some(2.5));
    assert_eq!(gpu.extra["max_value"], 4);
    assert_eq!(gpu.extra["is_boolean"], true);
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let text = doc(&[
        "x-common: &common",
        "  waldur_api_url: https://waldur.example.com/api/",
        "  waldur_api_token: 0123456789abcdef0123456789abcdef01234567",
        "  backend_type: slurm",
        "  backend_components: &components",
        "    cpu: {measured_unit: h, accounting_type: usage, label: CPU}",
        "offerings:",
        "  - <<: *common",
        "    name: a",
        "    waldur_offering_uuid: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "  - <<: *common",
        "    name: b",
        "    waldur_offering_uuid: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "    backend_components: *components",
        "    reporting_backend: slurm",
    ]);
    let loaded = ok(&text);
    let config = &loaded.config;
    assert_eq!(config.offerings.len(), 2);
    for o in &config.offerings {
        assert_eq!(o.waldur_api_url, "https://waldur.example.com/api/");
        assert_eq!(o.backend_components["cpu"].label, "CPU");
    }
    assert_eq!(config.offerings[1].reporting_backend, "slurm");
    // The anchor holder itself is unknown to the agent (the reference ignores it too).
    assert_eq!(
        loaded.warnings,
        vec![format!(
            "{FILE}: x-common (line 1): is not a known key; it is ignored"
        )]
    );
}

#[test]
fn oidc_credentials() {
    let text = doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_api_url: https://waldur.example.com/api/",
        "    oidc_token_url: https://sso.example.com/token",
        "    oidc_client_id: agent",
        "    oidc_client_secret: very-secret-oidc",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    backend_type: slurm",
    ]);
    let loaded = ok(&text);
    let o = &loaded.config.offerings[0];
    match &o.auth {
        WaldurAuth::Oidc(oidc) => {
            assert_eq!(oidc.token_url, "https://sso.example.com/token");
            assert_eq!(oidc.client_id, "agent");
            assert_eq!(oidc.client_secret.expose(), "very-secret-oidc");
        }
        other => panic!("expected OIDC, got {other:?}"),
    }
    assert_eq!(o.auth.token(), None);
}

#[test]
fn secrets_are_not_in_debug_output() {
    let mut text = doc(&[
        "sentry_dsn: https://dsnkey1234@sentry.example.com/42",
        "global_proxy: http://user:proxypass@proxy.example.com:3128",
    ]);
    text.push_str(&doc(&[
        "offerings:",
        "  - name: token-offering",
        "    waldur_api_url: https://waldur.example.com/api/",
        "    waldur_api_token: TOKEN-abc-123",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    backend_type: slurm",
        "  - name: oidc-offering",
        "    waldur_api_url: https://waldur.example.com/api/",
        "    oidc_token_url: https://sso.example.com/token",
        "    oidc_client_id: agent",
        "    oidc_client_secret: OIDC-secret-456",
        "    waldur_offering_uuid: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "    backend_type: slurm",
    ]));
    let loaded = ok(&text);
    let debug = format!("{loaded:?} {:#?}", loaded.config);
    for secret in [
        "TOKEN-abc-123",
        "OIDC-secret-456",
        "dsnkey1234",
        "proxypass",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    assert!(debug.contains("***"));
    assert!(debug.contains("token-offering") && debug.contains("\"agent\""));
    assert_eq!(format!("{:?}", Secret::default()), "\"\"");
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn bad_api_url_names_file_key_and_line() {
    let e = err(&doc(&[
        "timezone: UTC",
        "offerings:",
        "  - name: test",
        "    waldur_api_token: 0123456789abcdef0123456789abcdef01234567",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    backend_type: slurm",
        "    waldur_api_url: ftp://waldur.example.com/api/",
    ]));
    assert_eq!(
        e.to_string(),
        "/etc/waldur/waldur-site-agent-config.yaml: offerings[0].waldur_api_url (line 7): must start with http:// \
         or https://, got \"ftp://waldur.example.com/api/\""
    );
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(e.key_path(), Some("offerings[0].waldur_api_url"));
    assert_eq!(e.line(), Some(7));
}

#[test]
fn yaml_syntax_error() {
    let e = err(&doc(&[
        "timezone: UTC",
        "offerings:",
        "  - name: test",
        "    waldur_api_url: http://x/api/",
        "   backend_type: slurm",
    ]));
    assert_eq!(e.kind(), ConfigErrorKind::Syntax);
    assert_eq!(e.line(), Some(5), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("(line 5)") || text.contains("line 5:"),
        "{text}"
    );
    assert!(text.contains("invalid YAML"), "{text}");

    let e = err("offerings: [\n  {name: a\n");
    assert_eq!(e.kind(), ConfigErrorKind::Syntax);
    assert!(e.line().is_some(), "{e}");

    // Unbalanced quote.
    let e = err(&doc(&["timezone: \"UTC", "offerings: []"]));
    assert_eq!(e.kind(), ConfigErrorKind::Syntax, "{e}");
}

#[test]
fn duplicate_key_is_an_error_with_line() {
    let e = err(&offering_doc(&["    backend_type: slurm"]));
    assert_eq!(
        e.to_string(),
        format!("{FILE}: offerings[0].backend_type (line 7): duplicate key; it is already given on line 6")
    );
    assert_eq!(e.kind(), ConfigErrorKind::Syntax);

    let e = err(&doc(&["timezone: UTC", "offerings: []", "timezone: UTC"]));
    assert_eq!(
        e.to_string(),
        format!("{FILE}: timezone (line 3): duplicate key; it is already given on line 1")
    );
}

#[test]
fn huge_numbers_ask_for_quotes() {
    let e = err(&doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_offering_uuid: 12345678901234567890123456789012",
    ]));
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}: offerings[0].waldur_offering_uuid (line 3): this number is too large; put \
             it in quotes if it is text (a UUID, a token)"
        )
    );
}

#[test]
fn type_errors_name_key_and_line() {
    let e = err(&offering_doc(&["    verify_ssl: \"sometimes\""]));
    assert_eq!(
        e.to_string(),
        "/etc/waldur/waldur-site-agent-config.yaml: offerings[0].verify_ssl (line 7): invalid value: string \
         \"sometimes\", expected a boolean (true or false)"
    );
    assert_eq!(e.kind(), ConfigErrorKind::Type);

    let e = err(&offering_doc(&["    stomp_enabled: [true]"]));
    assert_eq!(e.key_path(), Some("offerings[0].stomp_enabled"));
    assert_eq!(e.line(), Some(7));
    assert!(e.message().contains("sequence"), "{e}");

    let e = err(&offering_doc(&[
        "    name2: x",
        "    stomp_ws_path: {a: b}",
    ]));
    assert_eq!(e.key_path(), Some("offerings[0].stomp_ws_path"));
    assert_eq!(e.line(), Some(8));

    let e = err(&doc(&[
        "timezone: UTC",
        "reporting_periods: two",
        "offerings: []",
    ]));
    assert_eq!(
        e.to_string(),
        "/etc/waldur/waldur-site-agent-config.yaml: reporting_periods (line 2): invalid value: string \"two\", \
         expected an integer"
    );

    let e = err(&doc(&["offerings:", "  - just a string"]));
    assert_eq!(e.key_path(), Some("offerings[0]"));
    assert_eq!(e.line(), Some(2));
    assert!(e.message().contains("a mapping of offering keys"), "{e}");

    let e = err(&doc(&["offerings: yes"]));
    assert_eq!(e.key_path(), Some("offerings"));
    assert_eq!(e.line(), Some(1));
}

#[test]
fn missing_required_keys() {
    let e = err(&doc(&["timezone: UTC"]));
    assert_eq!(
        e.to_string(),
        "/etc/waldur/waldur-site-agent-config.yaml: offerings: required key is missing (the list of offerings \
         this agent serves)"
    );

    let e = err(&doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_api_url: http://x/api/",
        "    waldur_api_token: t",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
    ]));
    // A missing key has no line of its own: the line of its offering is given.
    assert_eq!(
        e.to_string(),
        "/etc/waldur/waldur-site-agent-config.yaml: offerings[0].backend_type (line 2): required key is missing"
    );

    let e = err(&doc(&["offerings:", "  - name: \"\""]));
    assert_eq!(e.key_path(), Some("offerings[0].name"));
    assert_eq!(e.message(), "must not be empty");
}

#[test]
fn missing_token_and_oidc() {
    let e = err(&doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_api_url: http://x/api/",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    waldur_api_token: \"\"",
        "    backend_type: slurm",
    ]));
    assert_eq!(e.key_path(), Some("offerings[0].waldur_api_token"));
    assert_eq!(e.line(), Some(5));
    assert!(
        e.message()
            .contains("oidc_token_url, oidc_client_id and oidc_client_secret"),
        "{e}"
    );

    let e = err(&doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_api_url: http://x/api/",
        "    oidc_token_url: https://sso/token",
        "    oidc_client_id: agent",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    backend_type: slurm",
    ]));
    assert_eq!(e.key_path(), Some("offerings[0].oidc_client_secret"));
    assert_eq!(e.line(), Some(2));
    assert!(e.message().contains("missing: oidc_client_secret"), "{e}");

    let e = err(&doc(&[
        "offerings:",
        "  - name: test",
        "    waldur_api_url: http://x/api/",
        "    oidc_token_url: sso.example.com/token",
        "    oidc_client_id: agent",
        "    oidc_client_secret: s3cr3t-value",
        "    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c",
        "    backend_type: slurm",
    ]));
    assert_eq!(e.key_path(), Some("offerings[0].oidc_token_url"));
    assert_eq!(e.line(), Some(4));
    assert!(!e.to_string().contains("s3cr3t-value"));
}

#[test]
fn global_range_and_name_checks() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "reporting_periods: 13",
            "reporting_periods",
            "must be between 1 and 12 (months), got 13",
        ),
        (
            "reporting_periods: 0",
            "reporting_periods",
            "must be between 1 and 12 (months), got 0",
        ),
        (
            "plugin_probe_timeout_seconds: 0",
            "plugin_probe_timeout_seconds",
            "must be between 1 and 600 (seconds), got 0",
        ),
        (
            "plugin_probe_timeout_seconds: 601",
            "plugin_probe_timeout_seconds",
            "must be between 1 and 600 (seconds), got 601",
        ),
        (
            "heartbeat_interval_seconds: 0",
            "heartbeat_interval_seconds",
            "must be between 1 and 3600 (seconds), got 0",
        ),
        (
            "heartbeat_interval_seconds: 3601",
            "heartbeat_interval_seconds",
            "must be between 1 and 3600 (seconds), got 3601",
        ),
        (
            "shutdown_grace_seconds: -1",
            "shutdown_grace_seconds",
            "must be between 0 and 3600 (seconds), got -1",
        ),
        (
            "timezone: Mars/Olympus_Mons",
            "timezone",
            "unknown time zone \"Mars/Olympus_Mons\"; use an IANA time zone name such as \"UTC\" \
             or \"Europe/Tallinn\"",
        ),
        (
            "log_level: verbose",
            "log_level",
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got \"verbose\"",
        ),
        (
            "elastic_apm_server_url: apm:8200",
            "elastic_apm_server_url",
            "must be an http:// or https:// URL, got \"apm:8200\"",
        ),
        (
            "sentry_dsn: not-a-dsn-secret",
            "sentry_dsn",
            "must be an http:// or https:// URL",
        ),
        (
            "log_shipping:\n  ship_interval_seconds: 5",
            "log_shipping.ship_interval_seconds",
            "must be at least 10 (seconds), got 5",
        ),
        (
            "log_shipping: {buffer_size_mb: 0}",
            "log_shipping.buffer_size_mb",
            "must be at least 1 (MiB), got 0",
        ),
        (
            "log_shipping: {log_level: loud}",
            "log_shipping.log_level",
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got \"loud\"",
        ),
    ];
    for (line, path, message) in cases {
        // The bad key is on line 2 (line 3 for the two-line log_shipping form's inner key).
        let text = format!("# header\n{line}\n{}", offering_doc(&[]));
        let e = err(&text);
        let expected_line = if line.contains('\n') { 3 } else { 2 };
        assert_eq!(
            e.to_string(),
            format!("{FILE}: {path} (line {expected_line}): {message}"),
            "for {line:?}"
        );
    }

    let e = err(&offering_doc(&["    stomp_ws_port: 70000"]));
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}: offerings[0].stomp_ws_port (line 7): must be a TCP port (1-65535), got 70000"
        )
    );
}

#[test]
fn valid_time_zones() {
    for name in ["UTC", "Europe/Tallinn", "America/New_York", "Asia/Kolkata"] {
        let config = ok(&format!("timezone: {name}\n{}", offering_doc(&[]))).config;
        assert_eq!(config.timezone.iana_name(), Some(name));
    }
}

#[test]
fn component_errors() {
    let e = err(&offering_doc(&[
        "    backend_components:",
        "      cpu: {measured_unit: h, accounting_type: usage, label: CPU}",
        "      mem: {measured_unit: GB, accounting_type: usage}",
    ]));
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}: offerings[0].backend_components.mem.label (line 9): required key is \
             missing (every component needs measured_unit, accounting_type and label)"
        )
    );

    let e = err(&offering_doc(&[
        "    backend_components:",
        "      cpu:",
        "        measured_unit: h",
        "        label: CPU",
        "        accounting_type: monthly",
    ]));
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}: offerings[0].backend_components.cpu.accounting_type (line 11): must be one \
             of usage, limit, one, got the string \"monthly\""
        )
    );

    let e = err(&offering_doc(&[
        "    backend_components:",
        "      cpu:",
        "        measured_unit: h",
        "        label: CPU",
        "        accounting_type: usage",
        "        unit_factor: lots",
    ]));
    assert_eq!(
        e.key_path(),
        Some("offerings[0].backend_components.cpu.unit_factor")
    );
    assert_eq!(e.line(), Some(12));
    assert_eq!(e.message(), "must be a number, got the string \"lots\"");

    let e = err(&offering_doc(&["    backend_components:", "      cpu: 5"]));
    assert_eq!(e.key_path(), Some("offerings[0].backend_components.cpu"));
    assert_eq!(e.line(), Some(8));

    let e = err(&offering_doc(&["    backend_components: [cpu]"]));
    assert_eq!(e.key_path(), Some("offerings[0].backend_components"));
    assert_eq!(e.line(), Some(7));
}

#[test]
fn component_extras_are_kept() {
    let config = ok(&offering_doc(&[
        "    backend_components:",
        "      node_hours:",
        "        measured_unit: h",
        "        accounting_type: one",
        "        label: Nodes",
        "        limit_period: month",
        "        min_prepaid_duration: 1",
        "        target_components: {cpu: {factor: 128}}",
    ]))
    .config;
    let c = &config.offerings[0].backend_components["node_hours"];
    assert_eq!(c.accounting_type, AccountingType::One);
    assert_eq!(c.unit_factor, None);
    assert_eq!(c.extra["limit_period"], "month");
    assert_eq!(c.extra["min_prepaid_duration"], 1);
    assert_eq!(c.extra["target_components"]["cpu"]["factor"], 128);
}

#[test]
fn settings_keep_any_yaml() {
    let config = ok(&offering_doc(&[
        "    backend_settings:",
        "      periodic_limits: {enabled: true}",
        "      1: numeric key",
        "      list: [a, 2, 3.5, null]",
        "      homedir_quota:",
        "        provider: xfs",
    ]))
    .config;
    let s = &config.offerings[0].backend_settings;
    assert_eq!(s["periodic_limits"]["enabled"], true);
    assert_eq!(s["1"], "numeric key");
    assert_eq!(s["list"], serde_json::json!(["a", 2, 3.5, null]));
    assert_eq!(s["homedir_quota"]["provider"], "xfs");

    let e = err(&offering_doc(&["    backend_settings: [a]"]));
    assert_eq!(e.key_path(), Some("offerings[0].backend_settings"));
    assert_eq!(e.line(), Some(7));
}

#[test]
fn the_removal_guards_are_counts_and_absent_by_default() {
    let o = &ok(&offering_doc(&[])).config.offerings[0];
    assert_eq!(
        (o.max_user_removals_per_cycle, o.max_terminations_per_cycle),
        (None, None)
    );
    let loaded = ok(&offering_doc(&[
        "    max_user_removals_per_cycle: 20",
        "    max_terminations_per_cycle: 0",
    ]));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let o = &loaded.config.offerings[0];
    assert_eq!(
        (o.max_user_removals_per_cycle, o.max_terminations_per_cycle),
        (Some(20), Some(0))
    );
    let e = err(&offering_doc(&["    max_user_removals_per_cycle: -1"]));
    assert_eq!(
        e.key_path(),
        Some("offerings[0].max_user_removals_per_cycle")
    );
    assert!(
        e.to_string()
            .contains("must be a number of 0 or more, got -1"),
        "{e}"
    );
    let e = err(&offering_doc(&["    max_terminations_per_cycle: many"]));
    assert_eq!(
        e.key_path(),
        Some("offerings[0].max_terminations_per_cycle")
    );
}

#[test]
fn the_homedir_umask_is_checked_at_load_time() {
    let umask = |lines: &[&str]| {
        ok(&offering_doc(lines)).config.offerings[0]
            .homedir_umask
            .clone()
    };
    assert_eq!(umask(&[]), "0077");
    assert_eq!(
        umask(&[
            "    backend_settings:",
            "      default_homedir_umask: \"027\""
        ]),
        "027"
    );
    // Unquoted, YAML keeps the leading zero: the string the site meant.
    assert_eq!(
        umask(&["    backend_settings:", "      default_homedir_umask: 0077"]),
        "0077"
    );
    for bad in ["77", "\"0o77\"", "\"00777\"", "\"u=rwx\""] {
        let line = format!("      default_homedir_umask: {bad}");
        let e = err(&offering_doc(&["    backend_settings:", &line]));
        assert_eq!(
            e.key_path(),
            Some("offerings[0].backend_settings.default_homedir_umask"),
            "{bad}"
        );
        assert!(e.to_string().contains("quoted octal umask"), "{e}");
    }
}

#[test]
fn file_level_errors() {
    let e = err("");
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert!(e.message().contains("offerings"), "{e}");

    let e = err("# only a comment\n");
    assert!(e.message().contains("offerings"), "{e}");

    let e = err("- a\n- b\n");
    assert_eq!(e.kind(), ConfigErrorKind::Type);
    assert_eq!(
        e.to_string(),
        format!("{FILE}: the top level must be a mapping of keys (offerings, timezone, ...)")
    );
}

// ---- warnings -----------------------------------------------------------------------------

#[test]
fn unknown_keys_warn_with_path_line_and_hint() {
    let text = doc(&[
        "timezon: UTC",                                               // 1
        "backend_type: slurm",                                        // 2
        "log_shipping: {enabled: false, intervall: 3}",               // 3
        "offerings:",                                                 // 4
        "  - name: first",                                            // 5
        "    waldur_api_url: http://x/api/",                          // 6
        "    waldur_api_token: t",                                    // 7
        "    waldur_offering_uuid: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // 8
        "    backend_type: slurm",                                    // 9
        "  - name: second",                                           // 10
        "    waldur_api_url: http://x/api/",                          // 11
        "    waldur_api_token: t",                                    // 12
        "    waldur_offering_uuid: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", // 13
        "    backend_type: slurm",                                    // 14
        "    backend_setings:",                                       // 15
        "      default_account: root",                                // 16
        "    timezone: UTC",                                          // 17
        "    completely_unrelated: 1",                                // 18
        "    backend_components:",                                    // 19
        "      cpu: {measured_unit: h, accounting_type: usage, label: CPU, extra_key: 1}",
    ]);
    let loaded = ok(&text);
    assert_eq!(
        loaded.warnings,
        vec![
            format!("{FILE}: timezon (line 1): is not a known key; it is ignored; did you mean `timezone`?"),
            format!(
                "{FILE}: backend_type (line 2): is not a known key; it is ignored; it is an \
                 offering key; indent it under an offerings entry"
            ),
            format!("{FILE}: log_shipping.intervall (line 3): is not a known key; it is ignored"),
            format!(
                "{FILE}: offerings[1].backend_setings (line 15): is not a known key; it is \
                 ignored; did you mean `backend_settings`?"
            ),
            format!(
                "{FILE}: offerings[1].timezone (line 17): is not a known key; it is ignored; it \
                 is a top-level key, not an offering key"
            ),
            format!("{FILE}: offerings[1].completely_unrelated (line 18): is not a known key; it is ignored"),
        ]
    );
    // Unknown keys are ignored: the default applies.
    assert!(loaded.config.offerings[1].backend_settings.is_empty());
    assert_eq!(
        loaded.config.offerings[1].backend_components["cpu"].extra["extra_key"],
        1
    );
}

#[test]
fn the_same_offering_twice_is_an_error() {
    // `http://x/api/` and `http://x/api` are the same server: two entries would race for the
    // same orders and report every usage twice.
    let e = err(&doc(&[
        "offerings:",
        "  - name: a",
        "    waldur_api_url: http://x/api/",
        "    waldur_api_token: t",
        "    waldur_offering_uuid: 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01",
        "    backend_type: slurm",
        "  - name: b",
        "    waldur_api_url: http://x/api",
        "    waldur_api_token: t",
        "    waldur_offering_uuid: 0F0F0F0F-0F0F-0F0F-0F0F-0F0F0F0F0F01",
        "    backend_type: slurm",
    ]));
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}: offerings[1].waldur_offering_uuid (line 10): another offering above has \
             the same waldur_api_url and waldur_offering_uuid; list each offering once"
        )
    );
}

#[test]
fn semantic_warnings() {
    let text = doc(&[
        "offerings:",
        "  - name: a",
        "    waldur_api_url: http://x/api/",
        "    waldur_api_token: t",
        "    oidc_client_id: agent",
        "    waldur_offering_uuid: not-a-uuid",
        "    backend_type: slurm",
        "    stomp_membership_sync_enabled: true",
        "  - name: b",
        "    waldur_api_url: http://x/api",
        "    waldur_api_token: t",
        "    waldur_offering_uuid: not-a-uuid-either",
        "    backend_type: slurm",
    ]);
    let warnings = ok(&text).warnings;
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert!(warnings[0].starts_with(&format!(
        "{FILE}: offerings[0].oidc_client_id (line 5): is ignored"
    )));
    assert!(warnings[1].starts_with(&format!("{FILE}: offerings[0].waldur_offering_uuid (line 6): \"not-a-uuid\" does not look like a UUID")));
    assert!(warnings[2].starts_with(&format!("{FILE}: offerings[0].stomp_membership_sync_enabled (line 8): is true but stomp_enabled is false")));
    assert!(warnings[3].starts_with(&format!(
        "{FILE}: offerings[1].waldur_offering_uuid (line 12): "
    )));

    let warnings = ok("offerings: []\n").warnings;
    assert_eq!(
        warnings,
        vec![format!(
            "{FILE}: offerings (line 1): the list is empty: the agent has nothing to do"
        )]
    );
}

// ---- load(), extensions, helpers, environment ---------------------------------------------

#[test]
fn load_refuses_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("agent.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Would block forever if it were opened.
    let e = load(&fifo).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: not a regular file (a FIFO)", fifo.display())
    );
    let e = load(dir.path()).unwrap_err();
    assert!(
        e.to_string().ends_with("not a regular file (a directory)"),
        "{e}"
    );
}

#[test]
fn load_reads_file_and_resolves_plugin_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    let text = format!(
        "plugin_dirs: [plugins, /opt/waldur/plugins]\nallow_insecure_plugin_permissions: true\n{}",
        offering_doc(&[])
    );
    std::fs::write(&path, text).unwrap();
    let config = load(&path).unwrap().config;
    assert_eq!(
        config.plugin_dirs,
        vec![
            dir.path().join("plugins"),
            std::path::PathBuf::from("/opt/waldur/plugins")
        ]
    );
    assert!(config.allow_insecure_plugin_permissions);

    std::fs::write(&path, format!("plugin_dirs: single\n{}", offering_doc(&[]))).unwrap();
    assert_eq!(
        load(&path).unwrap().config.plugin_dirs,
        vec![dir.path().join("single")]
    );

    std::fs::write(&path, "offerings:\n  - name: x\n    verify_ssl: maybe\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.origin(), path.display().to_string());
    assert!(
        e.to_string().starts_with(&format!(
            "{}: offerings[0].verify_ssl (line 3): ",
            path.display()
        )),
        "{e}"
    );

    let missing = dir.path().join("missing.yaml");
    let e = load(&missing).unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{e}"
    );

    std::fs::write(&path, b"offerings: \xff\n").unwrap();
    assert_eq!(load(&path).unwrap_err().kind(), ConfigErrorKind::Io);
}

#[test]
fn stomp_url_defaults() {
    let mut o = Offering {
        waldur_api_url: "https://user:pw@waldur.example.com:8443/api/".into(),
        ..Offering::default()
    };
    assert_eq!(o.api_host(), "waldur.example.com");
    assert_eq!(o.stomp_ws_url(), "wss://waldur.example.com:443/rmqws-stomp");
    o.verify_ssl = false;
    o.websocket_use_tls = false;
    assert_eq!(o.stomp_ws_url(), "ws://waldur.example.com:80/rmqws-stomp");
    o.stomp_ws_path = Some("ws".into());
    o.stomp_ws_host = Some("mq".into());
    assert_eq!(o.stomp_ws_url(), "ws://mq:80/ws");
    o.waldur_api_url = "http://[::1]:8000/api/".into();
    assert_eq!(o.api_host(), "[::1]");
}

#[test]
fn stomp_membership_inherits() {
    let mut o = Offering::default();
    assert!(!o.stomp_membership_sync());
    o.stomp_enabled = true;
    assert!(o.stomp_membership_sync());
    o.stomp_membership_sync_enabled = Some(false);
    assert!(!o.stomp_membership_sync());
}

#[test]
fn log_levels() {
    assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warning));
    assert_eq!(LogLevel::parse(" Critical "), Some(LogLevel::Critical));
    assert_eq!(LogLevel::parse("warn"), None);
    assert_eq!(LogLevel::Critical.tracing_level(), tracing::Level::ERROR);
}

#[test]
fn line_lookup_handles_flow_style_aliases_and_missing_keys() {
    use super::error::Seg;
    use super::locate::line_of;
    let text = doc(&[
        "a: &anchor",      // 1
        "  b: {c: 1,",     // 2
        "      d: 2}",     // 3
        "list:",           // 4
        "  - x",           // 5
        "  -",             // 6
        "    y: 1",        // 7
        "alias: *anchor",  // 8
        "'quoted key': 1", // 9
    ]);
    let key = |k: &str| Seg::Key(k.to_owned());
    assert_eq!(line_of(&text, &[key("a"), key("b"), key("d")]), Some(3));
    assert_eq!(line_of(&text, &[key("a"), key("b"), key("zz")]), Some(2));
    assert_eq!(
        line_of(&text, &[key("list"), Seg::Index(1), key("y")]),
        Some(7)
    );
    assert_eq!(line_of(&text, &[key("list"), Seg::Index(9)]), Some(4));
    assert_eq!(line_of(&text, &[key("alias"), key("b"), key("c")]), Some(2));
    assert_eq!(line_of(&text, &[key("quoted key")]), Some(9));
    assert_eq!(line_of(&text, &[key("nothing")]), None);
    assert_eq!(line_of(&text, &[]), None);
}

#[test]
fn agent_env() {
    let env = AgentEnv::from_lookup(|_| None).unwrap();
    assert_eq!(env, AgentEnv::default());
    assert_eq!(env.order_process_period, Duration::from_secs(300));
    assert_eq!(env.report_period, Duration::from_secs(1800));
    assert_eq!(env.membership_sync_period, Duration::from_secs(300));
    assert_eq!(env.reconciliation_period, Duration::from_secs(3600));

    let env = AgentEnv::from_lookup(|name| match name {
        ORDER_PROCESS_PERIOD_VAR => Some("0.5".into()),
        REPORT_PERIOD_VAR => Some("10".into()),
        MEMBERSHIP_SYNC_PERIOD_VAR => Some(" ".into()),
        RECONCILIATION_PERIOD_VAR => Some("0.25".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(env.reconciliation_period, Duration::from_secs(15));
    assert_eq!(env.order_process_period, Duration::from_secs(30));
    assert_eq!(env.report_period, Duration::from_secs(600));
    assert_eq!(env.membership_sync_period, Duration::from_secs(300));

    let e = AgentEnv::from_lookup(|name| (name == REPORT_PERIOD_VAR).then(|| "2.5".into()))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment: WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES: must be a positive whole number \
         of minutes (at most a year), got \"2.5\""
    );
    assert!(
        AgentEnv::from_lookup(|name| (name == ORDER_PROCESS_PERIOD_VAR).then(|| "-1".into()))
            .is_err()
    );
}

#[test]
fn plugin_dirs_must_be_paths() {
    let e = err("plugin_dirs: {a: 1}\nofferings: []\n");
    assert_eq!(
        e.to_string(),
        format!("{FILE}: plugin_dirs (line 1): must be a directory path or a list of them")
    );
}
