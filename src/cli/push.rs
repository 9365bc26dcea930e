//! `loy worker` and `loy push …`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::apple::Apple;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::SerialNumber;
use crate::metrics::Metrics;
use crate::push::worker::{JobResult, Worker, replay};
use crate::push::{PushHealth, PushRuntime, apns};
use crate::startup::{connect_queue, open_for_tool, shutdown_signal};

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Push one card to every registered device now, whether or not it is owed a push.
    Card { serial: String },
    /// Pushes given up after repeated failures.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetterCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List them, newest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Push them again: one by id, or all with --all.
    Replay {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

/// A worker on the configured store and queue, with APNs as configured.
async fn build_worker(settings: &Settings) -> anyhow::Result<(Worker, Arc<Apple>)> {
    let (store, _) = open_for_tool(settings).await?;
    let queue = connect_queue(settings).await?;
    let apple_settings = settings.clone();
    let apple = Arc::new(tokio::task::spawn_blocking(move || Apple::load(&apple_settings)).await??);
    let gateway = apns::from_settings(settings, &apple)?;
    let health = Arc::new(PushHealth::default());
    health.apns_configured.store(gateway.is_some(), std::sync::atomic::Ordering::Relaxed);
    let worker = Worker {
        store,
        queue,
        gateway,
        topic: apple.pass_type_id().to_string(),
        settings: settings.push.clone(),
        metrics: Arc::new(Metrics::new()),
        health,
        clock: Arc::new(SystemClock),
        google: None,
        google_lane: None,
        programs: crate::programs::ProgramCache::new(settings.program_cache),
        webhooks: None,
    };
    Ok((worker, apple))
}

pub async fn worker(settings: Settings) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        settings.redis.is_some(),
        "loy worker needs LOY_REDIS_URL to share the work; without Redis run the workers inside `loy serve` (LOY_WORKERS)"
    );
    let (mut worker, _apple) = build_worker(&settings).await?;
    worker.google = crate::google::GoogleWallet::from_settings(&settings, worker.clock.clone()).await?;
    if worker.google.is_some() {
        worker.google_lane = Some(crate::startup::connect_google_queue(&settings).await?);
    }
    let workers = settings.push.workers.max(1);
    let worker = Arc::new(worker);
    // `/healthz` and `/metrics` of this process (its pushes, retries, dead letters) on LOY_BIND,
    // which serves nothing public; with LOY_METRICS_TOKEN set, /metrics needs it here too.
    let (metrics, queue) = (worker.metrics.clone(), worker.queue.clone());
    let token = settings.security.metrics_token.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new((metrics.clone(), queue.clone(), token.clone())))
            .route("/healthz", actix_web::web::get().to(crate::http::health::healthz))
            .route("/metrics", actix_web::web::get().to(worker_metrics))
    })
    .bind(settings.bind)
    .with_context(|| format!("while binding LOY_BIND={} for the worker's /healthz and /metrics", settings.bind))?
    .workers(1)
    .disable_signals()
    .run();
    let http = server.handle();
    let serving = tokio::spawn(server);
    tracing::info!(workers, queue = worker.queue.backend(), bind = %settings.bind, "push workers started; /metrics on LOY_BIND");
    let runtime = PushRuntime::start(worker, workers);
    shutdown_signal().await;
    tracing::info!("shutdown requested: finishing the push jobs in hand");
    runtime.stop().await;
    http.stop(true).await;
    let _ = serving.await;
    tracing::info!("push workers stopped");
    Ok(ExitCode::SUCCESS)
}

type WorkerState =
    actix_web::web::Data<(Arc<Metrics>, Arc<dyn crate::push::queue::PushQueue>, Option<secrecy::SecretString>)>;

async fn worker_metrics(state: WorkerState, req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let (metrics, queue, token) = state.get_ref();
    if let Some(token) = token
        && !crate::http::bearer_matches(&req, token)
    {
        return crate::http::errors::ApiError::unauthorized(
            "The metrics need `Authorization: Bearer <LOY_METRICS_TOKEN>`.",
        )
        .response();
    }
    crate::http::render_metrics(metrics, queue.as_ref(), None).await
}

pub async fn push(settings: &Settings, command: PushCommand) -> anyhow::Result<ExitCode> {
    match command {
        PushCommand::Card { serial } => {
            let serial = SerialNumber::parse(&serial).map_err(|e| anyhow::anyhow!("{serial}: {e}"))?;
            let (mut worker, _apple) = build_worker(settings).await?;
            worker.google = crate::google::GoogleWallet::from_settings(settings, worker.clock.clone()).await?;
            if worker.gateway.is_none() && worker.google.is_none() {
                eprintln!("loy: neither APNs nor Google Wallet is configured: there is nothing to push to");
                return Ok(ExitCode::FAILURE);
            }
            match worker.push_card_now(&serial).await.context("while pushing")? {
                JobResult::NothingOwed => {
                    eprintln!("loy: no card has the serial {serial}");
                    return Ok(ExitCode::FAILURE);
                }
                JobResult::Pushed { version, devices } => {
                    println!("Pushed version {version} of {serial} to {devices} devices.")
                }
                JobResult::Retrying { attempts, .. } => {
                    println!("Some pushes failed (attempt {attempts}); the workers retry them.");
                    worker.queue.enqueue(&serial, settings.push.backoff_base).await?;
                }
                JobResult::DeadLettered { letters } => {
                    println!("{letters} pushes failed for good; see `loy push dead-letters list`.")
                }
                JobResult::Deferred => println!("Pushed; the Google Wallet update follows at Google's pace."),
            }
        }
        PushCommand::DeadLetters(DeadLetterCommand::List { limit }) => {
            let (store, _) = open_for_tool(settings).await?;
            let letters = store.dead_letters(limit).await?;
            println!(
                "{:<20} {:<20} {:>7} {:<28} {:>8} {:<17} REASON",
                "ID", "SERIAL", "VERSION", "TARGET", "ATTEMPTS", "CREATED"
            );
            for l in &letters {
                println!(
                    "{:<20} {:<20} {:>7} {:<28} {:>8} {:<17} {}",
                    l.id,
                    l.serial,
                    l.version,
                    l.target,
                    l.attempts,
                    l.created_at.format("%Y-%m-%d %H:%M"),
                    l.reason
                );
            }
            if letters.is_empty() {
                println!("(none)");
            }
        }
        PushCommand::DeadLetters(DeadLetterCommand::Replay { id, all }) => {
            let (store, _) = open_for_tool(settings).await?;
            let queue = connect_queue(settings).await?;
            let ids: Vec<String> = match (id, all) {
                (Some(id), _) => vec![id],
                (None, true) => store.dead_letters(usize::MAX).await?.into_iter().map(|l| l.id).collect(),
                (None, false) => anyhow::bail!("name a dead letter id, or pass --all"),
            };
            let mut missing = 0;
            for id in &ids {
                match replay(&store, queue.as_ref(), id, SystemClock.now()).await? {
                    Some(letter) => println!("Replaying {} ({} of {}).", letter.id, letter.target, letter.serial),
                    None => {
                        eprintln!("loy: no dead letter has the id {id}");
                        missing += 1;
                    }
                }
            }
            if settings.redis.is_none() && ids.len() > missing {
                println!(
                    "Without Redis the running server's sweeper picks these up within LOY_PUSH_GRACE_MS ({} ms).",
                    settings.push.grace.as_millis()
                );
            }
            if missing > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
