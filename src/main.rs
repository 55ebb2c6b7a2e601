//! The `camwall` binary: command line, config loading, signals and exit codes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use camwall::config::{self, LoadedConfig, DEFAULT_LISTEN};
use camwall::control::ConfigStore;
use camwall::obs::logging::{self, LogFormat};
use camwall::obs::redact::redact_url;

/// Exit status for a bad config or bad arguments.
const EXIT_CONFIG: u8 = 2;
/// Exit status for a runtime failure (cannot bind, FFmpeg missing).
const EXIT_RUNTIME: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "camwall",
    version,
    about = "Watch many cameras live in a browser"
)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, default_value = "config/cameras.json")]
    config: PathBuf,
    /// Listen address HOST:PORT, a host name allowed (default: server.listen from the config,
    /// else 127.0.0.1:8000).
    #[arg(long)]
    listen: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the config and print its cameras; exit 2 if it is invalid.
    CheckConfig,
    /// Read a password on stdin (one line) and print its argon2id hash, for
    /// `server.auth.users[].password_hash`.
    HashPassword,
}

/// `camwall hash-password`: the first line of stdin, hashed. The password is never echoed.
fn hash_password() -> ExitCode {
    use std::io::BufRead;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("camwall: could not read a password on stdin");
        return ExitCode::from(EXIT_CONFIG);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("camwall: the password is empty (give it on stdin, one line)");
        return ExitCode::from(EXIT_CONFIG);
    }
    // The same rule as users added from the settings page.
    let n = password.chars().count();
    let (min, max) = camwall::app::PASSWORD_LENGTH;
    if !(min..=max).contains(&n) {
        eprintln!("camwall: a password must have {min} to {max} characters (this one has {n})");
        return ExitCode::from(EXIT_CONFIG);
    }
    match camwall::app::hash_password(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camwall: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn load_config(path: &Path) -> Result<LoadedConfig, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("camwall: invalid config\n{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check_config(path: &Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c.config,
        Err(code) => return code,
    };
    println!("{}: OK, {} camera(s)", path.display(), config.cameras.len());
    for cam in &config.cameras {
        println!(
            "  {:<20} {:<8} {:<24} {}",
            cam.id,
            if cam.enabled { "enabled" } else { "disabled" },
            cam.display_name(),
            redact_url(&cam.url)
        );
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig) => return check_config(&cli.config),
        Some(Command::HashPassword) => return hash_password(),
        None => {}
    }
    logging::init(cli.log_format);
    // The one read of the file: the store keeps exactly what was validated here.
    let loaded = match load_config(&cli.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = ConfigStore::new(cli.config.clone(), &loaded);
    // Temporary files of a write cut short by a crash would otherwise pile up beside the file.
    store.remove_stale_temp_files();
    let config = loaded.config;
    let listen: SocketAddr = match &cli.listen {
        Some(s) => match config::resolve_listen(s) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("camwall: --listen: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => {
            let s = config.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
            match config::resolve_listen(s) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!(
                        "camwall: {}: field `server.listen`: {e}",
                        cli.config.display()
                    );
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
        }
    };
    let config_dir = cli.config.parent().unwrap_or(Path::new("."));
    let public_dir = config_dir.join(&config.server.public_dir);
    if !public_dir.join("index.html").is_file() {
        info!(dir = %public_dir.display(), "no pages in the public directory: serving the built-in ones");
    }
    // Before the runtime and the cameras: a missing or bad certificate is a config error.
    let tls = match &config.server.tls {
        None => None,
        Some(t) => match camwall::app::Tls::load(t, config_dir, listen) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("camwall: {}: {e}", cli.config.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    if let Some(c) = &config.server.cluster {
        if let Err(e) = camwall::app::check_cluster(c, config_dir) {
            eprintln!("camwall: {}: {e}", cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    if let Some(t) = &tls {
        // The fingerprint is what a user compares before trusting a self-signed certificate.
        info!(
            fingerprint = %t.fingerprint,
            cert = %t.cert_path.display(),
            generated = t.generated,
            "TLS certificate (SHA-256 fingerprint {})",
            t.fingerprint
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Err(e) = camwall::init_ffmpeg() {
        eprintln!("camwall: cannot initialize FFmpeg: {e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("camwall: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let code = rt.block_on(async move {
        let listener = match camwall::app::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(%listen, error = %e, "cannot listen");
                eprintln!("camwall: cannot listen on {listen}: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let local = listener.local_addr().unwrap_or(listen);
        let app = camwall::app::App::start(&config, public_dir, store);
        let manager = app.manager();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                error!("cannot listen for SIGHUP: config reloads are off");
                return;
            };
            while hup.recv().await.is_some() {
                info!("SIGHUP: reloading the config");
                // Every outcome is logged here, and only here.
                match manager.reload().await {
                    Ok(cameras) => info!(cameras, "config reloaded"),
                    Err(e) => error!("reload refused, cameras unchanged: {e}"),
                }
            }
        });
        info!(
            cameras = config.cameras.len(),
            "camwall listening on {scheme}://{local}"
        );
        // Tests and scripts read this line to learn the port when started with port 0.
        println!("camwall listening on {scheme}://{local}");
        app.serve(listener, tls, shutdown_signal()).await;
        ExitCode::SUCCESS
    });
    // Blocking threads stuck inside FFmpeg (a DNS lookup cannot be interrupted) must not hold
    // the process: give them a moment, then leave.
    rt.shutdown_timeout(Duration::from_millis(300));
    code
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    wait_signal().await;
    info!("signal received: stopping (send it again to exit at once)");
    tokio::spawn(async {
        wait_signal().await;
        warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
