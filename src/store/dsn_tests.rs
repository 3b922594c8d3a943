use super::*;

#[test]
fn a_userinfo_password_is_hidden_and_the_rest_kept() {
    let shown = redact_url("postgres://app:s3cr3t@db.example.com:5432/amc?sslmode=verify-full");

    assert_eq!(
        shown,
        "postgres://app:***@db.example.com:5432/amc?sslmode=verify-full"
    );
}

#[test]
fn a_password_query_parameter_is_hidden() {
    let shown = redact_url("postgres://app@db.example.com/amc?password=s3cr3t&sslmode=require");

    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("password=***"), "{shown}");
    assert!(shown.contains("sslmode=require"), "{shown}");
}

#[test]
fn other_secret_query_parameters_are_hidden() {
    let shown = redact_url(
        "postgresql://app@h/db?sslpassword=k3y1&sslkey=/k.pem&PassWord=x9y8&application_name=amc",
    );

    for secret in ["k3y1", "/k.pem", "x9y8"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("application_name=amc"), "{shown}");
}

#[test]
fn a_password_with_an_unencoded_hash_is_never_echoed() {
    for url in [
        "postgres://app:pa#ss@db.example.com/amc",
        // Parses (host `app`, port 12) but the rest of the password is a fragment.
        "postgres://app:12#3x@db.example.com/amc",
    ] {
        assert_eq!(redact_url(url), UNPARSEABLE_URL, "{url}");
    }
}

#[test]
fn a_password_split_by_a_slash_or_question_mark_is_never_echoed() {
    for url in [
        "postgres://app:12/s3cr3t@db.example.com/amc",
        "postgres://app:12?s3cr3t@db.example.com/amc",
    ] {
        let shown = redact_url(url);
        assert!(!shown.contains("s3cr3t"), "{url} shown as {shown}");
    }
}

#[test]
fn a_url_that_does_not_parse_is_replaced_by_the_placeholder() {
    for url in [
        "postgres://app:s3cr3t@host:notaport/db",
        "not a url s3cr3t",
        "",
    ] {
        assert_eq!(redact_url(url), UNPARSEABLE_URL, "{url}");
    }
}

#[test]
fn sqlite_urls_are_shown_as_they_are() {
    assert_eq!(redact_url("sqlite://data/amc.db"), "sqlite://data/amc.db");
}

#[test]
fn loopback_hosts_are_recognised() {
    for host in [
        "localhost",
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "[::1]",
        "LOCALHOST",
    ] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in ["db.example.com", "10.0.0.1", "::2", "localhost.example.com"] {
        assert!(!is_loopback_host(host), "{host}");
    }
}

#[test]
fn a_remote_url_without_certificate_verification_carries_a_tls_risk() {
    for mode in ["require", "prefer", "disable", "allow"] {
        let target = PgTarget::parse(&format!(
            "postgres://app:pw@db.example.com/amc?sslmode={mode}"
        ))
        .unwrap();
        let risk = target.tls_risk().expect(mode);
        assert!(risk.contains(&format!("sslmode={mode}")), "{risk}");
        assert!(risk.contains("verify-full"), "{risk}");
        assert!(!risk.contains("pw"), "{risk}");
    }
}

#[test]
fn verified_tls_or_loopback_carries_no_tls_risk() {
    for url in [
        "postgres://app@db.example.com/amc?sslmode=verify-full",
        "postgres://app@db.example.com/amc?sslmode=verify-ca",
        "postgres://app@127.0.0.1:5432/amc?sslmode=disable",
        "postgres://app@localhost/amc",
        "postgres://app@[::1]/amc",
    ] {
        assert!(PgTarget::parse(url).unwrap().tls_risk().is_none(), "{url}");
    }
}

#[test]
fn supabase_transaction_pooler_and_pgbouncer_are_detected() {
    let pooler = "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
    let session = "postgres://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres";
    let bouncer = "postgres://app:pw@db.example.com:6432/amc?pgbouncer=true";

    assert!(PgTarget::parse(pooler).unwrap().transaction_pooler);
    assert!(!PgTarget::parse(session).unwrap().transaction_pooler);
    assert!(PgTarget::parse(bouncer).unwrap().transaction_pooler);
}

#[test]
fn parameters_sqlx_does_not_read_are_dropped_by_name() {
    let target = PgTarget::parse(
        "postgres://app@127.0.0.1/amc?sslpassword=k3y&sslmode=disable&connect_timeout=3",
    )
    .unwrap();

    assert_eq!(target.dropped, vec!["sslpassword", "connect_timeout"]);
    assert!(matches!(target.options.get_ssl_mode(), PgSslMode::Disable));
}

#[test]
fn an_unparseable_url_error_does_not_carry_the_password() {
    let error = PgTarget::parse("postgres://app:s3cr3t@host:notaport/db").unwrap_err();

    assert!(!error.to_string().contains("s3cr3t"), "{error}");
    let error = PgTarget::parse("postgres://app:pa#s3cr3t@host/db").unwrap_err();
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
}

#[test]
fn a_password_split_by_a_slash_or_question_mark_is_refused_before_connecting() {
    for url in [
        "postgres://app:12/s3cr3t@db.example.com/amc",
        "postgres://app:12?s3cr3t@db.example.com/amc",
    ] {
        let error = PgTarget::parse(url).unwrap_err();
        assert!(matches!(error, DsnError::SplitPassword), "{url}: {error}");
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }
}
