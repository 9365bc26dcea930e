//! The `loy` command line: subcommands call into the library.

mod demo;
mod keys;
mod ledger;
mod migrate;
mod ops;
mod programs;
mod push;
mod segments;
mod staff;
mod transfer;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::apple;
use crate::config::Settings;
use crate::startup::{Application, shutdown_signal};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "loy", version, about = "Loyalty cards in Apple Wallet and Google Wallet, self-hosted")]
pub struct Cli {
    /// A TOML settings file (keys as in .env.example, lower case, without LOY_); LOY_* variables
    /// override it. Also LOY_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve,
    /// Check the settings and print them (secrets hidden), then exit.
    Config,
    /// Run push workers only (no HTTP server), sharing the work through LOY_REDIS_URL.
    Worker,
    /// Push operations: push a card now, inspect and replay dead letters.
    #[command(subcommand)]
    Push(push::PushCommand),
    /// Manage API keys (POS systems and integrations). Works while the server runs.
    #[command(subcommand, name = "api-key")]
    ApiKey(keys::ApiKeyCommand),
    /// Manage POS webhook sources and their signing secrets.
    #[command(subcommand, name = "webhook-source")]
    WebhookSource(keys::WebhookSourceCommand),
    /// Manage the endpoints loy sends its events to (CRMs), and their deliveries.
    #[command(subcommand, name = "webhook-endpoint")]
    WebhookEndpoint(webhooks::WebhookEndpointCommand),
    /// Staff accounts of the console (/admin): add the first owner, list accounts.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Loyalty programs: list, create, show, archive and unarchive them.
    #[command(subcommand)]
    Program(programs::ProgramCommand),
    /// Customer segments (RFM): compute them now.
    #[command(subcommand)]
    Segments(segments::SegmentsCommand),
    /// Demo data for trying the console and for benchmarks.
    #[command(subcommand)]
    Demo(demo::DemoCommand),
    /// Verify stored data.
    #[command(subcommand)]
    Check(ledger::CheckCommand),
    /// Ledger maintenance.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Bring customers and balances in from a CSV file.
    #[command(subcommand)]
    Import(transfer::ImportCommand),
    /// Write customers or transactions as CSV (UTF-8 with a byte-order mark).
    #[command(subcommand)]
    Export(transfer::ExportCommand),
    /// Apple certificates: generate development ones, or check the configured ones.
    Certs {
        #[command(subcommand)]
        action: CertsCommand,
    },
    /// Apple Wallet passes.
    Pass {
        #[command(subcommand)]
        action: PassCommand,
    },
    /// Copy the embedded store consistently into FILE, also while the server runs.
    Backup {
        /// The new backup file (never overwritten).
        file: PathBuf,
    },
    /// Restore a backup made by `loy backup` into an empty LOY_DATA_DIR.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Copy the embedded store of LOY_DATA_DIR into an empty MongoDB database and verify the
    /// copy (counts, and every card's balance against its ledger). The store file is only read.
    Migrate {
        /// The MongoDB connection string to copy into.
        #[arg(long = "to-mongodb", value_name = "URI")]
        to_mongodb: String,
        /// The database to fill; it must hold no documents.
        #[arg(long, value_name = "NAME")]
        database: String,
    },
    /// Ask the server on LOY_BIND whether it is ready: exit 0 if so (container health checks).
    Healthcheck {
        /// The path to ask (`/healthz` for a `loy worker`, which has no `/readyz`).
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate throwaway development certificates (a CA and a signer shaped like Apple's) into
    /// LOY_APPLE_DEV_DIR; usable ones are kept.
    Dev {
        /// Make new ones even if usable ones exist (devices must trust the new CA).
        #[arg(long)]
        force: bool,
    },
    /// Report what is configured and everything wrong with it; exits 1 when something is.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum PassCommand {
    /// Check a .pkpass the way Wallet does; exits 0 only for a valid pass.
    Lint {
        /// The .pkpass file.
        file: PathBuf,
        /// The CA the signature must chain to (default: the configured WWDR intermediate, or the
        /// development CA).
        #[arg(long, value_name = "CA.pem")]
        ca: Option<PathBuf>,
    },
}

/// Parses the command line and runs the command; the process exit code is its result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (settings, warnings) = match Settings::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("loy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log_filter, settings.log_format);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Config => {
                print_settings(&settings);
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker => push::worker(settings).await,
            Command::Push(command) => push::push(&settings, command).await,
            Command::ApiKey(command) => keys::api_key(&settings, command).await,
            Command::WebhookSource(command) => keys::webhook_source(&settings, command).await,
            Command::WebhookEndpoint(command) => webhooks::webhook_endpoint(&settings, command).await,
            Command::Staff(command) => staff::staff(&settings, command).await,
            Command::Program(command) => programs::program(&settings, command).await,
            Command::Segments(command) => segments::segments(&settings, command).await,
            Command::Demo(command) => demo::demo(&settings, command).await,
            Command::Check(command) => ledger::check(&settings, command).await,
            Command::Ledger(command) => ledger::ledger(&settings, command).await,
            Command::Import(command) => transfer::import(&settings, command).await,
            Command::Export(command) => transfer::export(&settings, command).await,
            Command::Certs { action: CertsCommand::Dev { force } } => {
                apple::tools::certs_dev(&settings, force, &mut std::io::stdout())
            }
            Command::Certs { action: CertsCommand::Check } => {
                apple::tools::certs_check(&settings, &mut std::io::stdout())
            }
            Command::Pass { action: PassCommand::Lint { file, ca } } => {
                apple::tools::pass_lint(&settings, &file, ca.as_deref(), &mut std::io::stdout())
            }
            Command::Backup { file } => ops::backup(&settings, &file).await,
            Command::Restore { file } => ops::restore(&settings, &file).await,
            Command::Migrate { to_mongodb, database } => migrate::migrate(&settings, &to_mongodb, &database).await,
            Command::Healthcheck { path } => ops::healthcheck(&settings, &path).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "loy stopped with an error");
            eprintln!("loy: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let bind = settings.bind;
    let public_url = settings.public_url.clone();
    let store = settings.store_description();
    let app = Application::build(settings).await?;
    tracing::info!(%bind, %public_url, %store, "loy is serving: registration form at {public_url}/");
    let state = app.state();
    let gateway = crate::push::apns::from_settings(&state.settings, &state.apple)?;
    state.push_health.apns_configured.store(gateway.is_some(), std::sync::atomic::Ordering::Relaxed);
    let workers = state.settings.push.workers;
    let push = (workers > 0).then(|| {
        let worker = std::sync::Arc::new(state.worker(gateway, state.apple.pass_type_id().as_str()));
        crate::push::PushRuntime::start(worker, workers)
    });
    if push.is_none() {
        tracing::info!("LOY_WORKERS=0: no push workers in this process; run `loy worker` elsewhere");
    }
    let maintenance = tokio::spawn(crate::maintenance::run_forever(
        state.store.clone(),
        state.clock.clone(),
        state.changes.clone(),
        state.settings.maintenance_interval,
    ));
    let mail = state
        .mail
        .is_some()
        .then(|| tokio::spawn(crate::mail::outbox::run_forever(state.clone(), std::time::Duration::from_secs(5))));
    if mail.is_none() {
        tracing::info!("LOY_SMTP_URL is not set: e-mail is off");
    }
    let webhooks = tokio::spawn(crate::webhooks::delivery::run_forever(state.clone()));
    // Console imports left by a node that stopped, or due again after a failed attempt.
    let imports = tokio::spawn(crate::import::jobs::run_forever(state.clone(), std::time::Duration::from_secs(10)));
    // Messages when their time comes, and fan-outs left by a node that stopped.
    let messages = tokio::spawn(crate::messages::fanout::run_forever(state.clone(), std::time::Duration::from_secs(5)));
    // Customer segments on their schedule, and those asked for on another node.
    let segments =
        tokio::spawn(crate::segments::runner::run_forever(state.clone(), std::time::Duration::from_secs(30)));
    // The dashboard's daily figures, kept up to date from the ledger in the background.
    let stats = tokio::spawn(crate::stats::run_forever(state.store.clone(), state.clock.clone()));
    // Google Wallet saves and deletes whose callbacks never arrived.
    let reconcile =
        state.google.as_ref().and_then(|g| g.reconcile_schedule()).map(|(interval, batch)| {
            tokio::spawn(crate::google::reconcile::run_forever(state.clone(), interval, batch))
        });
    let handle = app.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing requests in flight");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    // Changes accepted just before the stop reach the queue now rather than via the sweeper.
    if !state.changes.flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!("some card changes did not reach the push queue; the sweeper will find them");
    }
    maintenance.abort();
    webhooks.abort();
    imports.abort();
    messages.abort();
    segments.abort();
    stats.abort();
    if let Some(reconcile) = reconcile {
        reconcile.abort();
    }
    if let Some(mail) = mail {
        mail.abort();
    }
    if let Some(push) = push {
        tracing::info!("finishing the push jobs in hand");
        push.stop().await;
    }
    tracing::info!("loy stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_settings(s: &Settings) {
    println!("environment      {:?}", s.environment);
    println!("bind             {}", s.bind);
    println!("public_url       {}", s.public_url);
    println!("data_dir         {}", s.data_dir.display());
    println!("store            {}", s.store_description());
    match &s.redis {
        Some(r) => println!("queue            Redis (prefix {})", r.prefix),
        None => println!("queue            in-process"),
    }
    println!("default_locale   {}", s.default_locale);
    println!("phone_region     {}", s.default_phone_region.code());
    match &s.google {
        Some(g) => println!(
            "google_wallet    issuer {}, key {}, API {}",
            g.issuer_id,
            g.service_account_key.display(),
            g.api_base_url
        ),
        None => println!("google_wallet    off"),
    }
    match &s.apple.signer {
        Some(files) => println!("apple            certificate {}", files.certificate.display()),
        None => println!("apple            development certificates in {}", s.apple.dev_dir.display()),
    }
    let seg = &s.segments;
    println!(
        "segments         every {} h (0: on demand only), window {} days, {} cards a step",
        seg.every_hours, seg.window_days, seg.batch
    );
    println!("apple_pass_type  {}", s.apple.effective_pass_type_id());
    println!("apple_team       {}", s.apple.effective_team_id());
    let w = &s.webhooks;
    println!(
        "webhooks         timeout {} ms, retries for {} s, private addresses {}",
        w.timeout.as_millis(),
        w.max_age.as_secs(),
        if w.allow_private { "allowed" } else { "refused" }
    );
    let security = &s.security;
    println!("trusted_proxies  {}", if security.trusted_proxies.is_empty() { "none" } else { "configured" });
    for limit in crate::rate_limit::ALL {
        match security.rate_limits.rate(*limit) {
            Some(rate) => println!(
                "rate_limit       {}: {} per {} s, burst {}",
                limit.name,
                rate.count,
                rate.period.as_secs(),
                rate.burst
            ),
            None => println!("rate_limit       {}: off", limit.name),
        }
    }
    let metrics = match (&security.metrics_token, security.metrics_bind) {
        (Some(_), Some(bind)) => format!("token (hidden), and listener {bind}"),
        (Some(_), None) => "token (hidden)".to_owned(),
        (None, Some(bind)) => format!("listener {bind}"),
        (None, None) => "closed".to_owned(),
    };
    println!("metrics          {metrics}");
    println!("devices_per_pass {}", security.max_devices_per_pass);
}
