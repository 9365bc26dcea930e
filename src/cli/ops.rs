//! `loy backup`, `loy restore` and `loy healthcheck`: what an operator and a container runtime
//! need around a running server.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::config::{Settings, StoreSettings};
use crate::store::embedded::backup;

/// Takes a consistent copy of the embedded store into `file`, while the server may be running.
pub async fn backup(settings: &Settings, file: &Path) -> anyhow::Result<ExitCode> {
    let StoreSettings::Embedded { path, .. } = &settings.store else {
        bail!(
            "`loy backup` copies the embedded store; this install uses MongoDB: back it up with mongodump or \
             filesystem snapshots (docs/operations.md)"
        );
    };
    let (source, target) = (path.clone(), file.to_owned());
    let report = tokio::task::spawn_blocking(move || backup::backup(&source, &target)).await??;
    println!(
        "Backed up {} cards and {} ledger entries ({} bytes) to {}.",
        report.cards,
        report.entries,
        report.bytes,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Restores a backup made by `loy backup` as the embedded store of an empty `LOY_DATA_DIR`.
pub async fn restore(settings: &Settings, file: &Path) -> anyhow::Result<ExitCode> {
    let StoreSettings::Embedded { path, .. } = &settings.store else {
        bail!("`loy restore` restores the embedded store; unset LOY_MONGODB_URI (docs/operations.md)");
    };
    let (source, target) = (file.to_owned(), path.clone());
    let report = tokio::task::spawn_blocking(move || backup::restore(&source, &target)).await??;
    println!(
        "Restored {} cards and {} ledger entries into {}. Run `loy check ledger` to verify, then `loy serve`.",
        report.cards,
        report.entries,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks this install's own server whether it is ready (for container health checks): exit 0
/// on 200, 1 otherwise.
pub async fn healthcheck(settings: &Settings, path: &str) -> anyhow::Result<ExitCode> {
    let mut addr = settings.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let url = format!("http://{addr}{path}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            eprintln!("loy: {url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("loy: {url} did not answer: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
