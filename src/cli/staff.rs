//! `loy staff …`: staff accounts of the console from the command line — how the first owner
//! gets in on a server nobody can log in to yet.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::admin::audit::{self, Actor, actions};
use crate::admin::password;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::{Email, Role, StaffAccount};
use crate::startup::open_for_tool;
use crate::store::{StoreError, UniqueKey};

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff account. The password is read from standard input when it is not a terminal
    /// (or with --password-stdin); otherwise one is generated and printed once, alone on the
    /// last line.
    Add {
        email: String,
        #[arg(long, value_parser = ["owner", "manager", "cashier"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List staff accounts.
    List,
}

pub async fn staff(settings: &Settings, command: StaffCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    match command {
        StaffCommand::Add { email, role, password_stdin } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
            let role = Role::parse(&role).expect("clap allows only the three roles");
            let from_stdin = password_stdin || !std::io::stdin().is_terminal();
            let (plain, generated) = if from_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                if let Err(key) = password::check(&line) {
                    let why = if key == "password_short" { "shorter than 10 characters" } else { "too long" };
                    eprintln!("loy: the password on standard input is {why}");
                    return Ok(ExitCode::from(2));
                }
                (line, false)
            } else {
                (password::generate(), true)
            };
            let hash = password::hash(plain.clone()).await?;
            let account = StaffAccount::new(email.as_str(), role, hash, SystemClock.now());
            match store.insert_staff(&account).await {
                Ok(()) => {}
                Err(StoreError::Duplicate(UniqueKey::Other)) => {
                    eprintln!("loy: a staff account with the e-mail {} exists", account.email);
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            }
            let actor = Actor { staff_id: None, email: "loy staff add".into(), address: "cli".into() };
            let details = json!({ "email": account.email, "role": role, "via": "cli" });
            audit::record_in(store.as_ref(), &SystemClock, &actor, actions::STAFF_ADDED, Some(&account.id), details)
                .await;
            println!(
                "Added {} {} ({}). Log in at {}/admin/login",
                role, account.email, account.id, settings.public_url
            );
            if generated {
                println!("Password (shown only this once):");
                println!("{plain}");
            }
        }
        StaffCommand::List => {
            println!("{:<18} {:<8} {:<9} {:<4} {:<17} EMAIL", "ID", "ROLE", "STATUS", "2FA", "LAST LOGIN");
            for s in store.staff_list().await? {
                println!(
                    "{:<18} {:<8} {:<9} {:<4} {:<17} {}",
                    s.id,
                    s.role,
                    if s.disabled { "disabled" } else { "active" },
                    if s.totp_enabled() { "on" } else { "off" },
                    s.last_login_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "-".into()),
                    s.email
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
