//! Building the application from settings: store, state, HTTP server (STYLE §1).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::clock::{Clock, SystemClock};
use crate::config::{RedisSettings, Settings, StoreSettings};
use crate::domain::{DEFAULT_PROGRAM_ID, Program};
use crate::google::GoogleWallet;
use crate::http::pages::Pages;
use crate::metrics::Metrics;
use crate::push::queue::PushQueue;
use crate::push::queue::memory::MemoryQueue;
use crate::push::queue::redis::RedisQueue;
use crate::push::{ChangeNotifier, PushHealth};
use crate::rate_limit::{RateLimits, RedisLimiter};
use crate::state::AppState;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;
use crate::store::{DynStore, Faults};

/// Opens the configured store (creating indexes or migrating the schema).
pub async fn connect_store(settings: &Settings, faults: Arc<Faults>) -> anyhow::Result<DynStore> {
    Ok(match &settings.store {
        StoreSettings::Embedded { path, synchronous_full } => {
            let path = path.clone();
            let full = *synchronous_full;
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&path, full, faults)).await??;
            Arc::new(store)
        }
        StoreSettings::Mongo { uri, database } => {
            Arc::new(MongoStore::connect(uri.expose_secret(), database, faults).await?)
        }
    })
}

/// Opens the store for a command-line tool and returns it with the default program.
pub async fn open_for_tool(settings: &Settings) -> anyhow::Result<(DynStore, Program)> {
    let store = connect_store(settings, Arc::new(Faults::default())).await?;
    let program = ensure_default_program(settings, &store, &SystemClock).await?;
    Ok((store, program))
}

/// The push queue the settings name: Redis (checked to answer) or in-process.
pub async fn connect_queue(settings: &Settings) -> anyhow::Result<Arc<dyn PushQueue>> {
    let Some(redis) = &settings.redis else {
        return Ok(Arc::new(MemoryQueue::new()));
    };
    Ok(Arc::new(RedisQueue::new(connect_redis(redis).await?, &redis.prefix)))
}

/// The queue of cards owed webhook deliveries: in Redis (under `{prefix}:webhooks`) or
/// in-process, like the push queue.
pub async fn connect_webhook_queue(settings: &Settings) -> anyhow::Result<Arc<dyn PushQueue>> {
    connect_named_queue(settings, "webhooks").await
}

/// The Google lane's queue of cards (`push::google_lane`): in Redis (under `{prefix}:google`)
/// or in-process, like the push queue.
pub async fn connect_google_queue(settings: &Settings) -> anyhow::Result<Arc<dyn PushQueue>> {
    connect_named_queue(settings, "google").await
}

async fn connect_named_queue(settings: &Settings, name: &str) -> anyhow::Result<Arc<dyn PushQueue>> {
    let Some(redis) = &settings.redis else {
        return Ok(Arc::new(MemoryQueue::new()));
    };
    Ok(Arc::new(RedisQueue::new(connect_redis(redis).await?, &format!("{}:{name}", redis.prefix))))
}

/// The rate limits the settings name, shared through Redis when Redis is configured.
pub async fn rate_limits(settings: &Settings) -> anyhow::Result<RateLimits> {
    let redis = match &settings.redis {
        Some(redis) => Some(RedisLimiter::new(connect_redis(redis).await?, &redis.prefix)),
        None => None,
    };
    Ok(RateLimits::new(&settings.security.rate_limits, redis))
}

/// A Redis connection (checked to answer) that reconnects by itself.
pub async fn connect_redis(redis: &RedisSettings) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(redis.url.expose_secret()).context("while reading LOY_REDIS_URL")?;
    // Every queue command is short (nothing blocks on the server), so a response timeout of a
    // few seconds only cuts off a Redis that is really stuck.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
        .set_response_timeout(Some(std::time::Duration::from_secs(5)));
    let manager = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        redis::aio::ConnectionManager::new_with_config(client, config),
    )
    .await
    .context("Redis did not answer within 10 s (LOY_REDIS_URL)")?
    .context("while connecting to Redis (LOY_REDIS_URL)")?;
    Ok(manager)
}

/// Creates the default program at first start.
pub async fn ensure_default_program(
    settings: &Settings,
    store: &DynStore,
    clock: &dyn Clock,
) -> anyhow::Result<Program> {
    let mut program = Program::new(DEFAULT_PROGRAM_ID, &settings.program_name, settings.currency.clone(), clock.now());
    program.rules.welcome_at_first_purchase = settings.welcome_at_first_purchase;
    store.ensure_program(&program).await.context("while creating the default program")
}

pub struct Application {
    port: u16,
    server: Server,
    /// The separate listener of `/metrics` and `/readyz` (`LOY_METRICS_BIND`), and its port.
    metrics: Option<(u16, Server)>,
    state: web::Data<AppState>,
    setup_link: Option<String>,
}

impl Application {
    /// Connects to what the settings name and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = connect_store(&settings, Arc::new(Faults::default())).await?;
        Self::build_with(settings, store, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with a given store and clock (tests inject both).
    pub async fn build_with(settings: Settings, store: DynStore, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let program = ensure_default_program(&settings, &store, clock.as_ref()).await?;
        crate::enrollment::phones::migrate_once(store.as_ref(), settings.default_phone_region, clock.now())
            .await
            .context("while re-normalising stored phone numbers")?;
        crate::programs::publish::finish_fan_outs(&store, clock.now())
            .await
            .context("while finishing an interrupted design publish")?;
        let google = GoogleWallet::from_settings(&settings, clock.clone()).await?;
        if let Some(google) = &google {
            google.prepare_in_background(program);
        }
        let queue = connect_queue(&settings).await?;
        let google_queue = match &google {
            Some(_) => Some(connect_google_queue(&settings).await?),
            None => None,
        };
        let changes = ChangeNotifier::start(queue.clone(), settings.push.coalesce);
        let limits = Arc::new(rate_limits(&settings).await?);
        let pages = Arc::new(Pages::load()?);
        let mail = match &settings.mail {
            Some(mail) => Some(crate::mail::Mail::from_settings(mail).context("while setting up e-mail")?),
            None => None,
        };
        let webhooks = crate::webhooks::Webhooks::new(&settings.webhooks, connect_webhook_queue(&settings).await?)
            .context("while setting up the webhook sender")?;
        crate::admin::page::AdminPages::load().context("while loading the console templates")?;
        let setup_link = crate::admin::setup::link_if_no_staff(store.as_ref(), &settings.public_url, clock.now())
            .await
            .context("while looking for staff accounts")?;
        if let Some(link) = &setup_link {
            tracing::info!(
                "no staff account exists yet: open {link} within {} minutes to create the first owner \
                 (or run `loy staff add EMAIL --role owner`)",
                crate::admin::setup::VALID_FOR_MINUTES
            );
        }
        let apple_settings = settings.clone();
        let apple = tokio::task::spawn_blocking(move || crate::apple::Apple::load(&apple_settings))
            .await
            .context("while loading the Apple certificate and card design")??;
        let apple = Arc::new(apple);
        let listener =
            TcpListener::bind(settings.bind).with_context(|| format!("while binding LOY_BIND={}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match settings.security.metrics_bind {
            Some(bind) => {
                Some(TcpListener::bind(bind).with_context(|| format!("while binding LOY_METRICS_BIND={bind}"))?)
            }
            None => None,
        };
        let workers = settings.http_workers;
        let grace = settings.push.shutdown_grace.as_secs();
        let programs = crate::programs::ProgramCache::new(settings.program_cache);
        let state = web::Data::new(AppState {
            programs,
            strips: Arc::default(),
            settings: Arc::new(settings),
            store,
            clock,
            pages,
            queue,
            changes,
            metrics: Arc::new(Metrics::new()),
            push_health: Arc::new(PushHealth::default()),
            google,
            google_queue,
            apple,
            limits,
            mail,
            webhooks,
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::http::head_as_get))
                .wrap(from_fn(crate::http::security::middleware))
                .wrap(from_fn(crate::http::request_id::middleware))
                .app_data(app_state.clone())
                .configure(crate::routes::routes)
        })
        .listen(listener)?
        .workers(workers)
        .disable_signals()
        // On SIGTERM: stop accepting, let requests in flight finish within LOY_SHUTDOWN_GRACE.
        .shutdown_timeout(grace)
        .run();
        let metrics = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                let app_state = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap(from_fn(crate::http::head_as_get))
                        .wrap(from_fn(crate::http::security::middleware))
                        .app_data(app_state.clone())
                        .app_data(crate::http::MetricsListener)
                        .route("/metrics", web::get().to(crate::http::metrics))
                        .route("/readyz", web::get().to(crate::http::health::readyz))
                        .route("/healthz", web::get().to(crate::http::health::healthz))
                })
                .listen(listener)?
                .workers(1)
                .disable_signals()
                .shutdown_timeout(5)
                .run();
                Some((port, server))
            }
            None => None,
        };
        Ok(Self { port, server, metrics, state, setup_link })
    }

    /// The port of the metrics listener, when `LOY_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// The one-time first-owner link printed at start, when there was no staff account.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped through its handle (the metrics listener stops with it).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Some((_, metrics)) = self.metrics else { return self.server.await };
        let metrics_handle = metrics.handle();
        let metrics = tokio::spawn(metrics);
        let result = self.server.await;
        metrics_handle.stop(true).await;
        let _ = metrics.await;
        result
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
