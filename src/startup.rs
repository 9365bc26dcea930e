//! Building the application from settings: store, state, HTTP server (STYLE §1).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, StoreSettings};
use crate::domain::{DEFAULT_PROGRAM_ID, Program};
use crate::google::GoogleWallet;
use crate::http::pages::Pages;
use crate::metrics::Metrics;
use crate::push::queue::PushQueue;
use crate::push::queue::memory::MemoryQueue;
use crate::push::queue::redis::RedisQueue;
use crate::push::{ChangeNotifier, PushHealth};
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
    Ok(Arc::new(RedisQueue::new(manager, &redis.prefix)))
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
        let google = GoogleWallet::from_settings(&settings, clock.clone()).await?;
        if let Some(google) = &google {
            google.prepare_in_background(program);
        }
        let queue = connect_queue(&settings).await?;
        let changes = ChangeNotifier::start(queue.clone(), settings.push.coalesce);
        let pages = Arc::new(Pages::load()?);
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
        let workers = settings.http_workers;
        let state = web::Data::new(AppState {
            settings: Arc::new(settings),
            store,
            clock,
            pages,
            queue,
            changes,
            metrics: Arc::new(Metrics::new()),
            push_health: Arc::new(PushHealth::default()),
            google,
            apple,
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::http::request_id::middleware))
                .app_data(app_state.clone())
                .configure(crate::routes::routes)
        })
        .listen(listener)?
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(30)
        .run();
        Ok(Self { port, server, state, setup_link })
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

    /// Serves until the server is stopped through its handle.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
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
