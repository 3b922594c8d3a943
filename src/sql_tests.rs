use super::*;

fn at(line: usize, column: usize) -> Position {
    Position { line, column }
}

#[test]
fn a_comment_on_the_first_line_is_removed_and_the_query_kept() {
    let sql = "-- weekly campaign totals\nSELECT campaign\nFROM t\n";
    assert_eq!(single_line(sql).unwrap(), "SELECT campaign FROM t");
}

#[test]
fn a_line_comment_ends_at_its_line_and_separates_tokens() {
    let sql = "SELECT a,-- first\r\n  b -- second\nFROM t";
    assert_eq!(single_line(sql).unwrap(), "SELECT a, b FROM t");
}

#[test]
fn block_comments_are_removed_and_separate_the_tokens_around_them() {
    assert_eq!(single_line("SELECT a/*x*/b").unwrap(), "SELECT a b");
    let sql = "SELECT a /* several\n lines -- with a dash comment inside\n */ , b FROM t";
    assert_eq!(single_line(sql).unwrap(), "SELECT a , b FROM t");
}

#[test]
fn block_comments_do_not_nest() {
    // The first `*/` ends the comment, so `still */` is SQL text.
    assert_eq!(
        single_line("SELECT /* a /* b */ still */ 1").unwrap(),
        "SELECT still */ 1"
    );
    assert_eq!(single_line("SELECT /*/ x */ 1").unwrap(), "SELECT 1");
}

#[test]
fn doubled_quotes_stay_inside_their_literal_or_identifier() {
    let sql = "SELECT 'it''s -- not a comment', \"odd\"\"name\" FROM t";
    assert_eq!(single_line(sql).unwrap(), sql);
}

#[test]
fn whitespace_inside_a_literal_is_kept_exactly() {
    let sql = "SELECT *\nFROM t\nWHERE tag = 'a  b'   AND x = ' '";
    assert_eq!(
        single_line(sql).unwrap(),
        "SELECT * FROM t WHERE tag = 'a  b' AND x = ' '"
    );
}

#[test]
fn comment_markers_inside_literals_are_text() {
    let sql = "SELECT '-- kept', '/* kept */', '/* also' FROM t";
    assert_eq!(single_line(sql).unwrap(), sql);
}

#[test]
fn quoted_identifiers_keep_their_spaces() {
    let sql = "SELECT   x AS \"Campaign  Name\"\nFROM \"my table\"";
    assert_eq!(
        single_line(sql).unwrap(),
        "SELECT x AS \"Campaign  Name\" FROM \"my table\""
    );
}

#[test]
fn tabs_and_unicode_white_space_outside_literals_become_one_space() {
    let sql = "SELECT\ta,\u{a0}b\u{2003}\u{2028}FROM t";
    assert_eq!(single_line(sql).unwrap(), "SELECT a, b FROM t");
}

#[test]
fn trailing_semicolons_comments_and_space_are_removed() {
    assert_eq!(single_line("SELECT 1;\n").unwrap(), "SELECT 1");
    assert_eq!(single_line("  SELECT 1 ; ;  -- end\n").unwrap(), "SELECT 1");
    assert_eq!(single_line("SELECT ';' ;").unwrap(), "SELECT ';'");
}

#[test]
fn placeholders_inside_literals_are_kept_for_substitution() {
    let sql = "SELECT 1 FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}' -- window";
    assert_eq!(
        single_line(sql).unwrap(),
        "SELECT 1 FROM t WHERE d >= '{{start_date}}' AND d <= '{{end_date}}'"
    );
}

#[test]
fn normalising_twice_changes_nothing() {
    let sql = "-- notes\nSELECT  'a  b' /* x */ ,\"c  d\"\nFROM t;";
    let once = single_line(sql).unwrap();
    assert_eq!(single_line(&once).unwrap(), once);
}

#[test]
fn an_unterminated_literal_names_the_line_and_column_where_it_starts() {
    let error = single_line("SELECT 1\nFROM t\nWHERE x = 'abc\nGROUP BY 1").unwrap_err();
    assert_eq!(
        error,
        SqlError::Unterminated {
            construct: Construct::StringLiteral,
            start: at(3, 11),
        }
    );
    assert_eq!(
        error.to_string(),
        "unterminated string literal starting at line 3, column 11"
    );
}

#[test]
fn an_unterminated_quoted_identifier_or_block_comment_names_where_it_starts() {
    assert_eq!(
        single_line("SELECT \"abc FROM t").unwrap_err(),
        SqlError::Unterminated {
            construct: Construct::QuotedIdentifier,
            start: at(1, 8),
        }
    );
    let error = single_line("SELECT 1\r\n  /* open\nFROM t").unwrap_err();
    assert_eq!(
        error,
        SqlError::Unterminated {
            construct: Construct::BlockComment,
            start: at(2, 3),
        }
    );
    assert!(error.to_string().contains("line 2, column 3"), "{error}");
}

#[test]
fn a_line_break_or_tab_inside_a_literal_is_refused_with_both_positions() {
    let error = single_line("SELECT 'two\nlines' FROM t").unwrap_err();
    assert_eq!(
        error,
        SqlError::LineBreakInQuotes {
            construct: Construct::StringLiteral,
            start: at(1, 8),
            found: at(1, 12),
        }
    );
    assert!(matches!(
        single_line("SELECT \"a\tb\" FROM t"),
        Err(SqlError::LineBreakInQuotes { .. })
    ));
}

#[test]
fn sql_made_only_of_comments_is_empty() {
    assert_eq!(
        single_line("-- nothing\n/* here */ ;\n").unwrap_err(),
        SqlError::Empty
    );
}

#[test]
fn a_scan_reports_where_the_first_dash_comment_starts() {
    let scanned = scan("SELECT a -- b FROM t").unwrap();
    assert_eq!(scanned.text, "SELECT a");
    assert_eq!(scanned.first_line_comment, Some(at(1, 10)));
    assert_eq!(
        scan("SELECT '--' /* -- */").unwrap().first_line_comment,
        None
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(
        single_line("SELECT 'é', 'x").unwrap_err(),
        SqlError::Unterminated {
            construct: Construct::StringLiteral,
            start: at(1, 13),
        }
    );
}
