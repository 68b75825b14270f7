//! The `confab` binary: parses the command line, starts the server, and stops it cleanly on
//! SIGINT or SIGTERM (a second signal exits at once).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use confab::cli::{Cli, Command, DatagenArgs, MockArgs, ServeArgs};
use confab::config::UringTaskWork;
use confab::server::shutdown::ShutdownSignal;
use confab::server::RuntimeSetup;
use signal_hook::consts::{SIGINT, SIGTERM};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log filter used when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str = "info";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Serve(args)) => serve(*args),
        None => serve(cli.serve),
        Some(Command::MockUpstream(args)) => mock_upstream(args),
        Some(Command::Datagen(args)) => datagen(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let grace = args.shutdown_grace;
    let server = confab::server::start(args.into_config()).map_err(|error| error.to_string())?;
    let signal = server.shutdown_signal();
    watch_signals(Arc::clone(&signal))?;
    signal.wait_blocking();
    tracing::info!(grace = ?grace, "shutting down: finishing in-flight requests");
    if server.wait_stopped_accepting(grace) {
        tracing::info!("every worker has stopped accepting connections");
    }
    server.shutdown().map_err(|error| error.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

fn mock_upstream(args: MockArgs) -> Result<(), String> {
    let setup = RuntimeSetup::resolve(args.driver, UringTaskWork::default(), false)
        .map_err(|error| error.to_string())?;
    let mock =
        confab::mock::start(args.listen, args.threads, setup).map_err(|error| error.to_string())?;
    tracing::info!(listen = %mock.local_addr(), threads = args.threads, "mock upstream serving");
    let signal = Arc::new(ShutdownSignal::default());
    watch_signals(Arc::clone(&signal))?;
    signal.wait_blocking();
    mock.shutdown().map_err(|error| error.to_string())
}

fn datagen(args: DatagenArgs) -> Result<(), String> {
    let options = confab::conversations::datagen::DatagenOptions {
        out: args.out,
        conversations: args.conversations,
        seed: args.seed,
    };
    let summary =
        confab::conversations::datagen::generate(&options).map_err(|error| error.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).map_err(|error| error.to_string())?
    );
    Ok(())
}

/// Triggers `signal` on the first SIGINT or SIGTERM; exits the process on the second.
fn watch_signals(signal: Arc<ShutdownSignal>) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|error| format!("cannot install signal handlers: {error}"))?;
    std::thread::Builder::new()
        .name("confab-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if signal.is_triggered() {
                    tracing::warn!("second signal: exiting without finishing");
                    std::process::exit(1);
                }
                signal.trigger();
            }
        })
        .map_err(|error| format!("cannot start the signal thread: {error}"))?;
    Ok(())
}
