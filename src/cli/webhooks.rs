//! `loy webhook-endpoint …`: where loy sends its events (CRMs and other systems). Not to be
//! confused with `loy webhook-source`, which signs the POS webhooks loy receives.

use std::process::ExitCode;

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::startup::open_for_tool;
use crate::store::DeliveryState;
use crate::webhooks::endpoints::{self, EndpointError};

#[derive(Debug, Subcommand)]
pub enum WebhookEndpointCommand {
    /// Add an endpoint and print its signing secret once, alone on the last line.
    Add {
        /// Where events are POSTed (http:// or https://).
        url: String,
        /// The event types to send, comma-separated (default: all): card.created,
        /// card.installed, card.removed, balance.changed, card.blocked, customer.deleted.
        #[arg(long, default_value = "")]
        events: String,
    },
    /// List endpoints (never their secrets).
    List,
    /// Remove an endpoint and its delivery log.
    Remove { id: String },
    /// Show an endpoint's deliveries, newest first.
    Deliveries {
        id: String,
        /// Only the deliveries that failed for good.
        #[arg(long)]
        failed: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a failed delivery again (the running server picks it up), or every failed one of
    /// an endpoint with --all-failed ENDPOINT_ID.
    Replay {
        /// The delivery id (`ev_….we_…`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        delivery: Option<String>,
        #[arg(long, value_name = "ENDPOINT_ID")]
        all_failed: Option<String>,
    },
}

pub async fn webhook_endpoint(settings: &Settings, command: WebhookEndpointCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    let now = SystemClock.now();
    match command {
        WebhookEndpointCommand::Add { url, events } => {
            match endpoints::add(store.as_ref(), &settings.webhooks, &url, &events, now).await {
                Ok(endpoint) => {
                    println!(
                        "Added webhook endpoint {} for {} (events: {}).",
                        endpoint.id,
                        endpoint.url,
                        endpoints::events_label(&endpoint)
                    );
                    println!("Verify the Loy-Signature header with this secret (shown only this once):");
                    println!("{}", endpoint.secret);
                }
                Err(EndpointError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("loy: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        WebhookEndpointCommand::List => {
            println!("{:<20} {:<8} {:<20} {:<40} URL", "ID", "STATUS", "CREATED", "EVENTS");
            for e in store.webhook_endpoints().await? {
                println!(
                    "{:<20} {:<8} {:<20} {:<40} {}",
                    e.id,
                    if e.enabled { "enabled" } else { "disabled" },
                    e.created_at.format("%Y-%m-%d %H:%M"),
                    endpoints::events_label(&e),
                    e.url
                );
            }
        }
        WebhookEndpointCommand::Remove { id } => {
            if !store.remove_webhook_endpoint(&id).await? {
                eprintln!("loy: no webhook endpoint has the id {id}");
                return Ok(ExitCode::FAILURE);
            }
            println!("Removed webhook endpoint {id}.");
        }
        WebhookEndpointCommand::Deliveries { id, failed, limit } => {
            if store.webhook_endpoint(&id).await?.is_none() {
                eprintln!("loy: no webhook endpoint has the id {id}");
                return Ok(ExitCode::FAILURE);
            }
            let state = failed.then_some(DeliveryState::Failed);
            println!(
                "{:<48} {:<17} {:<10} {:>8} {:<20} LAST ANSWER",
                "DELIVERY", "TYPE", "STATE", "ATTEMPTS", "EVENT AT"
            );
            for d in store.endpoint_deliveries(&id, state, limit).await? {
                let answer = match (&d.last_status, &d.last_error) {
                    (Some(status), None) => status.to_string(),
                    (_, Some(error)) => error.clone(),
                    (None, None) => String::new(),
                };
                println!(
                    "{:<48} {:<17} {:<10} {:>8} {:<20} {}",
                    d.id,
                    d.kind,
                    d.state.as_str(),
                    d.attempts,
                    d.created_at.format("%Y-%m-%d %H:%M:%S"),
                    answer
                );
            }
        }
        WebhookEndpointCommand::Replay { delivery, all_failed } => match (delivery, all_failed) {
            (_, Some(endpoint)) => {
                let n = endpoints::replay_all_failed(store.as_ref(), &settings.webhooks, &endpoint, now).await?;
                println!("Queued {n} failed deliveries of {endpoint} again.");
            }
            (Some(id), None) => {
                if !endpoints::replay(store.as_ref(), &settings.webhooks, &id, now).await? {
                    eprintln!("loy: no failed delivery has the id {id}");
                    return Ok(ExitCode::FAILURE);
                }
                println!("Queued delivery {id} again.");
            }
            (None, None) => unreachable!("clap requires a delivery or --all-failed"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
