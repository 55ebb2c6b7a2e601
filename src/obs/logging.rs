//! Logging setup: `tracing` with the level from `CAMWALL_LOG`, as text or JSON lines. Colours
//! only on a terminal: escape codes in a log file or journal are noise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `CAMWALL_LOG` takes `EnvFilter` syntax (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CAMWALL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,warp=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
}
