//! `loy import customers FILE.csv [--dry-run]` and `loy export customers|transactions`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::EntrySource;
use crate::import::export::{self, Period};
use crate::import::{ImportActor, ImportOptions, ImportReport, import_customers};
use crate::startup::open_for_tool;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import customers and their balances from a CSV file (UTF-8 or Windows-1251, comma or
    /// semicolon; columns by header). Running it again changes nothing; after an interruption
    /// it finishes the rest. Exit 1 when some lines are bad (the good ones are imported).
    Customers {
        /// The CSV file.
        file: PathBuf,
        /// Check every line and count what would be created, updated and skipped; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every customer with card number, tier, balance, lifetime points and status.
    Customers {
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Ledger entries made within a period (days in UTC, both included).
    Transactions {
        /// The first day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        from: Option<NaiveDate>,
        /// The last day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        to: Option<NaiveDate>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub async fn import(settings: &Settings, command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Customers { file, dry_run } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("while reading {}", file.display()))?;
    let (store, program) = open_for_tool(settings).await?;
    let actor = ImportActor { source: EntrySource::System, id: None };
    let progress = |done: u64, total: u64| {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        eprint!("\r{} {done}/{total} lines ({percent} %)", if dry_run { "checked" } else { "imported" });
        if done == total {
            eprintln!();
        }
    };
    let options =
        ImportOptions { region: settings.default_phone_region, dry_run, actor, now: SystemClock.now(), job: None };
    let report = import_customers(store.as_ref(), &program, &bytes, &options, &progress).await?;
    print_report(&report);
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_report(report: &ImportReport) {
    if let Some(shape) = &report.shape {
        println!("File: {}, separator '{}'.", shape.encoding, shape.delimiter);
        if !shape.ignored_columns.is_empty() {
            println!("Ignored columns: {}.", shape.ignored_columns.join(", "));
        }
    }
    for e in &report.errors {
        println!("line {}: {}", e.line, e.reason);
    }
    let verb = if report.dry_run { "would be" } else { "were" };
    println!(
        "{} lines: {} cards {verb} created, {} updated, {} skipped (phone already has a card); {} bad lines.",
        report.lines,
        report.created,
        report.updated,
        report.skipped,
        report.errors.len()
    );
}

pub async fn export(settings: &Settings, command: ExportCommand) -> anyhow::Result<ExitCode> {
    let (store, _) = open_for_tool(settings).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let output = match &command {
        ExportCommand::Customers { output } | ExportCommand::Transactions { output, .. } => output.clone(),
    };
    let task = tokio::spawn(async move {
        match command {
            ExportCommand::Customers { .. } => export::export_customers(store.as_ref(), tx).await,
            ExportCommand::Transactions { from, to, .. } => {
                export::export_transactions(store.as_ref(), Period { from, to }, tx).await
            }
        }
    });
    let mut out = open_output(output.as_deref())?;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.context("while reading the store")?;
        out.write_all(&chunk).context("while writing the export")?;
    }
    out.flush().context("while writing the export")?;
    let count = task.await.context("the export stopped")?;
    eprintln!("Exported {} rows.", count.rows);
    Ok(ExitCode::SUCCESS)
}

fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("while creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}
