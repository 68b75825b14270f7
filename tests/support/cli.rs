//! The real binary's command-line help, parsed: every long flag of a subcommand with the
//! environment variable and the default that `--help` shows for it. Tests use it to check
//! documents (README.md, deploy/) against the code, so they cannot drift from it.

use std::process::{Command, Stdio};

/// The subcommands whose flags are documented (`confab` alone takes the flags of `serve`).
pub const SUBCOMMANDS: [&str; 3] = ["serve", "mock-upstream", "datagen"];

/// Long flags clap adds to every command; they are not configuration.
pub const BUILT_IN_FLAGS: [&str; 2] = ["--help", "--version"];

/// One flag as `--help` documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpFlag {
    /// The long flag, with its dashes (`--listen`).
    pub long: String,
    /// The environment variable (`CONFAB_LISTEN`), if the flag has one.
    pub env: Option<String>,
    /// The default clap shows after the variable, if any (documented defaults written into the
    /// flag's description, like "[default: the cores available]", are not counted).
    pub default: Option<String>,
}

/// The output of `confab SUBCOMMAND --help`, run without inherited `CONFAB_*` variables (so no
/// value shows up next to a variable's name).
pub fn help_text(subcommand: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CONFAB_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args([subcommand, "--help"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run confab --help");
    assert!(
        output.status.success(),
        "confab {subcommand} --help exited with {}",
        output.status
    );
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// Every long flag of `confab SUBCOMMAND`, except clap's [`BUILT_IN_FLAGS`].
pub fn help_flags(subcommand: &str) -> Vec<HelpFlag> {
    let help = help_text(subcommand);
    let flags: Vec<HelpFlag> = parse_help(&help)
        .into_iter()
        .filter(|flag| !BUILT_IN_FLAGS.contains(&flag.long.as_str()))
        .collect();
    assert!(
        !flags.is_empty(),
        "no flags found in confab {subcommand} --help:\n{help}"
    );
    flags
}

/// Every long flag a clap help text documents, in order (clap's own included).
pub fn parse_help(help: &str) -> Vec<HelpFlag> {
    flag_blocks(help)
        .into_iter()
        .map(|(long, block)| parse_block(long, &block))
        .collect()
}

/// The long flag a help line introduces, if it is a flag line (`--listen <LISTEN>`, `-h,
/// --help`); not the `- auto: ...` lines listing possible values.
fn long_flag_of(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let rest = trimmed.strip_prefix("--").or_else(|| {
        let bytes = trimmed.as_bytes();
        let short = bytes.len() > 2 && bytes[0] == b'-' && bytes[1].is_ascii_alphanumeric();
        short.then(|| trimmed[2..].strip_prefix(", --")).flatten()
    })?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!name.is_empty()).then(|| format!("--{name}"))
}

/// Each flag with the help text that documents it: its own line up to the next flag line.
fn flag_blocks(help: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        match long_flag_of(line) {
            Some(long) => blocks.push((long, line.to_owned())),
            None => {
                if let Some((_, block)) = blocks.last_mut() {
                    block.push('\n');
                    block.push_str(line);
                }
            }
        }
    }
    blocks
}

fn parse_block(long: String, block: &str) -> HelpFlag {
    let env_at = block.find("[env: ");
    let env = env_at.map(|at| {
        block[at + "[env: ".len()..]
            .chars()
            .take_while(|c| *c != '=' && *c != ']')
            .collect()
    });
    let default = env_at.and_then(|at| {
        let after_env = &block[at..];
        let start = after_env.find("[default: ")? + "[default: ".len();
        let value = &after_env[start..];
        Some(value[..value.find(']')?].to_owned())
    });
    HelpFlag { long, env, default }
}
