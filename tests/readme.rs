//! README.md's configuration tables against the real binary: every long flag that `confab
//! SUBCOMMAND --help` lists has a row in that subcommand's table, naming the flag's environment
//! variable and showing the default the binary shows, and no table lists a flag the binary
//! does not have. And its errors table against [`ProblemKind`]: every problem `type` confab can
//! answer with has a row with its status, and no row names a kind that does not exist. So the
//! tables cannot drift from the code.

mod support;

use std::collections::BTreeSet;

use confab::problem::ProblemKind;
use support::cli::{help_flags, parse_help, HelpFlag, SUBCOMMANDS};

const README: &str = include_str!("../README.md");

/// One row of a configuration table: its flag, environment and default cells.
#[derive(Debug)]
struct Row {
    flag: String,
    env: String,
    default: String,
}

/// The body lines (header and separator left out) of the first table under `heading`, before
/// the next heading of any level.
fn table_under(heading: &str) -> Vec<&'static str> {
    let lines: Vec<&'static str> = README.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.trim() == heading)
        .unwrap_or_else(|| panic!("README.md has no heading {heading}"));
    let table: Vec<&'static str> = lines[start + 1..]
        .iter()
        .take_while(|line| !line.starts_with('#'))
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .copied()
        .collect();
    assert!(table.len() > 2, "README.md has no table under {heading}");
    table[2..].to_vec()
}

/// The rows of the table that follows the heading ``### `confab SUBCOMMAND` ``.
fn table_rows(subcommand: &str) -> Vec<Row> {
    let heading = format!("### `confab {subcommand}`");
    table_under(&heading).into_iter().map(parse_row).collect()
}

fn parse_row(line: &str) -> Row {
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    assert!(
        cells.len() >= 6,
        "a configuration row has four cells (flag, environment, default, meaning): {line}"
    );
    Row {
        flag: cells[1].trim_matches('`').to_owned(),
        env: cells[2].to_owned(),
        default: cells[3].to_owned(),
    }
}

fn names<'a>(flags: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    flags.map(str::to_owned).collect()
}

fn assert_row_matches(subcommand: &str, flag: &HelpFlag, row: &Row) {
    if let Some(env) = &flag.env {
        assert!(
            row.env.contains(&format!("`{env}`")),
            "confab {subcommand} {}: README names {:?}, --help names {env}",
            flag.long,
            row.env
        );
    }
    if let Some(default) = &flag.default {
        assert!(
            row.default.contains(&format!("`{default}`")),
            "confab {subcommand} {}: README's default is {:?}, --help shows {default:?}",
            flag.long,
            row.default
        );
    }
}

#[test]
fn every_flag_of_every_subcommand_is_in_its_readme_table() {
    for subcommand in SUBCOMMANDS {
        let flags = help_flags(subcommand);
        let rows = table_rows(subcommand);
        let in_help = names(flags.iter().map(|flag| flag.long.as_str()));
        let in_readme = names(rows.iter().map(|row| row.flag.as_str()));
        assert_eq!(
            in_readme.symmetric_difference(&in_help).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "confab {subcommand}: flags in README.md's table {in_readme:?}, in --help {in_help:?}"
        );
        for flag in &flags {
            let row = rows.iter().find(|row| row.flag == flag.long);
            assert_row_matches(subcommand, flag, row.expect("checked above"));
        }
    }
}

#[test]
fn help_parsing_reads_long_and_compact_help() {
    let help = "Options:\n      --listen <LISTEN>\n          Address\n          \n          \
        [env: CONFAB_LISTEN=]\n          [default: 127.0.0.1:8080]\n\n      --threads <T>\n          \
        Workers [default: the cores]\n          [env: CONFAB_THREADS=]\n      --driver <D>\n          \
        - auto:  x\n          [env: CONFAB_DRIVER=]\n          [default: auto]\n      \
        --seed <SEED>  Seed [env: CONFAB_SEED=] [default: 1]\n  -h, --help  Print help\n";
    let parsed: Vec<(String, Option<String>, Option<String>)> = parse_help(help)
        .into_iter()
        .map(|flag| (flag.long, flag.env, flag.default))
        .collect();
    let expected = [
        ("--listen", Some("CONFAB_LISTEN"), Some("127.0.0.1:8080")),
        ("--threads", Some("CONFAB_THREADS"), None),
        ("--driver", Some("CONFAB_DRIVER"), Some("auto")),
        ("--seed", Some("CONFAB_SEED"), Some("1")),
        ("--help", None, None),
    ]
    .map(|(long, env, default)| {
        (
            long.to_owned(),
            env.map(str::to_owned),
            default.map(str::to_owned),
        )
    });
    assert_eq!(parsed, expected);
}

/// The rows of the table under `## Errors`: the codes of the first cell (each in backticks)
/// and the statuses of the second, paired in order, as in "`unauthorized`, `forbidden` | 401, 403".
fn error_rows() -> Vec<(String, u16)> {
    let mut rows = Vec::new();
    for line in table_under("## Errors") {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let codes: Vec<&str> = cells[1]
            .split(',')
            .map(|code| code.trim().trim_matches('`'))
            .collect();
        let statuses: Vec<u16> = cells[2]
            .split(',')
            .map(|status| {
                status
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("a status: {line}"))
            })
            .collect();
        for (at, code) in codes.iter().enumerate() {
            // One status stands for every code of its row.
            let status = statuses
                .get(at)
                .or(statuses.last())
                .copied()
                .expect("a status");
            rows.push(((*code).to_owned(), status));
        }
    }
    rows
}

#[test]
fn every_problem_kind_is_in_the_readme_errors_table_with_its_status() {
    let rows = error_rows();
    for kind in ProblemKind::ALL {
        let row = rows.iter().find(|(code, _)| code == kind.code());
        assert_eq!(
            row.map(|(_, status)| *status),
            Some(kind.status()),
            "README.md's errors table: `{}` should be listed with status {}",
            kind.code(),
            kind.status()
        );
    }
    for (code, _) in &rows {
        assert!(
            ProblemKind::ALL.iter().any(|kind| kind.code() == code),
            "README.md's errors table lists `{code}`, which is no problem kind"
        );
    }
}
