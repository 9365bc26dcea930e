//! `loy migrate --to-mongodb URI --database NAME`: moves a growing install from the embedded
//! store to MongoDB (see `store::migrate` and docs/operations.md).

use std::process::ExitCode;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::store::migrate;

pub async fn migrate(settings: &Settings, uri: &str, database: &str) -> anyhow::Result<ExitCode> {
    let source = settings.embedded_store_path();
    eprintln!("loy migrate: copying {} into the MongoDB database `{database}`", source.display());
    let progress = |line: &str| eprintln!("loy migrate: {line}");
    let report = migrate::to_mongodb(&source, uri, database, SystemClock.now(), &progress).await?;
    println!("{:<16} {:<16} {:>10} {:>10}", "table", "collection", "source", "target");
    for t in &report.tables {
        let mark = if t.source == t.target { "" } else { "   MISMATCH" };
        println!("{:<16} {:<16} {:>10} {:>10}{mark}", t.table, t.collection, t.source, t.target);
    }
    if report.expired_idempotency > 0 {
        println!("({} idempotency records past their window were left behind.)", report.expired_idempotency);
    }
    for m in &report.ledger.mismatches {
        println!("MISMATCH card {}: {}", m.serial, m.problem);
    }
    if report.ledger.balance_sum != report.source_balance_sum {
        println!(
            "MISMATCH the balances add up to {} on the target but {} in the source",
            report.ledger.balance_sum, report.source_balance_sum
        );
    }
    println!(
        "Copied in {:.1} s, verified in {:.1} s: {} cards, {} ledger entries.",
        report.copy_time.as_secs_f64(),
        report.verify_time.as_secs_f64(),
        report.ledger.cards,
        report.ledger.entries
    );
    if report.is_verified() {
        println!(
            "Verified: every count matches and every card's balance equals its ledger. The file {} was not \
             changed. Set LOY_MONGODB_URI and LOY_MONGODB_DATABASE={database} and start loy (docs/operations.md).",
            source.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Verification FAILED: do not switch to this database; the embedded store is unchanged.");
        Ok(ExitCode::FAILURE)
    }
}
