//! `loy api-key …` and `loy webhook-source …`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::{ApiKey, Scope, WebhookSource};
use crate::startup::open_for_tool;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it once; the key is alone on the last line of the output.
    Create {
        /// A name that says who uses the key, e.g. "Till 1".
        #[arg(long)]
        name: String,
        /// `pos`: look up cards, earn, redeem, reverse. `admin`: also adjust and block.
        #[arg(long, default_value = "pos", value_parser = ["pos", "admin"])]
        scope: String,
        /// Limit the key to one program (its id); without it the key works with every program.
        #[arg(long)]
        program: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id; it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum WebhookSourceCommand {
    /// Create a source and print its signing secret once (alone on the last line).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List sources (never their secrets).
    List,
    /// Revoke a source by its id.
    Revoke { id: String },
}

fn name_ok(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty() && name.chars().count() <= 100, "--name must be 1 to 100 characters");
    Ok(name.to_owned())
}

pub async fn api_key(settings: &Settings, command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    let now = SystemClock.now();
    match command {
        ApiKeyCommand::Create { name, scope, program } => {
            let scope = Scope::parse(&scope).expect("clap allows only pos and admin");
            let (mut key, plaintext) = ApiKey::generate(&name_ok(&name)?, scope, now);
            if let Some(program) = program {
                anyhow::ensure!(store.program(&program).await?.is_some(), "there is no program `{program}`");
                key.program_id = Some(program);
            }
            store.insert_api_key(&key).await?;
            println!(
                "Created API key {} \"{}\" with scope {}. It is shown only this once:",
                key.id, key.name, key.scope
            );
            println!("{plaintext}");
        }
        ApiKeyCommand::List => {
            let keys = store.api_keys().await?;
            println!("{:<12} {:<8} {:<8} {:<20} {:<16} NAME", "ID", "SCOPE", "STATUS", "CREATED", "PROGRAM");
            for key in keys {
                let status = if key.is_active() { "active" } else { "revoked" };
                println!(
                    "{:<12} {:<8} {:<8} {:<20} {:<16} {}",
                    key.id,
                    key.scope,
                    status,
                    key.created_at.format("%Y-%m-%d %H:%M"),
                    key.program_id.as_deref().unwrap_or("all"),
                    key.name
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            if !store.revoke_api_key(&id, now).await? {
                eprintln!("loy: no active API key has the id {id}");
                return Ok(ExitCode::FAILURE);
            }
            println!("Revoked API key {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn webhook_source(settings: &Settings, command: WebhookSourceCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    let now = SystemClock.now();
    match command {
        WebhookSourceCommand::Create { name } => {
            let source = WebhookSource::generate(&name_ok(&name)?, now);
            store.insert_webhook_source(&source).await?;
            println!("Created webhook source {} \"{}\". Send X-Loy-Source: {}", source.id, source.name, source.id);
            println!("and sign with this secret (shown only this once):");
            println!("{}", source.secret);
        }
        WebhookSourceCommand::List => {
            println!("{:<16} {:<8} {:<20} NAME", "ID", "STATUS", "CREATED");
            for source in store.webhook_sources().await? {
                let status = if source.revoked_at.is_none() { "active" } else { "revoked" };
                println!(
                    "{:<16} {:<8} {:<20} {}",
                    source.id,
                    status,
                    source.created_at.format("%Y-%m-%d %H:%M"),
                    source.name
                );
            }
        }
        WebhookSourceCommand::Revoke { id } => {
            if !store.revoke_webhook_source(&id, now).await? {
                eprintln!("loy: no active webhook source has the id {id}");
                return Ok(ExitCode::FAILURE);
            }
            println!("Revoked webhook source {id}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
