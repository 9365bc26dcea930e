//! `loy check ledger`, `loy check phones` and `loy ledger expire`.

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
    /// Check every stored phone number by the current rules (LOY_DEFAULT_PHONE_REGION); exit 1
    /// if two cards share a number or a number is impossible. Changes nothing.
    Phones,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Expire points that are due now (the server also does this on its own every hour).
    Expire,
}

pub async fn check(settings: &Settings, command: CheckCommand) -> anyhow::Result<ExitCode> {
    if let CheckCommand::Phones = command {
        return check_phones(settings).await;
    }
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

async fn check_phones(settings: &Settings) -> anyhow::Result<ExitCode> {
    use crate::enrollment::phones::{Mode, renormalise};
    let (store, _) = open_for_tool(settings).await?;
    let report = renormalise(store.as_ref(), settings.default_phone_region, Mode::CheckOnly).await?;
    for (card, from, to) in &report.rewritten {
        println!("REWRITE card {card}: {from} would be stored as {to}");
    }
    for s in &report.shared {
        println!(
            "SHARED card {} ({}) and card {} are one number {} by the current rules; merge them by hand",
            s.card, s.stored, s.other, s.phone
        );
    }
    for i in &report.impossible {
        println!("IMPOSSIBLE card {}: {} ({})", i.card, i.stored, i.problem);
    }
    if report.is_clean() {
        println!("Phones OK: {} cards, each with its own possible number.", report.cards);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "Phone check FAILED: {} shared and {} impossible numbers in {} cards.",
            report.shared.len(),
            report.impossible.len(),
            report.cards
        );
        Ok(ExitCode::FAILURE)
    }
}
