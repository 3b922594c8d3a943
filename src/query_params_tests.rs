use super::*;

fn one(text: &str) -> ParamValue {
    ParamValue::One(text.to_string())
}

fn list(items: &[&str]) -> ParamValue {
    ParamValue::List(items.iter().map(|s| s.to_string()).collect())
}

fn params(entries: &[(&str, ParamValue)]) -> QueryParams {
    let mut params = QueryParams::default();
    for (name, value) in entries {
        params.insert(name, value.clone()).unwrap();
    }
    params
}

#[test]
fn the_stored_form_has_sorted_keys_and_reads_back_equal() {
    let given = params(&[("region", one("US")), ("asins", list(&["B0002", "B0001"]))]);
    let text = given.to_canonical_json();
    assert_eq!(text, r#"{"asins":["B0002","B0001"],"region":"US"}"#);
    assert_eq!(QueryParams::from_json(&text).unwrap(), given);
    assert_eq!(QueryParams::default().to_canonical_json(), "{}");
    assert_eq!(QueryParams::default().parameter_values(), None);
}

#[test]
fn a_value_is_a_literal_with_its_quotes_doubled_and_a_list_a_list_of_literals() {
    let given = params(&[
        ("brand", one("O'Brien's")),
        ("asins", list(&["B01", "it's"])),
    ]);
    let sql = "SELECT 1 FROM t WHERE brand = {{brand}} AND asin IN ({{ asins }}) AND d >= '{{start_date}}'";
    assert_eq!(
        substitute(sql, "2024-01-01", "2024-01-07", &given).unwrap(),
        "SELECT 1 FROM t WHERE brand = 'O''Brien''s' AND asin IN ('B01', 'it''s') AND d >= '2024-01-01'"
    );
}

#[test]
fn an_attempt_to_close_the_literal_stays_inside_it() {
    let given = params(&[("brand", one("x' OR 1=1 --"))]);
    let sql = "SELECT 1 FROM t WHERE brand = {{brand}}";
    let out = substitute(sql, "a", "b", &given).unwrap();
    assert_eq!(out, "SELECT 1 FROM t WHERE brand = 'x'' OR 1=1 --'");
    // The lexer reads it back as one literal: no comment, same text.
    let scanned = crate::sql::scan(&out).unwrap();
    assert_eq!(scanned.first_line_comment, None);
    assert_eq!(scanned.text, out);
}

#[test]
fn nul_control_characters_backslashes_and_bidi_controls_are_refused_naming_the_parameter() {
    for (value, what) in [
        ("a\0b", "a NUL character"),
        ("a\nb", "a control character"),
        ("a\tb", "a control character"),
        ("a\u{1b}[2J", "a control character"),
        ("a\u{202e}b", "a control character"),
        ("a\\", "a backslash"),
    ] {
        let error = QueryParams::default().insert("p", one(value)).unwrap_err();
        assert_eq!(
            error,
            ParamError::BadValue {
                name: "p".into(),
                what
            }
        );
        assert!(error.to_string().contains("`p`"), "{error}");
        let error = QueryParams::default()
            .insert("l", list(&["ok", value]))
            .unwrap_err();
        assert!(matches!(error, ParamError::BadValue { .. }), "{error:?}");
    }
}

#[test]
fn names_are_identifiers_the_dates_are_reserved_and_a_name_is_given_once() {
    for bad in ["", "1st", "a-b", "a b", "é", &"x".repeat(65)] {
        assert_eq!(
            QueryParams::default().insert(bad, one("v")),
            Err(ParamError::BadName(bad.to_string()))
        );
    }
    for reserved in [START_DATE, END_DATE] {
        assert_eq!(
            QueryParams::default().insert(reserved, one("v")),
            Err(ParamError::Reserved(reserved.to_string()))
        );
    }
    let mut given = params(&[("a", one("1"))]);
    assert_eq!(
        given.insert("a", one("2")),
        Err(ParamError::Duplicate("a".into()))
    );
    assert_eq!(
        QueryParams::default().insert("l", ParamValue::List(Vec::new())),
        Err(ParamError::EmptyList("l".into()))
    );
}

#[test]
fn a_placeholder_without_a_value_or_inside_quotes_is_refused_by_name() {
    let given = params(&[("brand", one("x"))]);
    assert_eq!(
        substitute("SELECT {{other}}", "a", "b", &given),
        Err(ParamError::Missing("other".into()))
    );
    assert_eq!(
        substitute("SELECT '{{brand}}'", "a", "b", &given),
        Err(ParamError::Quoted("brand".into()))
    );
    assert_eq!(
        substitute("SELECT \"{{ brand }}\"", "a", "b", &given),
        Err(ParamError::Quoted("brand".into()))
    );
    assert!(ParamError::Missing("other".into())
        .to_string()
        .contains("{{other}}"));
}

#[test]
fn quotes_are_followed_through_doubled_quotes_and_braces_that_are_no_name_stay_text() {
    let given = params(&[("b", one("v"))]);
    assert_eq!(
        substitute("SELECT 'it''s', {{b}}, '{{x-y}}', {{", "a", "b", &given).unwrap(),
        "SELECT 'it''s', 'v', '{{x-y}}', {{"
    );
    assert_eq!(
        substitute("{{start_date}}{{", "a", "b", &QueryParams::default()).unwrap(),
        "a{{"
    );
}

#[test]
fn checking_sql_wants_every_placeholder_filled_and_every_parameter_used() {
    let sql = "SELECT 1 WHERE a IN ({{asins}}) AND d >= '{{start_date}}'";
    let given = params(&[("asins", list(&["x"]))]);
    assert_eq!(check_sql(sql, &given), Ok(()));
    assert_eq!(
        check_sql(sql, &QueryParams::default()),
        Err(ParamError::Missing("asins".into()))
    );
    let extra = params(&[("asins", list(&["x"])), ("zone", one("us"))]);
    assert_eq!(
        check_sql(sql, &extra),
        Err(ParamError::Unused("zone".into()))
    );
    assert_eq!(
        check_sql("SELECT '{{asins}}'", &given),
        Err(ParamError::Quoted("asins".into()))
    );
}

#[test]
fn stored_parameters_that_break_the_rules_are_not_read() {
    for text in [
        "not json",
        r#"{"a": 1}"#,
        r#"{"a": "x\u0000"}"#,
        r#"{"start_date": "x"}"#,
        r#"{"a": []}"#,
    ] {
        assert!(QueryParams::from_json(text).is_err(), "{text}");
    }
}
