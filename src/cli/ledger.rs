//! `loy check ledger` and `loy ledger expire`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ledger::{check, expiry};
use crate::startup::open_for_tool;

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Verify that every card's balance equals the sum of its ledger entries (exit 1 if not).
    Ledger,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Expire points that are due now (the server also does this on its own every hour).
    Expire,
}

pub async fn check(settings: &Settings, command: CheckCommand) -> anyhow::Result<ExitCode> {
    let CheckCommand::Ledger = command;
    let (store, program) = open_for_tool(settings).await?;
    let report = check::check_all(store.as_ref(), &program, SystemClock.now()).await?;
    if report.repaired_referrals > 0 {
        println!("Paid {} referral bonuses that an interrupted write had left owing.", report.repaired_referrals);
    }
    if report.mismatches.is_empty() {
        println!(
            "Ledger OK: {} cards, {} entries; every balance equals the sum of its entries.",
            report.cards, report.entries
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for m in &report.mismatches {
            println!("MISMATCH card {}: {}", m.serial, m.problem);
        }
        println!("Ledger check FAILED: {} problems in {} cards checked.", report.mismatches.len(), report.cards);
        Ok(ExitCode::FAILURE)
    }
}

pub async fn ledger(settings: &Settings, command: LedgerCommand) -> anyhow::Result<ExitCode> {
    let LedgerCommand::Expire = command;
    let (store, program) = open_for_tool(settings).await?;
    // The running server's sweeper pushes the changed cards.
    let points = expiry::run(store.as_ref(), &program, SystemClock.now(), None).await?;
    println!("Expired {points} points.");
    Ok(ExitCode::SUCCESS)
}
