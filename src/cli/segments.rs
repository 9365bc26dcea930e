//! `loy segments compute [--program P]`: computes customer segments now, against the configured
//! store and under the same lease as the servers' background runner, so it never computes a
//! program at the same time as a node.

use std::process::ExitCode;

use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::segments::compute::{self, ComputeError, Lease, Options};
use crate::segments::runner::lease_length;
use crate::startup::open_for_tool;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Compute the RFM segments of every program (or one) now and print the counts.
    Compute {
        /// Only this program (its id).
        #[arg(long, value_name = "ID")]
        program: Option<String>,
    },
}

pub async fn segments(settings: &Settings, command: SegmentsCommand) -> anyhow::Result<ExitCode> {
    let SegmentsCommand::Compute { program } = command;
    let (store, _) = open_for_tool(settings).await?;
    let store: &dyn Store = store.as_ref();
    let programs = match program {
        Some(id) => match store.program(&id).await? {
            Some(p) => vec![p],
            None => {
                eprintln!("loy: there is no program `{id}` (see `loy program list`)");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => store.programs().await?,
    };
    let options = Options { window_days: settings.segments.window_days, batch: settings.segments.batch };
    let mut code = ExitCode::SUCCESS;
    for program in programs {
        match compute::compute(store, &SystemClock, &program, &Lease::new(lease_length()), options).await {
            Ok(done) => {
                println!("{}: {} cards in {} ms", program.id, done.cards, done.took_ms);
                for (segment, n) in &done.counts {
                    println!("  {:<12} {n}", segment.as_str());
                }
            }
            Err(ComputeError::Busy) => {
                eprintln!(
                    "loy: {}: another node is computing its segments now; try again in a few minutes",
                    program.id
                );
                code = ExitCode::FAILURE;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("while computing the segments of {}", program.id)));
            }
        }
    }
    Ok(code)
}
