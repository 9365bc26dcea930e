//! Prometheus metrics at `/metrics` (text format): HTTP requests, ledger writes, the push queue
//! and its results. One registry per process, passed around like any other component.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub ledger_writes: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    /// Cards whose Google Wallet update waits in the Google lane (`push::google_lane`).
    pub google_lane_depth: IntGaugeVec,
    pub jobs_in_flight: IntGauge,
    pub pushes: IntCounterVec,
    pub push_retries: IntCounter,
    pub dead_letters: IntCounter,
    /// From the first unpushed change of a card to its push being sent.
    pub push_latency: Histogram,
    pub google_updates: IntCounterVec,
    /// Passes signed (cache misses; concurrent requests for one version sign it once).
    pub pass_builds: IntCounter,
    /// Business counters: cards issued by program; passes installed and removed by wallet.
    pub cards_issued: IntCounterVec,
    pub wallet_changes: IntCounterVec,
    /// Messages' sends to a wallet settled, by wallet and result (delivered, failed).
    pub messages_sent: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("loy".into()), None).expect("a valid prefix");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route"],
        )
        .expect("valid metric");
        let ledger_writes =
            IntCounterVec::new(Opts::new("ledger_writes_total", "Ledger entries written by type"), &["type"])
                .expect("valid metric");
        let queue_depth =
            IntGaugeVec::new(Opts::new("push_queue_depth", "Push jobs waiting or being worked on"), &["state"])
                .expect("valid metric");
        let google_lane_depth = IntGaugeVec::new(
            Opts::new(
                "google_lane_depth",
                "Cards whose Google Wallet update waits for Google's pace, or is being made",
            ),
            &["state"],
        )
        .expect("valid metric");
        let jobs_in_flight =
            IntGauge::new("push_jobs_in_flight", "Push jobs this process is working on").expect("valid metric");
        let pushes = IntCounterVec::new(Opts::new("pushes_total", "APNs notifications by result"), &["result"])
            .expect("valid metric");
        let push_retries =
            IntCounter::new("push_retries_total", "Push jobs scheduled again after a failure").expect("valid metric");
        let dead_letters = IntCounter::new("push_dead_letters_total", "Pushes given up into the dead-letter list")
            .expect("valid metric");
        let push_latency = Histogram::with_opts(
            HistogramOpts::new("push_latency_seconds", "From a card's change to its push being sent")
                .buckets(vec![0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .expect("valid metric");
        let google_updates = IntCounterVec::new(
            Opts::new("google_updates_total", "Google Wallet object updates by result"),
            &["result"],
        )
        .expect("valid metric");
        let pass_builds = IntCounter::new("pass_builds_total", "Apple passes built and signed").expect("valid metric");
        let cards_issued = IntCounterVec::new(
            Opts::new("cards_issued_total", "Cards issued at registration by program"),
            &["program"],
        )
        .expect("valid metric");
        let wallet_changes = IntCounterVec::new(
            Opts::new("wallet_changes_total", "Passes added to or removed from a wallet"),
            &["wallet", "change"],
        )
        .expect("valid metric");
        let messages_sent = IntCounterVec::new(
            Opts::new("messages_sent_total", "Messages delivered to or failed on a card's wallet"),
            &["wallet", "result"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(ledger_writes.clone()),
            Box::new(queue_depth.clone()),
            Box::new(google_lane_depth.clone()),
            Box::new(jobs_in_flight.clone()),
            Box::new(pushes.clone()),
            Box::new(push_retries.clone()),
            Box::new(dead_letters.clone()),
            Box::new(push_latency.clone()),
            Box::new(google_updates.clone()),
            Box::new(pass_builds.clone()),
            Box::new(cards_issued.clone()),
            Box::new(wallet_changes.clone()),
            Box::new(messages_sent.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            ledger_writes,
            queue_depth,
            google_lane_depth,
            jobs_in_flight,
            pushes,
            push_retries,
            dead_letters,
            push_latency,
            google_updates,
            pass_builds,
            cards_issued,
            wallet_changes,
            messages_sent,
        }
    }

    /// Everything in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
