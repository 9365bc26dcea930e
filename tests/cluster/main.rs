//! Scale-out with real processes: two `loy serve` (`LOY_WORKERS=0`) and two `loy worker` on the
//! MongoDB-wire server and Redis of `LOY_TEST_MONGODB_URI` / `LOY_TEST_REDIS_URL`, each on its
//! own port, pushing to an APNs stand-in over TCP (`LOY_APNS_ENDPOINT`).
//!
//! One test runs the phases in order, on one fresh database:
//! 1. `spread`: registrations and POS writes over both app nodes, concurrent redeems of the
//!    same points through both, a card and its pass served by the node that did not issue
//!    it, a staff session from one node valid on the other, a change pushed by some worker;
//! 2. `fanout`: `kill -9` of one worker in the middle of a fan-out to [`fanout::CARDS`] cards
//!    with a registered device each: every device is pushed, none left behind, and duplicates
//!    stay within the bound stated there;
//! 3. `rolling`: SIGTERM and restart of all four processes one by one under continuous POS
//!    load: no write lost or doubled, comparing what the clients saw succeed with the ledger.
//!
//! Under `CI=true` a missing `LOY_TEST_MONGODB_URI` or `LOY_TEST_REDIS_URL` fails the test.

mod client;
mod fake_apns;
mod fanout;
#[path = "../common/phone.rs"]
mod phone;
mod procs;
mod rolling;
mod spread;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use loy::store::DynStore;

use procs::{Proc, Role};

/// The pass type of development certificates: the APNs topic.
pub const TOPIC: &str = loy::config::apple::DEV_PASS_TYPE_ID;
pub const PUBLIC_URL: &str = "http://loy.test";
pub const METRICS_TOKEN: &str = "cluster-metrics-token-0123456789";

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if under_ci() => panic!("{var} is not set under CI: the multi-process test must run (use scripts/test)"),
        _ => {
            eprintln!("SKIPPED: the multi-process test needs {var} (run scripts/test)");
            None
        }
    }
}

pub struct Cluster {
    pub apps: Vec<Proc>,
    pub workers: Vec<Proc>,
    pub apns: fake_apns::FakeApns,
    /// The settings every process gets (besides its own port).
    pub vars: HashMap<String, String>,
    /// The same store the processes use, for checks and setup the API does not offer.
    pub store: DynStore,
    /// The Redis queue the processes share, for its depth.
    pub queue: std::sync::Arc<dyn loy::push::queue::PushQueue>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(mongo: &str, redis: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let apns = fake_apns::FakeApns::start(TOPIC);
        let suffix = loy::domain::tokens::random_string(b"abcdefghijklmnopqrstuvwxyz0123456789", 10);
        let mut vars: HashMap<String, String> = [
            ("LOY_ENV", "development"),
            ("LOY_NODES", "2"),
            ("LOY_PUBLIC_URL", PUBLIC_URL),
            ("LOY_MONGODB_URI", mongo),
            ("LOY_REDIS_URL", redis),
            ("LOY_HTTP_WORKERS", "2"),
            ("LOY_LOG", "info"),
            ("LOY_LOG_FORMAT", "text"),
            ("LOY_DEFAULT_LOCALE", "en"),
            ("LOY_METRICS_TOKEN", METRICS_TOKEN),
            ("LOY_APNS_ENDPOINT", &apns.url),
            ("LOY_PUSH_COALESCE_MS", "50"),
            ("LOY_PUSH_SWEEP_MS", "500"),
            ("LOY_PUSH_GRACE_MS", "3000"),
            ("LOY_PUSH_LEASE_MS", "5000"),
            ("LOY_PUSH_POLL_MS", "10"),
            ("LOY_PUSH_BACKOFF_MS", "100"),
            ("LOY_PUSH_CONCURRENCY", &fanout::CONCURRENCY.to_string()),
            ("LOY_SHUTDOWN_GRACE", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.insert("LOY_MONGODB_DATABASE".into(), format!("loy_cluster_{suffix}"));
        vars.insert("LOY_REDIS_PREFIX".into(), format!("loycluster{suffix}"));
        vars.insert("LOY_DATA_DIR".into(), dir.path().join("data").display().to_string());
        vars.insert("LOY_APPLE_DEV_DIR".into(), dir.path().join("apple-dev").display().to_string());
        for limit in loy::rate_limit::ALL {
            vars.insert(format!("LOY_RATE_LIMIT_{}", limit.name.to_ascii_uppercase()), "off".into());
        }
        // The first node makes the development certificates every node then signs with.
        let (code, out) = procs::loy_command(&vars, &["certs", "dev"]);
        assert_eq!(code, 0, "{out}");
        let apps =
            vec![Proc::new("app1", Role::App, &vars, dir.path()), Proc::new("app2", Role::App, &vars, dir.path())];
        let workers = vec![
            Proc::new("worker1", Role::Worker, &vars, dir.path()),
            Proc::new("worker2", Role::Worker, &vars, dir.path()),
        ];
        for proc in apps.iter().chain(&workers) {
            proc.start().await;
        }
        let raw = loy::config::RawSettings::load(None, vars.clone(), loy::config::KEYS).unwrap();
        let settings = loy::config::Settings::from_raw(&raw).unwrap();
        let store = loy::startup::connect_store(&settings, Default::default()).await.unwrap();
        let queue = loy::startup::connect_queue(&settings).await.unwrap();
        Self { apps, workers, apns, vars, store, queue, http: reqwest::Client::new(), _dir: dir }
    }

    /// Every process's log lines containing `needle`, named by process.
    pub fn logs_with(&self, needle: &str) -> Vec<String> {
        self.apps
            .iter()
            .chain(&self.workers)
            .flat_map(|p| p.log_lines(needle).into_iter().map(move |l| format!("{}: {l}", p.name)))
            .collect()
    }

    /// `loy check ledger` on the cluster's database: exit 0 and no mismatch.
    pub fn assert_ledger_clean(&self) {
        let (code, out) = procs::loy_command(&self.vars, &["check", "ledger"]);
        assert_eq!(code, 0, "loy check ledger found a problem:\n{out}");
    }

    async fn stop(self) {
        for proc in self.workers.iter().chain(&self.apps) {
            let (status, _) = proc.terminate().await;
            assert!(status.success(), "{} exited with {status}:\n{}", proc.name, proc.log_tail());
        }
        self.apns.stop().await;
        // The 2 000 cards of the fan-out are not kept on the test server.
        let client = mongodb::Client::with_uri_str(&self.vars["LOY_MONGODB_URI"]).await.unwrap();
        client.database(&self.vars["LOY_MONGODB_DATABASE"]).drop().await.unwrap();
    }
}

/// Polls `condition` every 100 ms for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_app_nodes_and_two_workers_on_mongodb_and_redis() {
    let (Some(mongo), Some(redis)) = (service("LOY_TEST_MONGODB_URI"), service("LOY_TEST_REDIS_URL")) else {
        return;
    };
    let began = Instant::now();
    let cluster = Cluster::start(&mongo, &redis).await;
    eprintln!("cluster: four processes ready after {:?}", began.elapsed());

    let phase = Instant::now();
    spread::run(&cluster).await;
    eprintln!("cluster: spread over both nodes in {:?}", phase.elapsed());

    let phase = Instant::now();
    fanout::run(&cluster).await;
    eprintln!("cluster: fan-out with a killed worker in {:?}", phase.elapsed());

    let phase = Instant::now();
    rolling::run(&cluster).await;
    eprintln!("cluster: rolling restart under load in {:?}", phase.elapsed());

    let phase = Instant::now();
    cluster.assert_ledger_clean();
    eprintln!("cluster: loy check ledger clean in {:?}", phase.elapsed());
    cluster.stop().await;
    eprintln!("cluster: the whole test took {:?}", began.elapsed());
}
