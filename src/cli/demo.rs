//! `loy demo seed`: fills an empty store with demo customers and their history (see
//! [`crate::demo`]), for trying the console and for benchmarks.

use std::process::ExitCode;

use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::demo::{SeedError, SeedOptions, seed};
use crate::startup::open_for_tool;

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Fill an empty store with made-up customers registered over the last DAYS days, and their
    /// purchases through the program's rules. Refused when the store holds any card.
    Seed {
        /// How many customers.
        #[arg(long, default_value_t = 1000)]
        cards: u64,
        /// Over how many days before now they registered and bought.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// The program they join (its rules apply: points or stamps).
        #[arg(long, default_value = "default")]
        program: String,
        /// The same seed makes the same customers and history.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub async fn demo(settings: &Settings, command: DemoCommand) -> anyhow::Result<ExitCode> {
    let DemoCommand::Seed { cards, days, program, seed: rng_seed } = command;
    let (store, _) = open_for_tool(settings).await?;
    let Some(program) = store.program(&program).await? else {
        eprintln!("loy: there is no program {program} (see `loy program list`)");
        return Ok(ExitCode::FAILURE);
    };
    let started = std::time::Instant::now();
    let options = SeedOptions { cards, days, seed: rng_seed };
    match seed(store.as_ref(), &program, &options, SystemClock.now()).await {
        Ok(report) => {
            println!(
                "Seeded {} demo customers of {} with {} transactions over {days} days in {:.1} s.",
                report.cards,
                program.id,
                report.transactions,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(SeedError::NotEmpty) => {
            eprintln!("loy: the store already holds cards; demo data goes into an empty store only");
            Ok(ExitCode::FAILURE)
        }
        Err(SeedError::Ledger(e)) => Err(e.into()),
    }
}
